package internal

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
)

// outputsSince decodes the output events published after the first n.
func (l *failingLog) outputsSince(t *testing.T, n int) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, data := range l.published[n:] {
		var out api.OutputEvent
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.EventID)
	}
	return ids
}

func (l *failingLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.published)
}

// TestPipelinedInput: messages of several rooms in one batch are stored
// together (on PostgreSQL by one pipelined write), each room's head moves
// to its message and each message is announced once. A batch in which a
// transaction id is recorded already is stored the usual way: the retry is
// answered with the recorded event and stored nowhere, and the batch's
// other message goes in.
func TestPipelinedInput(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, log := newTestRoomserver(t, db)
		pipelined := db.Dialect.Engine == sqlutil.Postgres
		alice := "@alice:" + string(testOrigin)
		rooms := []*testRoom{newTestRoom(t, r, 1), newTestRoom(t, r, 2), newTestRoom(t, r, 3)}
		latest := func(h *testRoom) []string {
			t.Helper()
			res, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID)})
			if err != nil {
				t.Fatal(err)
			}
			return res.LatestEvents
		}
		send := func(reqs ...api.InputRoomEventsRequest) []inputResult {
			t.Helper()
			res, err := rooms[0].handleResults(reqs...)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}

		batches, published := r.pipelined.Load(), log.count()
		var msgs []*event.PDU
		var reqs []api.InputRoomEventsRequest
		for i, h := range rooms {
			m := h.message(alice, "hello")
			req := h.request(m)
			req.Events[0].TxnID = &api.TransactionID{UserID: alice, DeviceID: "DEV", Scope: "send:" + string(h.roomID), TransactionID: "t" + string(rune('0'+i))}
			msgs, reqs = append(msgs, m), append(reqs, req)
		}
		send(reqs...)
		for i, h := range rooms {
			if got := latest(h); !slices.Equal(got, []string{string(msgs[i].EventID())}) {
				t.Errorf("room %d: latest %v, want its message", i, got)
			}
			h.checkCache(true)
		}
		want := []string{string(msgs[0].EventID()), string(msgs[1].EventID()), string(msgs[2].EventID())}
		if got := log.outputsSince(t, published); !slices.Equal(got, want) {
			t.Errorf("published %v, want %v", got, want)
		}
		if pipelined && r.pipelined.Load() != batches+1 {
			t.Errorf("the batch was stored in %d pipelined writes, want 1", r.pipelined.Load()-batches)
		}

		// A retry of room 0's transaction, built on the new head, beside a
		// message of room 1.
		batches, published = r.pipelined.Load(), log.count()
		retry := rooms[0].message(alice, "hello again")
		retryReq := rooms[0].request(retry)
		retryReq.Events[0].TxnID = reqs[0].Events[0].TxnID
		other := rooms[1].message(alice, "next")
		res := send(retryReq, rooms[1].request(other))
		if got := res[0].txnEvents[string(retry.EventID())]; got != string(msgs[0].EventID()) {
			t.Errorf("the retry was answered %+v, want the recorded %s", res[0], msgs[0].EventID())
		}
		if got := latest(rooms[0]); !slices.Equal(got, []string{string(msgs[0].EventID())}) {
			t.Errorf("room 0 after the retry: latest %v, want the first message alone", got)
		}
		if got := latest(rooms[1]); !slices.Equal(got, []string{string(other.EventID())}) {
			t.Errorf("room 1: latest %v, want %s", got, other.EventID())
		}
		if got := log.outputsSince(t, published); !slices.Equal(got, []string{string(other.EventID())}) {
			t.Errorf("published %v, want only %s", got, other.EventID())
		}
		if r.pipelined.Load() != batches {
			t.Error("a batch with a recorded transaction id was pipelined")
		}
		found, err := r.QueryEvents(t.Context(), api.QueryEventsRequest{RoomID: string(rooms[0].roomID), EventIDs: []string{string(retry.EventID())}})
		if err != nil || len(found.Events) != 0 {
			t.Errorf("the retry was stored: %v, %v", found.Events, err)
		}
		for _, h := range rooms {
			h.checkCache(true)
		}

		// A refused message in a pipelined batch is answered with its
		// refusal; the other rooms' messages go in.
		batches, published = r.pipelined.Load(), log.count()
		mallory := "@mallory:" + string(testOrigin)
		refused := rooms[2].message(mallory, "let me in")
		ok0, ok1 := rooms[0].message(alice, "still here"), rooms[1].message(alice, "me too")
		all, err := rooms[0].handleAll(rooms[0].request(ok0), rooms[2].request(refused), rooms[1].request(ok1))
		if err != nil {
			t.Fatal(err)
		}
		if all[0].err != nil || all[2].err != nil || !apierr.HasCode(all[1].err, apierr.CodeForbidden) {
			t.Fatalf("answers %v, %v, %v; want nil, M_FORBIDDEN, nil", all[0].err, all[1].err, all[2].err)
		}
		if got := log.outputsSince(t, published); !slices.Equal(got, []string{string(ok0.EventID()), string(ok1.EventID())}) {
			t.Errorf("published %v, want the two accepted messages", got)
		}
		if pipelined && r.pipelined.Load() != batches+1 {
			t.Error("a batch with a refused message was not pipelined")
		}
		if got := latest(rooms[2]); !slices.Equal(got, []string{string(msgs[2].EventID())}) {
			t.Errorf("room 2 after the refusal: latest %v, want its first message", got)
		}

		// A batch of refusals alone writes and publishes nothing.
		published = log.count()
		all, err = rooms[0].handleAll(rooms[2].request(refused), rooms[1].request(rooms[1].message(mallory, "me neither")))
		if err != nil {
			t.Fatal(err)
		}
		for i, res := range all {
			if !apierr.HasCode(res.err, apierr.CodeForbidden) {
				t.Errorf("refusal %d answered %v, want M_FORBIDDEN", i, res.err)
			}
		}
		if n := log.count() - published; n != 0 {
			t.Errorf("%d outputs published for refused events", n)
		}
		for _, h := range rooms {
			h.checkCache(true)
		}
	})
}

// TestOutputAfterFailedPublish: when the outputs of a batch cannot be
// published, its input fails and is redelivered; then each message is
// announced and stored once, and its sender answered. On PostgreSQL the
// pipelined batch committed before the publish failed, so the redelivered
// input finds its messages stored and announces them again. A state event
// is announced with its commit, so a redelivery does not announce it
// again, and neither is an event submitted again in a new input message.
func TestOutputAfterFailedPublish(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, log := newTestRoomserver(t, db)
		alice := "@alice:" + string(testOrigin)
		rooms := []*testRoom{newTestRoom(t, r, 1), newTestRoom(t, r, 2)}
		m0, m1 := rooms[0].message(alice, "one"), rooms[1].message(alice, "two")
		reqs := []api.InputRoomEventsRequest{rooms[0].request(m0), rooms[1].request(m1)}
		reqs[0].Events[0].TxnID = &api.TransactionID{UserID: alice, DeviceID: "DEV", Scope: "send:" + string(rooms[0].roomID), TransactionID: "t0"}

		published := log.count()
		log.fail.Store(true)
		if _, err := rooms[0].handleAll(reqs...); err == nil {
			t.Fatal("the batch succeeded with the log unavailable")
		}
		log.fail.Store(false)
		stored := func() int {
			t.Helper()
			var n int
			if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM roomserver_events WHERE event_id = $1 OR event_id = $2`,
				string(m0.EventID()), string(m1.EventID())).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// Pipelined, the batch committed before its publish failed; in a
		// transaction it rolled back.
		if n, want := stored(), map[bool]int{true: 2, false: 0}[db.Dialect.Engine == sqlutil.Postgres]; n != want {
			t.Fatalf("after the failed publish %d of the messages are stored, want %d", n, want)
		}
		// The log hands the messages over again, one per call.
		for i, req := range reqs {
			res, err := rooms[0].handleMsgs(true, req)
			if err == nil {
				err = res[0].err
			}
			if err != nil {
				t.Fatalf("message %d again: %v", i, err)
			}
			if len(res[0].txnEvents) != 0 {
				t.Errorf("message %d again answered with another event: %v", i, res[0].txnEvents)
			}
		}
		want := []string{string(m0.EventID()), string(m1.EventID())}
		if got := log.outputsSince(t, published); !slices.Equal(got, want) {
			t.Errorf("published %v, want %v", got, want)
		}
		for i, h := range rooms {
			res, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID)})
			if err != nil || !slices.Equal(res.LatestEvents, want[i:i+1]) {
				t.Errorf("room %d: latest %v, %v; want its message alone", i, res.LatestEvents, err)
			}
		}
		if n := stored(); n != 2 {
			t.Errorf("%d rows of the two messages, want 2", n)
		}

		// Redelivered, a state event stored before is not announced again;
		// nor is a message submitted again in a new input message.
		topic := rooms[0].build(event.Proto{Type: "m.room.topic", StateKey: new(""), Sender: matrix.UserID(alice),
			Content: map[string]any{"topic": "again"}})
		published = log.count()
		if err := rooms[0].send(topic); err != nil {
			t.Fatal(err)
		}
		if _, err := rooms[0].handleMsgs(true, rooms[0].request(topic)); err != nil {
			t.Fatal(err)
		}
		if err := rooms[1].send(m1); err != nil {
			t.Fatal(err)
		}
		if got := log.outputsSince(t, published); !slices.Equal(got, []string{string(topic.EventID())}) {
			t.Errorf("published %v, want the state event once", got)
		}
	})
}

// TestInputAfterCommitsLost (PostgreSQL): when the database recovered from
// a crash since the input's commits began (simulated by emptying the
// epochs, as recovery empties every unlogged table), the next write fails
// with sqlutil.ErrCommitsLost and stores nothing, whether pipelined or in a
// transaction; everything cached is forgotten, and the input, taken again,
// is stored on the head read from the database.
func TestInputAfterCommitsLost(t *testing.T) {
	db := storagetest.Postgres(t)
	r, log := newTestRoomserver(t, db)
	alice := "@alice:" + string(testOrigin)
	h := newTestRoom(t, r, 1)
	if err := h.send(h.message(alice, "before")); err != nil {
		t.Fatal(err)
	}
	h.checkCache(true)
	crash := func() {
		t.Helper()
		if _, err := db.ExecContext(t.Context(), `DELETE FROM axon_commit_epochs`); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name string
		ev   func() *event.PDU
	}{
		{"pipelined message", func() *event.PDU { return h.message(alice, "after") }},
		{"state event in a transaction", func() *event.PDU {
			return h.build(event.Proto{Type: "m.room.topic", StateKey: new(""), Sender: matrix.UserID(alice), Content: map[string]any{"topic": "after"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.checkCache(true)
			ev := tc.ev()
			batches, published := r.pipelined.Load(), log.count()
			crash()
			err := h.send(ev)
			if !errors.Is(err, sqlutil.ErrCommitsLost) {
				t.Fatalf("input after the crash: %v, want ErrCommitsLost", err)
			}
			if n := log.count(); n != published {
				t.Errorf("%d outputs published for input that was not stored", n-published)
			}
			var stored int
			if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM roomserver_events WHERE event_id = $1`, string(ev.EventID())).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored != 0 {
				t.Fatal("the event was stored though commits were lost")
			}
			r.heads.mu.Lock()
			cached := len(r.heads.rooms)
			r.heads.mu.Unlock()
			r.nids.mu.Lock()
			nids := len(r.nids.free)
			r.nids.mu.Unlock()
			if auth := len(r.authEvs.c.Entries()); cached != 0 || auth != 0 || nids != 0 {
				t.Errorf("after the loss %d heads, %d auth events and %d event numbers cached, want none", cached, auth, nids)
			}
			if !eventlog.IsRewind(err) {
				t.Errorf("input after the crash failed with %v, not asking for a rewind", err)
			}
			// Taken again (the log redelivers it), it is stored.
			if err := h.send(ev); err != nil {
				t.Fatalf("input taken again: %v", err)
			}
			if got := log.outputsSince(t, published); !slices.Equal(got, []string{string(ev.EventID())}) {
				t.Errorf("published %v, want the event once", got)
			}
			h.checkCache(true)
			// With the head read again, messages are pipelined again.
			batches = r.pipelined.Load()
			if err := h.send(h.message(alice, "later")); err != nil {
				t.Fatal(err)
			}
			if r.pipelined.Load() != batches+1 {
				t.Error("the next message was not pipelined")
			}
		})
	}
}
