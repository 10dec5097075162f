package internal

import (
	"bytes"
	"testing"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
)

// checkAuthCache fails unless every cached auth event is its stored row.
func checkAuthCache(t *testing.T, r *Roomserver) int {
	t.Helper()
	cached := r.authEvs.c.Entries()
	nids := make([]int64, 0, len(cached))
	for n := range cached {
		nids = append(nids, n)
	}
	rows, err := r.st.Events.SelectByNIDs(t.Context(), r.st.DB.Reader(), nids)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(nids) {
		t.Fatalf("%d cached auth events, %d stored", len(nids), len(rows))
	}
	for _, row := range rows {
		if e := cached[row.NID]; string(e.EventID()) != row.EventID || !bytes.Equal(e.JSON(), row.JSON) {
			t.Fatalf("cached event %d is %s, stored %s", row.NID, e.EventID(), row.EventID)
		}
	}
	return len(cached)
}

// TestAuthEventCache: the auth events of committed input are cached as
// stored; a rolled-back batch caches nothing; a redaction empties the cache
// (it rewrites a stored event), and checks go on from the database.
func TestAuthEventCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, log := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 3)
		alice, bob := "@alice:"+string(testOrigin), "@bob:"+string(testOrigin)

		if err := h.send(h.message(alice, "one")); err != nil {
			t.Fatal(err)
		}
		// The room's creation cached its auth-relevant state; the message's
		// check read create, power levels and alice's membership from it.
		if n := checkAuthCache(t, r); n < 3 {
			t.Fatalf("%d cached auth events after a message, want at least 3", n)
		}

		// A rolled-back join leaves nothing of it cached.
		before := checkAuthCache(t, r)
		log.fail.Store(true)
		join := h.build(event.Proto{Type: event.TypeMember, Sender: matrix.UserID(bob), StateKey: new(bob), Content: map[string]any{"membership": "join"}})
		if err := h.send(join); err == nil {
			t.Fatal("the join committed though publishing failed")
		}
		log.fail.Store(false)
		if n := checkAuthCache(t, r); n != before {
			t.Fatalf("%d cached auth events after a rollback, want %d", n, before)
		}

		// Committed, bob's membership is cached and his message is checked against it.
		joined := h.build(event.Proto{Type: event.TypeMember, Sender: matrix.UserID(bob), StateKey: new(bob),
			Content: map[string]any{"membership": "join"}})
		if err := h.send(joined); err != nil {
			t.Fatal(err)
		}
		if n := checkAuthCache(t, r); n != before+1 {
			t.Fatalf("%d cached auth events after bob joined, want %d", n, before+1)
		}
		if err := h.send(h.message(bob, "hello")); err != nil {
			t.Fatal(err)
		}

		// Redacting bob's cached membership empties the cache; later checks
		// read the database again, so what is cached is the redacted row.
		red := h.build(event.Proto{Type: event.TypeRedaction, Sender: matrix.UserID(alice), Redacts: joined.EventID(), Content: map[string]any{}})
		if err := h.send(red); err != nil {
			t.Fatal(err)
		}
		if n := checkAuthCache(t, r); n != 0 {
			t.Fatalf("%d cached auth events after a redaction, want 0", n)
		}
		if err := h.send(h.message(bob, "still here")); err != nil {
			t.Fatal(err)
		}
		if n := checkAuthCache(t, r); n < 3 {
			t.Fatalf("%d cached auth events after the next message, want at least 3", n)
		}
	})
}

// TestMayRedact: the type is read as JSON, escapes included; an event whose
// type cannot be read counts as a possible redaction.
func TestMayRedact(t *testing.T) {
	in := func(raw string) []eventlog.Msg[api.InputMessage] {
		return []eventlog.Msg[api.InputMessage]{{Value: api.InputMessage{Request: api.InputRoomEventsRequest{
			Events: []api.InputEvent{{Event: []byte(raw)}}}}}}
	}
	for raw, want := range map[string]bool{
		`{"type":"m.room.message","content":{"body":"m.room.redaction"}}`: false,
		`{"type":"m.room.redaction"}`:                                     true,
		`{"type":"m.room.redac\u0074ion"}`:                                true,
		`{"content":{}}`:                                                  true,
		`not json`:                                                        true,
	} {
		if got := mayRedact(in(raw)); got != want {
			t.Errorf("mayRedact(%s) = %v, want %v", raw, got, want)
		}
	}
	if typ, ok := inputType(api.InputEvent{Event: []byte(`{"type":"m.room.cr\u0065ate"}`)}); !ok || typ != event.TypeCreate {
		t.Errorf("inputType of an escaped create = %q, %v", typ, ok)
	}
}
