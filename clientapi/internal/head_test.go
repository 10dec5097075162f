package internal

import (
	"fmt"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// TestBuildOnCommittedHead: against a real roomserver (whose answers to
// Build are cached between commits), each send builds on the one before,
// a state change authorises the next build, and a refused send moves
// nothing.
func TestBuildOnCommittedHead(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		const origin = matrix.ServerName("build.test")
		b, comp, chain, alice := newRoomserverBuilder(t, db, origin)
		bob := matrix.UserID("@bob:" + origin)
		if _, err := comp.API().InputRoomEvents(ctx, chain.Input()); err != nil {
			t.Fatal(err)
		}
		send := func(p event.Proto) (*event.PDU, error) {
			t.Helper()
			p.RoomID = chain.RoomID
			e, v, err := b.Build(ctx, p)
			if err != nil {
				t.Fatalf("Build(%s) = %v", p.Type, err)
			}
			_, err = comp.API().InputRoomEvents(ctx, SingleInput(e, v))
			return e, err
		}
		message := func(sender matrix.UserID, body string) event.Proto {
			return event.Proto{Type: "m.room.message", Sender: sender, Content: map[string]any{"msgtype": "m.text", "body": body}}
		}

		last := chain.Events[len(chain.Events)-1]
		for i := range 3 {
			e, err := send(message(alice, fmt.Sprint("message ", i)))
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if !slices.Equal(e.PrevEventIDs(), []matrix.EventID{last.EventID()}) || e.Depth() != last.Depth()+1 {
				t.Fatalf("message %d: prev %v depth %d, want [%s] %d", i, e.PrevEventIDs(), e.Depth(), last.EventID(), last.Depth()+1)
			}
			last = e
		}

		pl, err := send(event.Proto{Type: event.TypePowerLevels, StateKey: new(""), Sender: alice, Content: map[string]any{"state_default": 60}})
		if err != nil {
			t.Fatalf("send power levels: %v", err)
		}
		msg, err := send(message(alice, "after the power levels"))
		if err != nil || !slices.Contains(msg.AuthEventIDs(), pl.EventID()) {
			t.Fatalf("message after the power levels: auth %v, %v; want %s", msg.AuthEventIDs(), err, pl.EventID())
		}

		join, err := send(event.Proto{Type: event.TypeMember, StateKey: new(string(bob)), Sender: bob, Content: map[string]any{"membership": "join"}})
		if err != nil {
			t.Fatalf("bob's join: %v", err)
		}
		hi, err := send(message(bob, "hi"))
		if err != nil || !slices.Contains(hi.AuthEventIDs(), join.EventID()) {
			t.Fatalf("bob's message: auth %v, %v; want his join %s", hi.AuthEventIDs(), err, join.EventID())
		}
		leave, err := send(event.Proto{Type: event.TypeMember, StateKey: new(string(bob)), Sender: bob, Content: map[string]any{"membership": "leave"}})
		if err != nil {
			t.Fatalf("bob's leave: %v", err)
		}
		if _, err := send(message(bob, "still here?")); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("bob's message after leaving = %v, want M_FORBIDDEN", err)
		}
		after, err := send(message(alice, "after the refusal"))
		if err != nil || !slices.Equal(after.PrevEventIDs(), []matrix.EventID{leave.EventID()}) {
			t.Fatalf("after a refused send: prev %v, %v; want [%s]", after.PrevEventIDs(), err, leave.EventID())
		}
	})
}
