package storage

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// TestNotificationsInsert stores the notifications of three events in one
// call (the first two have 600 members each: many statements on SQLite,
// one on PostgreSQL) and reads every member's back with its event's
// sequence, room, thread and highlight.
func TestNotificationsInsert(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		const members = 600
		type ev struct {
			id, thread string
			seq        int64
			rows       int
		}
		evs := []ev{{"$a", "", 10, members}, {"$b", "$a", 11, members}, {"$c", "", 12, 1}}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			roomNID, err := st.Push.Rooms.NID(ctx, tx, "!r:x")
			if err != nil {
				return err
			}
			actions, err := st.Push.Actions.NID(ctx, tx, `["notify"]`)
			if err != nil {
				return err
			}
			var batch []EventNotifications
			for _, e := range evs {
				if _, err := st.Push.Events.InsertMany(ctx, tx, []PushEvent{{EventID: e.id, RoomID: "!r:x", Seq: e.seq, Event: []byte(`{"origin_server_ts":7}`)}}); err != nil {
					return err
				}
				en := EventNotifications{Seq: e.seq, RoomNID: roomNID, Thread: e.thread}
				for i := range e.rows {
					local := fmt.Sprintf("u%d", i)
					user, err := st.Push.Users.NID(ctx, tx, local)
					if err != nil {
						return err
					}
					en.Rows = append(en.Rows, NewNotification{Localpart: local, UserNID: user, Highlight: i%2 == 1, ActionsNID: actions})
				}
				batch = append(batch, en)
			}
			return st.Push.Notifs.Insert(ctx, tx, batch)
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM userapi_notifications`).Scan(&n); err != nil || n != 2*members+1 {
			t.Fatalf("%d notifications stored (%v), want %d", n, err, 2*members+1)
		}
		for _, local := range []string{"u0", "u1", "u599"} {
			rows, err := st.Push.Notifs.Select(ctx, db.Reader(), local, 0, 10, false)
			if err != nil {
				t.Fatal(err)
			}
			want := []ev{evs[1], evs[0]}
			if local == "u0" {
				want = []ev{evs[2], evs[1], evs[0]}
			}
			if len(rows) != len(want) {
				t.Fatalf("%s has %d notifications, want %d", local, len(rows), len(want))
			}
			for i, r := range rows {
				w := want[i]
				if r.ID != w.seq || r.RoomID != "!r:x" || r.ThreadID != w.thread || r.Highlight != (local != "u0") || r.Actions != `["notify"]` {
					t.Errorf("%s's notification %d = %+v, want seq %d thread %q", local, i, r, w.seq, w.thread)
				}
			}
		}
	})
}

// TestCountGroups adds counts in two threads of one room and in another
// room with one call (a row listed twice is added up), twice (the second
// adds to the first), and reads the
// listed users' rows of both rooms back with one: a user listed for one
// room only gets no rows of the other.
func TestCountGroups(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		groups := []CountGroup{
			{RoomID: "!a:x", Thread: "", FirstSeq: 5, Deltas: []CountDelta{{"bob", 2, 1}, {"carol", 1, 0}}},
			{RoomID: "!a:x", Thread: "$t", FirstSeq: 6, Deltas: []CountDelta{{"bob", 1, 0}}},
			{RoomID: "!b:x", Thread: "", FirstSeq: 7, Deltas: []CountDelta{{"bob", 3, 0}, {"carol", 4, 2}}},
			// The first group's row again: added up with it.
			{RoomID: "!a:x", Thread: "", FirstSeq: 8, Deltas: []CountDelta{{"bob", 1, 1}}},
		}
		for range 2 {
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return st.Push.Counts.AddGroups(ctx, tx, groups) }); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.Push.Counts.SelectRooms(ctx, db.Reader(), map[string][]string{"!a:x": {"bob"}, "!b:x": {"bob", "carol"}})
		if err != nil {
			t.Fatal(err)
		}
		sortRows := func(rs []CountRow) []CountRow {
			slices.SortFunc(rs, func(a, b CountRow) int {
				return strings.Compare(a.Localpart+"\x00"+a.ThreadID, b.Localpart+"\x00"+b.ThreadID)
			})
			return rs
		}
		want := map[string][]CountRow{
			"!a:x": {{"bob", "", 6, 4}, {"bob", "$t", 2, 0}},
			"!b:x": {{"bob", "", 6, 0}, {"carol", "", 8, 4}},
		}
		if len(got) != len(want) {
			t.Fatalf("SelectRooms = %+v, want %+v", got, want)
		}
		for room, w := range want {
			if g := sortRows(got[room]); !slices.Equal(g, sortRows(w)) {
				t.Errorf("%s: %+v, want %+v", room, g, w)
			}
		}
	})
}

// TestPushUserNIDs: users numbered before keep their numbers, new ones get
// new numbers, and each user has one.
func TestPushUserNIDs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		bob, err := st.Push.Users.NID(ctx, db, "bob")
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Push.Users.NIDs(ctx, db, []string{"carol", "bob", "dave"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got["bob"] != bob || got["carol"] == 0 || got["dave"] == 0 || got["carol"] == got["dave"] || got["carol"] == bob {
			t.Fatalf("NIDs = %v (bob was %d)", got, bob)
		}
		for l, n := range got {
			if again, err := st.Push.Users.NID(ctx, db, l); err != nil || again != n {
				t.Errorf("NID(%s) = %d, %v; NIDs said %d", l, again, err, n)
			}
		}
	})
}
