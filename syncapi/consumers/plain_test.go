package consumers_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// TestRoomServerOutputPlain: on PostgreSQL a batch of plain messages is
// stored by one statement (at consecutive positions in batch order, indexed
// for search when it has text); a batch redelivered wholly or in part falls
// back to the transaction path and stores nothing twice. SQLite stores the
// same through the transaction path.
func TestRoomServerOutputPlain(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		pg := db.Dialect.Engine == sqlutil.Postgres
		alice := f.n.Listen("@a:x")
		defer alice.Close()

		var b batch
		b.add(room, rsapi.OutputEvent{EventID: "$create", Event: event("m.room.create", "@a:x", sk(""), `{}`), AddsState: []string{"$create"}})
		b.add(room, rsapi.OutputEvent{EventID: "$join", Event: event("m.room.member", "@a:x", sk("@a:x"), `{"membership":"join"}`), AddsState: []string{"$join"}})
		if err := f.h.HandleBatch(ctx, b.msgs); err != nil {
			t.Fatalf("HandleBatch(state) = %v", err)
		}
		if n := consumers.PlainBatches(f.h); n != 0 {
			t.Fatalf("a batch of state events was stored as plain (%d)", n)
		}
		<-alice.C()

		// fast checks that the batches since the last call stored by one
		// statement were want (PostgreSQL) or none (SQLite).
		var plainSeen int64
		fast := func(what string, want int64) {
			t.Helper()
			if !pg {
				want = 0
			}
			got := consumers.PlainBatches(f.h) - plainSeen
			if got != want {
				t.Errorf("%s: %d batches stored by one statement, want %d", what, got, want)
			}
			plainSeen += got
		}
		// timeline is what the room's timeline must read; searched the
		// positions that must be indexed.
		timeline := []string{"$create", "$join"}
		searched := map[string]bool{}
		handle := func(what string, evs ...rsapi.OutputEvent) {
			t.Helper()
			b.msgs = nil
			for _, ev := range evs {
				b.add(room, ev)
			}
			if err := f.h.HandleBatch(ctx, b.msgs); err != nil {
				t.Fatalf("HandleBatch(%s) = %v", what, err)
			}
		}
		msg := func(id, content string) rsapi.OutputEvent {
			return rsapi.OutputEvent{EventID: id, Event: event("m.room.message", "@a:x", nil, content)}
		}
		check := func(what string) {
			t.Helper()
			evs, _, err := f.db.Events.Recent(ctx, f.db.DB.Reader(), room, 0, f.position(), 100)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i, e := range evs {
				ids = append(ids, e.EventID)
				if e.Position != streams.Position(i+1) {
					t.Errorf("%s: %s at %d, want %d (positions dense, in order)", what, e.EventID, e.Position, i+1)
				}
			}
			if !slices.Equal(ids, timeline) {
				t.Errorf("%s: timeline %v, want %v", what, ids, timeline)
			}
			if p := f.position(); p != streams.Position(len(timeline)) {
				t.Errorf("%s: stream at %d, want %d", what, p, len(timeline))
			}
			if p := f.n.Current().Get(streams.PDU); p != f.position() {
				t.Errorf("%s: notifier at %d, storage at %d", what, p, f.position())
			}
			var want []streams.Position
			for _, e := range evs {
				if searched[e.EventID] {
					want = append(want, e.Position)
				}
			}
			if got := f.searchPositions(); !slices.Equal(got, want) {
				t.Errorf("%s: search rows at %v, want %v", what, got, want)
			}
		}

		withTxn := msg("$m3", `{"body":"third one"}`)
		withTxn.TxnID = &rsapi.TransactionID{UserID: "@a:x", DeviceID: "DEV", TransactionID: "t1"}
		handle("plain", msg("$m1", `{"body":"hello world"}`), msg("$m2", `{}`), withTxn,
			rsapi.OutputEvent{EventID: "$m4", Event: event("m.custom", "@a:x", nil, `{"body":"not indexed"}`)})
		fast("plain", 1)
		timeline = append(timeline, "$m1", "$m2", "$m3", "$m4")
		searched["$m1"], searched["$m3"] = true, true
		check("plain")
		select {
		case <-alice.C():
		default:
			t.Error("plain batch: the joined user was not woken")
		}
		stored, err := f.db.Events.SelectByIDs(ctx, f.db.DB.Reader(), []string{"$m3"})
		if err != nil || len(stored) != 1 {
			t.Fatalf("SelectByIDs($m3) = %v, %v", stored, err)
		}
		if e := stored[0]; e.StateKey != nil || e.Txn.TxnID != "t1" || e.Txn.DeviceID != "DEV" || e.Txn.UserID != "@a:x" ||
			e.RoomVersion != "10" || e.Sender != "@a:x" || e.Type != "m.room.message" || string(e.JSON) != string(withTxn.Event) {
			t.Errorf("stored $m3 = %+v", e)
		}
		var ts int64
		if err := f.db.DB.QueryRowContext(ctx, `SELECT origin_server_ts FROM syncapi_output_room_events WHERE event_id = $1`, "$m1").Scan(&ts); err != nil || ts != 1700000000000 {
			t.Errorf("origin_server_ts of $m1 = %d, %v", ts, err)
		}
		hits := f.search("hello")
		if !slices.Equal(hits, []string{"$m1"}) {
			t.Errorf("search hello = %v, want [$m1]", hits)
		}

		// Redelivered wholly, then in part with new events around a stored one.
		handle("whole redelivery", msg("$m1", `{"body":"hello world"}`), msg("$m2", `{}`), withTxn)
		fast("whole redelivery", 0)
		check("whole redelivery")
		handle("partial redelivery", msg("$n1", `{"body":"new one"}`), msg("$m2", `{}`), msg("$n2", `{}`))
		fast("partial redelivery", 0)
		timeline = append(timeline, "$n1", "$n2")
		searched["$n1"] = true
		check("partial redelivery")
		if hits := f.search("hello"); !slices.Equal(hits, []string{"$m1"}) {
			t.Errorf("search hello after redeliveries = %v, want [$m1]", hits)
		}

		// Not for one statement: an event twice in the batch, a relation.
		handle("repeated id", msg("$r1", `{"body":"twice"}`), msg("$r1", `{"body":"twice"}`))
		fast("repeated id", 0)
		timeline = append(timeline, "$r1")
		searched["$r1"] = true
		check("repeated id")
		handle("relation", msg("$p1", `{}`), msg("$reply", `{"body":"re","m.relates_to":{"rel_type":"m.thread","event_id":"$p1"}}`))
		fast("relation", 0)
		timeline = append(timeline, "$p1", "$reply")
		searched["$reply"] = true
		check("relation")

		// A single message, after the failed attempts: positions go on densely.
		if err := f.handle(msg("$single", `{"body":"alone"}`)); err != nil {
			t.Fatal(err)
		}
		fast("single", 1)
		timeline = append(timeline, "$single")
		searched["$single"] = true
		check("single")
	})
}

// TestRoomServerOutputPlainRace: overlapping batches handled at once store
// each event once at dense positions (the copy that loses on PostgreSQL
// falls back after the winner commits).
func TestRoomServerOutputPlainRace(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		const rounds, workers = 10, 4
		for r := range rounds {
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					// Worker w sends events w and w+1 of the round.
					var b batch
					b.seq = uint64(1000 * (r*workers + w))
					for i := w; i <= w+1; i++ {
						id := fmt.Sprintf("$r%d_%d", r, i)
						b.add(room, rsapi.OutputEvent{EventID: id, Event: event("m.room.message", "@a:x", nil, `{"body":"race"}`)})
					}
					if err := f.h.HandleBatch(ctx, b.msgs); err != nil {
						// Two fallbacks can still race: the eventlog then retries one by one.
						for _, m := range b.msgs {
							if err := f.h.Handle(ctx, m); err != nil {
								t.Errorf("Handle(%s) = %v", m.Value.EventID, err)
							}
						}
					}
				})
			}
			wg.Wait()
		}
		evs, _, err := f.db.Events.Recent(ctx, f.db.DB.Reader(), room, 0, f.position(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if want := rounds * (workers + 1); len(evs) != want || f.position() != streams.Position(want) {
			t.Fatalf("%d events stored, stream at %d, want %d", len(evs), f.position(), want)
		}
		seen := map[string]bool{}
		for i, e := range evs {
			if seen[e.EventID] || e.Position != streams.Position(i+1) {
				t.Errorf("%s at %d (#%d): stored twice or positions not dense", e.EventID, e.Position, i+1)
			}
			seen[e.EventID] = true
		}
		if got := f.searchPositions(); len(got) != len(evs) {
			t.Errorf("%d search rows for %d events", len(got), len(evs))
		}
	})
}

// searchPositions are the positions the search index holds, in order.
func (f *fixture) searchPositions() []streams.Position {
	f.t.Helper()
	col := "rowid"
	if f.db.DB.Dialect.Engine == sqlutil.Postgres {
		col = "position"
	}
	rows, err := f.db.DB.Reader().QueryContext(f.t.Context(), `SELECT `+col+` FROM syncapi_search ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []streams.Position
	for rows.Next() {
		var p streams.Position
		if err := rows.Scan(&p); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// search returns the ids of the room's messages matching term, newest first.
func (f *fixture) search(term string) []string {
	f.t.Helper()
	hits, err := f.db.Search.Search(f.t.Context(), f.db.DB.Reader(), storage.SearchQuery{Terms: []string{term}, Rooms: []string{room}, Types: []string{"m.room.message"}, UpTo: f.position(), Limit: 10})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, h := range hits {
		out = append(out, h.Event.EventID)
	}
	return out
}
