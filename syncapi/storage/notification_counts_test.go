package storage_test

import (
	"fmt"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// TestNotificationCountsUpsertMany: the counts of many users are stored in
// statements of many rows; an update replaces counts and position, a user
// listed twice keeps the last counts (PostgreSQL refuses a statement that
// updates one row twice), and more users than one statement takes are all
// stored; UpsertAll does the same for several rooms at once.
func TestNotificationCountsUpsertMany(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		first := []storage.UserCounts{{UserID: "@a:x", Counts: []byte(`{"a":1}`)}, {UserID: "@b:x", Counts: []byte(`{"b":1}`)}}
		if err := s.Counts.UpsertMany(ctx, db, "!r:x", first, 3); err != nil {
			t.Fatal(err)
		}
		again := []storage.UserCounts{{UserID: "@a:x", Counts: []byte(`{"a":2}`)}, {UserID: "@a:x", Counts: []byte(`{"a":3}`)}}
		if err := s.Counts.UpsertMany(ctx, db, "!r:x", again, 5); err != nil {
			t.Fatal(err)
		}
		check := func(user, room, counts string, pos int64) {
			t.Helper()
			got, err := s.Counts.ForUser(ctx, db.Reader(), user, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := got[room]
			if !ok || string(c.Counts) != counts || int64(c.Position) != pos {
				t.Fatalf("counts of %s in %s = %+v (found %v), want %s at %d", user, room, c, ok, counts, pos)
			}
		}
		check("@a:x", "!r:x", `{"a":3}`, 5)
		check("@b:x", "!r:x", `{"b":1}`, 3)
		// More users than one statement holds.
		var many []storage.UserCounts
		for i := range 1203 {
			many = append(many, storage.UserCounts{UserID: fmt.Sprintf("@u%d:x", i), Counts: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if err := s.Counts.UpsertMany(ctx, db, "!big:x", many, 7); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM syncapi_notification_counts WHERE room_id = '!big:x' AND position = 7`).Scan(&n); err != nil || n != len(many) {
			t.Fatalf("stored %d rows, %v; want %d", n, err, len(many))
		}
		check("@u1202:x", "!big:x", `{"n":1202}`, 7)
		if err := s.Counts.UpsertMany(ctx, db, "!r:x", nil, 9); err != nil {
			t.Fatal(err)
		}
		// Several rooms at once, a user listed twice in one of them.
		all := []storage.RoomCounts{
			{RoomID: "!r:x", Users: []storage.UserCounts{{UserID: "@a:x", Counts: []byte(`{"a":4}`)}, {UserID: "@a:x", Counts: []byte(`{"a":5}`)}}},
			{RoomID: "!s:x", Users: []storage.UserCounts{{UserID: "@a:x", Counts: []byte(`{"s":0}`)}, {UserID: "@b:x", Counts: []byte(`{"s":2}`)}}},
			{RoomID: "!s:x", Users: []storage.UserCounts{{UserID: "@a:x", Counts: []byte(`{"s":1}`)}}}, // the room again: its last counts win
		}
		if err := s.Counts.UpsertAll(ctx, db, all, 11); err != nil {
			t.Fatal(err)
		}
		check("@a:x", "!r:x", `{"a":5}`, 11)
		check("@a:x", "!s:x", `{"s":1}`, 11)
		check("@b:x", "!s:x", `{"s":2}`, 11)
		check("@b:x", "!r:x", `{"b":1}`, 3)
		if err := s.Counts.UpsertAll(ctx, db, nil, 12); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStoreCounts: StoreCounts takes the notification stream's next
// position (inserting the counter row, then incrementing it, after other
// writers too), stores the counts at it, the last of a user repeated in a
// batch winning, and leaves the stream's current position at it.
func TestStoreCounts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		uc := func(user, counts string) storage.UserCounts {
			return storage.UserCounts{UserID: user, Counts: []byte(counts)}
		}
		store := func(want streams.Position, rooms ...storage.RoomCounts) {
			t.Helper()
			pos, err := s.StoreCounts(ctx, rooms)
			if err != nil || pos != want {
				t.Fatalf("StoreCounts = %d, %v; want %d", pos, err, want)
			}
			if cur, err := s.Positions.Current(ctx, db.Reader(), streams.Notification); err != nil || cur != want {
				t.Fatalf("Current = %d, %v; want %d", cur, err, want)
			}
		}
		check := func(user, room, counts string, pos streams.Position) {
			t.Helper()
			got, err := s.Counts.ForUser(ctx, db.Reader(), user, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := got[room]; !ok || string(c.Counts) != counts || c.Position != pos {
				t.Fatalf("counts of %s in %s = %+v (found %v), want %s at %d", user, room, c, ok, counts, pos)
			}
		}
		store(1, storage.RoomCounts{RoomID: "!r:x", Users: []storage.UserCounts{uc("@a:x", `{"a":1}`), uc("@b:x", `{"b":1}`), uc("@a:x", `{"a":2}`)}},
			storage.RoomCounts{RoomID: "!s:x", Users: []storage.UserCounts{uc("@a:x", `{"s":1}`)}},
			storage.RoomCounts{RoomID: "!r:x", Users: []storage.UserCounts{uc("@b:x", `{"b":2}`)}})
		check("@a:x", "!r:x", `{"a":2}`, 1)
		check("@b:x", "!r:x", `{"b":2}`, 1)
		check("@a:x", "!s:x", `{"s":1}`, 1)
		store(2, storage.RoomCounts{RoomID: "!s:x", Users: []storage.UserCounts{uc("@a:x", `{"s":2}`), uc("@a:x", `{"s":3}`)}})
		check("@a:x", "!s:x", `{"s":3}`, 2)
		check("@a:x", "!r:x", `{"a":2}`, 1)
		// Another writer of the stream in between.
		if p, err := s.Positions.Next(ctx, db, streams.Notification); err != nil || p != 3 {
			t.Fatalf("Next = %d, %v; want 3", p, err)
		}
		store(4, storage.RoomCounts{RoomID: "!r:x", Users: []storage.UserCounts{uc("@b:x", `{"b":3}`)}})
		check("@b:x", "!r:x", `{"b":3}`, 4)
		check("@a:x", "!s:x", `{"s":3}`, 2)
		// Other streams are left alone.
		if p, err := s.Positions.Current(ctx, db.Reader(), streams.PDU); err != nil || p != 0 {
			t.Fatalf("PDU stream at %d, %v; want 0", p, err)
		}
	})
}
