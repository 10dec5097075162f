package internal

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// roomView answers QueryLatestEventsAndState from a fixed room, as the
// roomserver would after storing a chain.
type roomView struct {
	rsapi.API
	resp rsapi.QueryLatestEventsAndStateResponse
}

func (r roomView) QueryLatestEventsAndState(context.Context, rsapi.QueryLatestEventsAndStateRequest) (rsapi.QueryLatestEventsAndStateResponse, error) {
	return r.resp, nil
}

// refsOf returns an event's prev_events and auth_events as room versions 1
// and 2 write them: [id, {"sha256": hash}] pairs.
func refsOf(t *testing.T, e *event.PDU) map[string]string {
	t.Helper()
	var f struct {
		Prev [][2]json.RawMessage `json:"prev_events"`
		Auth [][2]json.RawMessage `json:"auth_events"`
	}
	if err := json.Unmarshal(e.JSON(), &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range append(f.Prev, f.Auth...) {
		var id string
		var h struct {
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(r[0], &id); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r[1], &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h.SHA256
	}
	return out
}

// TestReferenceHashesInOldRoomVersions: events of room versions 1 and 2
// carry the reference hash of every event they reference, whether built in
// a chain (createRoom) or against the roomserver's view (a later send).
func TestReferenceHashesInOldRoomVersions(t *testing.T) {
	key, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		t.Fatal(err)
	}
	for _, ver := range []string{"1", "2"} {
		t.Run("v"+ver, func(t *testing.T) {
			v, _ := event.Version(ver)
			b := &Builder{ServerName: "example.org", Key: key}
			c := b.NewChain(v, matrix.RoomID("!room:example.org"))
			alice := matrix.UserID("@alice:example.org")
			str := func(s string) *string { return &s }
			steps := []event.Proto{
				{Type: event.TypeCreate, StateKey: str(""), Sender: alice, Content: map[string]any{"creator": alice}},
				{Type: event.TypeMember, StateKey: str(string(alice)), Sender: alice, Content: map[string]any{"membership": "join"}},
				{Type: event.TypePowerLevels, StateKey: str(""), Sender: alice, Content: map[string]any{"users": map[string]int{string(alice): 100}}},
			}
			byID := map[matrix.EventID]*event.PDU{}
			for _, p := range steps {
				e, err := c.Add(p)
				if err != nil {
					t.Fatal(err)
				}
				byID[e.EventID()] = e
			}
			check := func(e *event.PDU) {
				t.Helper()
				refs := refsOf(t, e)
				if len(refs) == 0 && e.Type() != event.TypeCreate {
					t.Fatalf("%s references nothing", e.Type())
				}
				for id, got := range refs {
					want, err := event.ReferenceHash(byID[matrix.EventID(id)].JSON(), v)
					if err != nil {
						t.Fatal(err)
					}
					if got != signing.EncodeBase64(want) {
						t.Fatalf("%s references %s with hash %q, want %q", e.Type(), id, got, signing.EncodeBase64(want))
					}
				}
			}
			for _, e := range c.Events {
				check(e)
			}

			// A message built against the room as the roomserver reports it.
			last := c.Events[len(c.Events)-1]
			lastHash, _ := event.ReferenceHash(last.JSON(), v)
			view := rsapi.QueryLatestEventsAndStateResponse{RoomExists: true, RoomVersion: ver,
				LatestEvents: []string{string(last.EventID())}, Depth: last.Depth(),
				LatestEventHashes: map[string][]byte{string(last.EventID()): lastHash}}
			for _, e := range c.Events {
				view.StateEvents = append(view.StateEvents, e.JSON())
			}
			b.RS = roomView{resp: view}
			msg, _, err := b.Build(t.Context(), event.Proto{Type: "m.room.message", Sender: alice, RoomID: c.RoomID,
				Content: map[string]any{"msgtype": "m.text", "body": "hi"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := refsOf(t, msg)[string(last.EventID())]; !ok {
				t.Fatalf("message does not reference the latest event: %s", msg.JSON())
			}
			check(msg)
		})
	}
}

// TestBuildUsesStateEventIDs: with the roomserver's ids by tuple the
// builder takes auth events from them (no parsing); without, it parses the
// state events. Both give the same auth events.
func TestBuildUsesStateEventIDs(t *testing.T) {
	key, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := event.Version(event.DefaultRoomVersion)
	b := &Builder{ServerName: "example.org", Key: key}
	c := b.NewChain(v, "")
	alice := matrix.UserID("@alice:example.org")
	for _, p := range []event.Proto{
		{Type: event.TypeCreate, StateKey: new(""), Sender: alice, Content: map[string]any{"room_version": v.ID}},
		{Type: event.TypeMember, StateKey: new(string(alice)), Sender: alice, Content: map[string]any{"membership": "join"}},
		{Type: event.TypePowerLevels, StateKey: new(""), Sender: alice, Content: map[string]any{}},
	} {
		if _, err := c.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	last := c.Events[len(c.Events)-1]
	view := rsapi.QueryLatestEventsAndStateResponse{RoomExists: true, RoomVersion: v.ID,
		LatestEvents: []string{string(last.EventID())}, Depth: last.Depth()}
	for _, e := range c.Events {
		view.StateEvents = append(view.StateEvents, e.JSON())
		view.StateEventIDs = append(view.StateEventIDs, rsapi.StateEventID{Type: e.Type(), StateKey: *e.StateKey(), EventID: string(e.EventID())})
	}
	authOf := func(view rsapi.QueryLatestEventsAndStateResponse) []matrix.EventID {
		t.Helper()
		b.RS = roomView{resp: view}
		msg, _, err := b.Build(t.Context(), event.Proto{Type: "m.room.message", Sender: alice, RoomID: c.RoomID,
			Content: map[string]any{"body": "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		return msg.AuthEventIDs()
	}
	withIDs := authOf(view)
	parsed := view
	parsed.StateEventIDs = nil
	if got := authOf(parsed); !slices.Equal(got, withIDs) || len(got) != 2 {
		t.Fatalf("auth events parsed %v, from ids %v; want the same two", got, withIDs)
	}
	// The ids are what is used when they are given.
	marked := view
	marked.StateEventIDs = slices.Clone(view.StateEventIDs)
	marked.StateEventIDs[2].EventID = "$markedmarkedmarkedmarkedmarkedmarkedmarkedm"
	if got := authOf(marked); !slices.Contains(got, "$markedmarkedmarkedmarkedmarkedmarkedmarkedm") {
		t.Fatalf("auth events %v do not come from StateEventIDs", got)
	}
}
