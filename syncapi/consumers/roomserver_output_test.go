package consumers_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

const room = "!r:x"

// event is a minimal unsigned PDU of room version 10 (no event_id in the JSON).
func event(typ, sender string, stateKey *string, content string) json.RawMessage {
	m := map[string]any{"type": typ, "sender": sender, "room_id": room, "content": json.RawMessage(content),
		"origin_server_ts": 1700000000000, "depth": 1, "prev_events": []string{}, "auth_events": []string{}}
	if stateKey != nil {
		m["state_key"] = *stateKey
	}
	b, _ := json.Marshal(m)
	return b
}

func sk(s string) *string { return &s }

type fixture struct {
	t   *testing.T
	db  *storage.Storage
	n   *notifier.Notifier
	h   *consumers.RoomServerOutput
	seq uint64
}

func newFixture(t *testing.T, db *sqlutil.DB) *fixture {
	s, err := storage.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	n := notifier.New(streams.Token{}, nil)
	return &fixture{t: t, db: s, n: n, h: consumers.NewRoomServerOutput(s, n, slog.New(slog.DiscardHandler))}
}

func (f *fixture) handle(ev rsapi.OutputEvent) error {
	f.seq++
	ev.RoomID, ev.RoomVersion = room, "10"
	return f.h.Handle(f.t.Context(), eventlog.Msg[rsapi.OutputEvent]{Stream: rsapi.OutputTopic.Name, Seq: f.seq, Key: room, Value: ev})
}

func (f *fixture) mustHandle(ev rsapi.OutputEvent) {
	f.t.Helper()
	if err := f.handle(ev); err != nil {
		f.t.Fatalf("Handle(%s) = %v", ev.EventID, err)
	}
}

// state is the current state as "type|state_key=event_id" strings.
func (f *fixture) state() []string {
	f.t.Helper()
	st, err := f.db.CurrentState.SelectRoom(f.t.Context(), f.db.DB.Reader(), room)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for tu, id := range st {
		out = append(out, fmt.Sprintf("%s|%s=%s", tu.Type, tu.StateKey, id))
	}
	slices.Sort(out)
	return out
}

func (f *fixture) position() streams.Position {
	p, err := f.db.Positions.Current(f.t.Context(), f.db.DB.Reader(), streams.PDU)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func TestRoomServerOutput(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		alice := f.n.Listen("@a:x")
		defer alice.Close()

		f.mustHandle(rsapi.OutputEvent{EventID: "$create", Event: event("m.room.create", "@a:x", sk(""), `{}`), AddsState: []string{"$create"}})
		f.mustHandle(rsapi.OutputEvent{EventID: "$ajoin", Event: event("m.room.member", "@a:x", sk("@a:x"), `{"membership":"join"}`), AddsState: []string{"$ajoin"}})
		select {
		case <-alice.C():
		default:
			t.Fatal("the joining user was not woken")
		}
		if got := f.n.JoinedUsers(room); !slices.Equal(got, []string{"@a:x"}) {
			t.Fatalf("notifier JoinedUsers = %v", got)
		}
		f.mustHandle(rsapi.OutputEvent{EventID: "$name1", Event: event("m.room.name", "@a:x", sk(""), `{"name":"one"}`), AddsState: []string{"$name1"}})
		f.mustHandle(rsapi.OutputEvent{EventID: "$msg", Event: event("m.room.message", "@a:x", nil, `{"body":"hi"}`),
			TxnID: &rsapi.TransactionID{UserID: "@a:x", DeviceID: "DEV", TransactionID: "txn1"}})

		// The same message again (a redelivery, or the roomserver publishing twice).
		before := f.position()
		f.mustHandle(rsapi.OutputEvent{EventID: "$msg", Event: event("m.room.message", "@a:x", nil, `{"body":"hi"}`)})
		if after := f.position(); after != before {
			t.Fatalf("a duplicate took a position: %d → %d", before, after)
		}

		f.mustHandle(rsapi.OutputEvent{EventID: "$name2", Event: event("m.room.name", "@a:x", sk(""), `{"name":"two"}`),
			AddsState: []string{"$name2"}, RemovesState: []string{"$name1"}})
		evs, err := f.db.Events.SelectByIDs(ctx, f.db.DB.Reader(), []string{"$name2", "$msg"})
		if err != nil || len(evs) != 2 {
			t.Fatalf("SelectByIDs = %v, %v", evs, err)
		}
		if evs[0].EventID != "$msg" || evs[0].Txn.TxnID != "txn1" || evs[0].StateKey != nil {
			t.Fatalf("stored message = %+v", evs[0])
		}
		if evs[1].ReplacesEventID != "$name1" {
			t.Fatalf("name2 replaces %q, want $name1", evs[1].ReplacesEventID)
		}
		want := []string{"m.room.create|=$create", "m.room.member|@a:x=$ajoin", "m.room.name|=$name2"}
		if got := f.state(); !slices.Equal(got, want) {
			t.Fatalf("state = %v, want %v", got, want)
		}

		// A removal without replacement (state resolution dropped the name).
		f.mustHandle(rsapi.OutputEvent{EventID: "$m2", Event: event("m.room.message", "@a:x", nil, `{}`), RemovesState: []string{"$name2"}})
		want = []string{"m.room.create|=$create", "m.room.member|@a:x=$ajoin"}
		if got := f.state(); !slices.Equal(got, want) {
			t.Fatalf("after removal: state = %v, want %v", got, want)
		}

		// A rewrite lists the whole new state: bob joins, alice's membership disappears.
		f.mustHandle(rsapi.OutputEvent{EventID: "$bjoin", Event: event("m.room.member", "@b:x", sk("@b:x"), `{"membership":"join"}`),
			Rewrite: true, AddsState: []string{"$create", "$bjoin"}})
		want = []string{"m.room.create|=$create", "m.room.member|@b:x=$bjoin"}
		if got := f.state(); !slices.Equal(got, want) {
			t.Fatalf("after rewrite: state = %v, want %v", got, want)
		}
		if got := f.n.JoinedUsers(room); !slices.Equal(got, []string{"@b:x"}) {
			t.Fatalf("notifier JoinedUsers after rewrite = %v, want [@b:x]", got)
		}
		ms, err := f.db.Deltas.MembershipsAt(ctx, f.db.DB.Reader(), "@a:x", f.position())
		if err != nil || len(ms) != 0 {
			t.Fatalf("alice's memberships after rewrite = %+v, %v; want none", ms, err)
		}

		// State ids the syncapi never saw are skipped, not fatal.
		f.mustHandle(rsapi.OutputEvent{EventID: "$topic", Event: event("m.room.topic", "@b:x", sk(""), `{"topic":"t"}`),
			AddsState: []string{"$topic", "$unknown"}})
		if got := f.state(); len(got) != 3 {
			t.Fatalf("after unknown id: state = %v", got)
		}
		if p := f.n.Current().Get(streams.PDU); p != f.position() {
			t.Fatalf("notifier at %d, storage at %d", p, f.position())
		}
	})
}

func TestRoomServerOutputPoison(t *testing.T) {
	f := newFixture(t, storagetest.SQLite(t))
	tests := []struct {
		name string
		ev   rsapi.OutputEvent
	}{
		{name: "not json", ev: rsapi.OutputEvent{EventID: "$x", Event: json.RawMessage(`"nope"`)}},
		{name: "no type", ev: rsapi.OutputEvent{EventID: "$x", Event: json.RawMessage(`{"sender":"@a:x"}`)}},
		{name: "no event id", ev: rsapi.OutputEvent{Event: event("m.room.message", "@a:x", nil, `{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.handle(tc.ev); !eventlog.IsPermanent(err) {
				t.Fatalf("Handle = %v, want a permanent error", err)
			}
		})
	}
	if p := f.position(); p != 0 {
		t.Fatalf("poison messages took positions: %d", p)
	}
}

// BenchmarkRoomServerOutput measures storing message events (one
// transaction each) without the broker.
func BenchmarkRoomServerOutput(b *testing.B) {
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		s, err := storage.Open(b.Context(), db)
		if err != nil {
			b.Fatal(err)
		}
		h := consumers.NewRoomServerOutput(s, notifier.New(streams.Token{}, nil), slog.New(slog.DiscardHandler))
		body := event("m.room.message", "@a:x", nil, `{"body":"hello"}`)
		var seq uint64
		for b.Loop() {
			seq++
			ev := rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: fmt.Sprintf("$bench%d", seq), Event: body}
			if err := h.Handle(b.Context(), eventlog.Msg[rsapi.OutputEvent]{Stream: rsapi.OutputTopic.Name, Seq: seq, Key: room, Value: ev}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
