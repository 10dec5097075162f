package storage_test

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// TestRangePagingConcurrentSenders: events of one room written by several
// concurrent transactions come back from Range, paged with small pages in
// either direction, each exactly once and in stream order, while another
// room's events interleave.
func TestRangePagingConcurrentSenders(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		const senders, perSender = 5, 30
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for w := range senders {
			wg.Go(func() {
				for i := range perSender {
					err := s.InTx(ctx, func(tx *sql.Tx) error {
						p, err := s.Positions.Next(ctx, tx, streams.PDU)
						if err != nil {
							return err
						}
						room := "!r:x"
						if i%4 == 3 {
							room = "!other:x"
						}
						e := roomEvent(p, room, "m.room.message", nil)
						e.EventID, e.Sender = fmt.Sprintf("$s%d_%d", w, i), fmt.Sprintf("@s%d:x", w)
						_, err = s.Events.Insert(ctx, tx, e)
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("sender: %v", err)
		}
		var want []string
		for w := range senders {
			for i := range perSender {
				if i%4 != 3 {
					want = append(want, fmt.Sprintf("$s%d_%d", w, i))
				}
			}
		}
		slices.Sort(want)
		upTo, err := s.Positions.Current(ctx, db.Reader(), streams.PDU)
		if err != nil {
			t.Fatal(err)
		}
		for _, forward := range []bool{true, false} {
			for _, pageSize := range []int{1, 3, 7} {
				var got []storage.Event
				from := upTo
				if forward {
					from = 0
				}
				for pages := 0; ; pages++ {
					if pages > 1000 {
						t.Fatal("paging does not end")
					}
					var page []storage.Event
					if forward {
						page, err = s.Events.Range(ctx, db.Reader(), "!r:x", from, upTo, true, pageSize)
					} else {
						page, err = s.Events.Range(ctx, db.Reader(), "!r:x", 0, from, false, pageSize)
					}
					if err != nil {
						t.Fatal(err)
					}
					if len(page) == 0 {
						break
					}
					got = append(got, page...)
					// The next page starts from the last event's position: the
					// token /messages hands out.
					from = page[len(page)-1].Position
					if !forward {
						from--
					}
				}
				for i := 1; i < len(got); i++ {
					if forward && got[i].Position <= got[i-1].Position || !forward && got[i].Position >= got[i-1].Position {
						t.Fatalf("forward=%v page %d: positions out of order at %d: %d then %d", forward, pageSize, i, got[i-1].Position, got[i].Position)
					}
				}
				gotIDs := ids(got)
				slices.Sort(gotIDs)
				if !slices.Equal(gotIDs, want) {
					t.Fatalf("forward=%v page %d: got %d events, want %d, each once", forward, pageSize, len(gotIDs), len(want))
				}
			}
		}
	})
}

func TestSelectByIDAndUpdateJSON(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		if _, err := s.Events.Insert(ctx, db, roomEvent(1, "!a:x", "m.room.message", nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Events.SelectByID(ctx, db.Reader(), "$nope"); !errors.Is(err, storage.ErrNoEvent) {
			t.Fatalf("SelectByID(unknown) = %v, want ErrNoEvent", err)
		}
		if ok, err := s.Events.UpdateJSON(ctx, db, "!b:x", "$e1", []byte(`{}`)); err != nil || ok {
			t.Fatalf("UpdateJSON(other room) = %v, %v; want false", ok, err)
		}
		for range 2 { // idempotent
			if ok, err := s.Events.UpdateJSON(ctx, db, "!a:x", "$e1", []byte(`{"redacted":1}`)); err != nil || !ok {
				t.Fatalf("UpdateJSON = %v, %v; want true", ok, err)
			}
		}
		e, err := s.Events.SelectByID(ctx, db.Reader(), "$e1")
		if err != nil || string(e.JSON) != `{"redacted":1}` || e.Position != 1 {
			t.Fatalf("SelectByID = %+v, %v", e, err)
		}
	})
}

func TestByTimestamp(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		// Timestamps need not follow positions (other servers' clocks).
		tss := map[streams.Position]int64{1: 100, 2: 300, 3: 200, 4: 200, 5: 500}
		for p := streams.Position(1); p <= 5; p++ {
			e := roomEvent(p, "!a:x", "m.room.message", nil)
			e.JSON = fmt.Appendf(nil, `{"type":"m.room.message","sender":"@a:x","content":{},"origin_server_ts":%d}`, tss[p])
			if _, err := s.Events.Insert(ctx, db, e); err != nil {
				t.Fatal(err)
			}
		}
		other := roomEvent(6, "!b:x", "m.room.message", nil)
		other.JSON = []byte(`{"type":"m.room.message","sender":"@a:x","content":{},"origin_server_ts":250}`)
		if _, err := s.Events.Insert(ctx, db, other); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			ts      int64
			forward bool
			upTo    streams.Position
			want    []string
		}{
			{name: "forward from between", ts: 150, forward: true, upTo: 6, want: []string{"$e3", "$e4", "$e2", "$e5"}},
			{name: "forward exact", ts: 300, forward: true, upTo: 6, want: []string{"$e2", "$e5"}},
			{name: "backward", ts: 250, forward: false, upTo: 6, want: []string{"$e4", "$e3", "$e1"}},
			{name: "backward bounded by position", ts: 1000, forward: false, upTo: 3, want: []string{"$e2", "$e3", "$e1"}},
			{name: "none after", ts: 501, forward: true, upTo: 6, want: nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				// Read one at a time through the cursor, as the handler pages.
				var got []string
				var cursor *storage.TSCursor
				for {
					evs, cs, err := s.Events.ByTimestamp(ctx, db.Reader(), "!a:x", tc.ts, cursor, tc.forward, tc.upTo, 1)
					if err != nil {
						t.Fatal(err)
					}
					if len(evs) == 0 {
						break
					}
					if cs[0].TS != tss[evs[0].Position] {
						t.Fatalf("cursor ts %d, want %d", cs[0].TS, tss[evs[0].Position])
					}
					got = append(got, evs[0].EventID)
					cursor = &cs[0]
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			})
		}
	})
}
