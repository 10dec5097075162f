package storage

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// TestPushMigration2 fills the version 1 notification tables, migrates
// (through version 3's rekeyed table and version 4's user numbers too), and
// reads the notifications back: rooms, actions, threads, highlights
// and read flags are carried over, and receipts still mark read and recount
// the carried rows (whose counts have no first_seq yet).
func TestPushMigration2(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		if err := sqlutil.Migrate(ctx, db, "userapi_push", pushMigrations[:1]); err != nil {
			t.Fatal(err)
		}
		type v1 struct {
			local, room, event, thread string
			seq                        int64
			highlight, read            bool
			actions                    string
		}
		old := []v1{
			{"bob", "!a:x", "$1", "", 10, false, true, `["notify"]`},
			{"carol", "!a:x", "$1", "", 10, false, false, `["notify"]`},
			{"bob", "!b:x", "$2", "", 11, true, false, `["notify",{"set_tweak":"highlight"}]`},
			{"bob", "!a:x", "$3", "$1", 12, false, false, `["notify"]`},
			{"bob", "!a:x", "$4", "", 13, false, false, `["notify"]`},
			// A repeated row: versions 1 and 2 had no key to refuse it, and
			// versions 3 and 4 keep one.
			{"bob", "!a:x", "$4", "", 13, false, false, `["notify"]`},
		}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			seen := map[string]bool{}
			for _, o := range old {
				if !seen[o.event] {
					seen[o.event] = true
					if _, err := (PushEventsTable{}).InsertMany(ctx, tx, []PushEvent{{EventID: o.event, RoomID: o.room, Seq: o.seq,
						Event: []byte(`{"event_id":"` + o.event + `","origin_server_ts":7}`)}}); err != nil {
						return err
					}
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO userapi_notifications (localpart, room_id, event_id, thread_id, seq, ts, highlight, read, actions)
					VALUES ($1, $2, $3, $4, $5, 7, $6, $7, $8)`, o.local, o.room, o.event, o.thread, o.seq, o.highlight, o.read, o.actions); err != nil {
					return err
				}
			}
			// bob's counts in !a:x as version 1 kept them: 2 unread in the
			// main timeline, 1 in thread $1.
			_, err := tx.ExecContext(ctx, `INSERT INTO userapi_notification_counts (room_id, localpart, thread_id, notification_count, highlight_count)
				VALUES ('!a:x', 'bob', '', 1, 0), ('!a:x', 'bob', '$1', 1, 0)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		st := open(t, db)

		type note struct {
			seq       int64
			room      string
			highlight bool
			read      bool
			actions   string
		}
		list := func(local string) []note {
			t.Helper()
			rows, err := st.Push.Notifs.Select(ctx, db.Reader(), local, 0, 10, false)
			if err != nil {
				t.Fatal(err)
			}
			var out []note
			for _, r := range rows {
				if r.TS != 7 {
					t.Errorf("notification %d: ts %d, want 7", r.ID, r.TS)
				}
				out = append(out, note{r.ID, r.RoomID, r.Highlight, r.Read, r.Actions})
			}
			return out
		}
		want := []note{
			{13, "!a:x", false, false, `["notify"]`},
			{12, "!a:x", false, false, `["notify"]`},
			{11, "!b:x", true, false, `["notify",{"set_tweak":"highlight"}]`},
			{10, "!a:x", false, true, `["notify"]`},
		}
		if got := list("bob"); !slices.Equal(got, want) {
			t.Fatalf("bob's notifications after migration = %+v, want %+v", got, want)
		}
		if got := list("carol"); !slices.Equal(got, []note{{10, "!a:x", false, false, `["notify"]`}}) {
			t.Fatalf("carol's notifications after migration = %+v", got)
		}

		// An unthreaded receipt at $3 marks bob's $3 read (and $1, already
		// read), leaving $4 in the main timeline; thread $1 is cleared.
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if err := st.Push.Notifs.MarkRead(ctx, tx, "bob", "!a:x", 12, nil); err != nil {
				return err
			}
			return st.Push.Counts.Recount(ctx, tx, "bob", "!a:x", 12, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		counts, err := st.Push.Counts.Select(ctx, db.Reader(), "!a:x", []string{"bob", "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 1 || counts[0] != (CountRow{Localpart: "bob", ThreadID: "", Notification: 1}) {
			t.Errorf("counts after receipt = %+v, want bob's main timeline at 1", counts)
		}
		want[1].read = true
		if got := list("bob"); !slices.Equal(got, want) {
			t.Errorf("bob's notifications after receipt = %+v, want %+v", got, want)
		}
	})
}

// TestPushGenerationsShared: the userapi API and push evaluation open the
// storage separately; a rules or pushers change through one must move the
// generation the other's caches watch.
func TestPushGenerationsShared(t *testing.T) {
	db := storagetest.SQLite(t)
	api, push := open(t, db), open(t, db)
	rules, pushers := push.Push.Rules.Generation(), push.Push.Pushers.Generation()
	if ok, err := api.Push.Rules.CompareAndSwap(t.Context(), db, "bob", 0, []byte(`{}`)); err != nil || !ok {
		t.Fatalf("CompareAndSwap = %v, %v", ok, err)
	}
	api.Push.Pushers.Changed()
	if got := push.Push.Rules.Generation(); got == rules {
		t.Errorf("rules generation seen by the other storage = %d, unchanged", got)
	}
	if got := push.Push.Pushers.Generation(); got == pushers {
		t.Errorf("pushers generation seen by the other storage = %d, unchanged", got)
	}
	// A failed compare and swap changes nothing.
	rules = push.Push.Rules.Generation()
	if ok, _ := api.Push.Rules.CompareAndSwap(t.Context(), db, "bob", 0, []byte(`{}`)); ok {
		t.Fatal("CompareAndSwap at a stale version succeeded")
	}
	if got := push.Push.Rules.Generation(); got != rules {
		t.Errorf("rules generation after a failed swap = %d, want %d", got, rules)
	}
}

// TestPushNIDs: a room or actions list keeps the number it got first, from
// inside a transaction or outside one, and different ones get different
// numbers.
func TestPushNIDs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := open(t, db)
		a, err := st.Push.Rooms.NID(ctx, db, "!a:x")
		if err != nil {
			t.Fatal(err)
		}
		var again int64
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			again, err = st.Push.Rooms.NID(ctx, tx, "!a:x")
			return err
		}); err != nil || again != a {
			t.Fatalf("room !a:x numbered %d, then %d (%v)", a, again, err)
		}
		b, err := st.Push.Rooms.NID(ctx, db, "!b:x")
		if err != nil || b == a {
			t.Fatalf("room !b:x = %d, %v; want a number other than %d", b, err, a)
		}
		n1, err1 := st.Push.Actions.NID(ctx, db, `["notify"]`)
		n2, err2 := st.Push.Actions.NID(ctx, db, `["notify"]`)
		n3, err3 := st.Push.Actions.NID(ctx, db, `["notify",{"set_tweak":"highlight"}]`)
		if err := errors.Join(err1, err2, err3); err != nil || n1 != n2 || n3 == n1 {
			t.Fatalf("actions numbered %d, %d, %d (%v); want the first two equal and the third different", n1, n2, n3, err)
		}
	})
}

// TestPushEventsInsertMany: the ids recorded now are returned, not those
// recorded before or repeated; more rows than one statement takes are
// split; an event that notified nobody keeps no JSON.
func TestPushEventsInsertMany(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := open(t, db)
		if _, err := st.Push.Events.InsertMany(ctx, db, []PushEvent{{EventID: "$old", RoomID: "!r:x", Seq: 1, Event: []byte(`{"a":1}`)}}); err != nil {
			t.Fatal(err)
		}
		evs := []PushEvent{{EventID: "$old", RoomID: "!r:x", Seq: 1}}
		for i := range pushEventsPerStatement + 10 {
			e := PushEvent{EventID: fmt.Sprintf("$e%d", i), RoomID: "!r:x", Seq: int64(10 + i)}
			if i%2 == 0 {
				e.Event = []byte(fmt.Sprintf(`{"n":%d}`, i))
			}
			evs = append(evs, e)
		}
		var fresh map[string]bool
		err := db.InTx(ctx, func(tx *sql.Tx) (err error) {
			fresh, err = st.Push.Events.InsertMany(ctx, tx, evs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(fresh) != pushEventsPerStatement+10 || fresh["$old"] || !fresh["$e0"] || !fresh[fmt.Sprintf("$e%d", pushEventsPerStatement+9)] {
			t.Fatalf("fresh = %d ids (old: %v), want the %d new ones", len(fresh), fresh["$old"], pushEventsPerStatement+10)
		}
		for _, e := range evs[1:4] {
			seq, err := st.Push.Events.SelectSeq(ctx, db.Reader(), e.EventID)
			if err != nil || seq != e.Seq {
				t.Errorf("SelectSeq(%s) = %d, %v; want %d", e.EventID, seq, err, e.Seq)
			}
		}
		again, err := st.Push.Events.InsertMany(ctx, db, evs[:3])
		if err != nil || len(again) != 0 {
			t.Errorf("InsertMany again = %v, %v; want nothing fresh", again, err)
		}
	})
}
