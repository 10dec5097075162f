package storage_test

import (
	"math"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// TestMembershipState checks the latest change position that /sync caches
// memberships by: removals count as changes though they leave no
// membership.
func TestMembershipState(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		const user = "@u:x"
		member := storage.Tuple{Type: storage.MemberEvent, StateKey: user}
		// 2: join !a, 4: join !b, 6: @u's member tuple removed from !a (state resolution), 8: someone else.
		deltas := []storage.Delta{
			{Position: 2, RoomID: "!a:x", Tuple: member, EventID: "$e2", Membership: "join"},
			{Position: 4, RoomID: "!b:x", Tuple: member, EventID: "$e4", Membership: "join"},
			{Position: 6, RoomID: "!a:x", Tuple: member},
			{Position: 8, RoomID: "!b:x", Tuple: storage.Tuple{Type: storage.MemberEvent, StateKey: "@v:x"}, EventID: "$e8", Membership: "join"},
		}
		for _, d := range deltas {
			if err := s.Deltas.Insert(ctx, db, d); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			at     streams.Position
			rooms  []string
			latest streams.Position
		}{
			{at: 1, rooms: nil, latest: 0},
			{at: 3, rooms: []string{"!a:x"}, latest: 2},
			{at: 5, rooms: []string{"!a:x", "!b:x"}, latest: 4},
			{at: 6, rooms: []string{"!b:x"}, latest: 6},
			{at: 9, rooms: []string{"!b:x"}, latest: 6},
		}
		for _, tc := range tests {
			ms, latest, err := s.Deltas.MembershipState(ctx, db.Reader(), user, tc.at)
			var rooms []string
			for _, m := range ms {
				rooms = append(rooms, m.RoomID)
			}
			if err != nil || !slices.Equal(rooms, tc.rooms) || latest != tc.latest {
				t.Errorf("MembershipState(%d) = %v, %d, %v; want %v, %d", tc.at, rooms, latest, err, tc.rooms, tc.latest)
			}
		}
		ch, err := s.Deltas.MembershipChanges(ctx, db.Reader(), user, 4, 9)
		if err != nil || len(ch) != 1 || ch[0].RoomID != "!a:x" || ch[0].EventID != "" {
			t.Fatalf("MembershipChanges(4, 9] = %+v, %v; want the removal from !a:x", ch, err)
		}
	})
}

func TestEventsInRange(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		rooms := []string{"!a:x", "!b:x", "!c:x"}
		for p := streams.Position(1); p <= 9; p++ {
			if _, err := s.Events.Insert(ctx, db, roomEvent(p, rooms[p%3], "m.room.message", nil)); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			rooms       []string
			after, upTo streams.Position
			want        []string
		}{
			{rooms: []string{"!a:x", "!b:x"}, after: 2, upTo: 7, want: []string{"$e3", "$e4", "$e6", "$e7"}},
			{rooms: []string{"!c:x"}, after: 0, upTo: 9, want: []string{"$e2", "$e5", "$e8"}},
			{rooms: []string{"!a:x"}, after: 5, upTo: 5, want: []string{}},
			{rooms: nil, after: 0, upTo: 9, want: []string{}},
		}
		for _, tc := range tests {
			evs, err := s.Events.InRange(ctx, db.Reader(), tc.rooms, tc.after, tc.upTo)
			if err != nil || !slices.Equal(ids(evs), tc.want) {
				t.Errorf("InRange(%v, %d, %d) = %v, %v; want %v", tc.rooms, tc.after, tc.upTo, ids(evs), err, tc.want)
			}
		}
	})
}

func TestAccountDataEntry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		if a, ok, err := s.AccountData.Entry(ctx, db.Reader(), "@u:x", "", "m.ignored_user_list"); err != nil || ok || a.Position != 0 {
			t.Fatalf("Entry(absent) = %+v, %v, %v; want none at 0", a, ok, err)
		}
		for _, a := range []storage.AccountData{
			{Type: "m.ignored_user_list", Content: []byte(`{"ignored_users":{}}`), Version: 1, Position: 3},
			{RoomID: "!r:x", Type: "m.ignored_user_list", Content: []byte(`{}`), Version: 1, Position: 4},
			{Type: "m.ignored_user_list", Content: []byte(`{"ignored_users":{"@v:x":{}}}`), Version: 2, Position: 7},
		} {
			if err := s.AccountData.Upsert(ctx, db, "@u:x", a); err != nil {
				t.Fatal(err)
			}
		}
		a, ok, err := s.AccountData.Entry(ctx, db.Reader(), "@u:x", "", "m.ignored_user_list")
		if err != nil || !ok || a.Position != 7 || a.Version != 2 || string(a.Content) != `{"ignored_users":{"@v:x":{}}}` {
			t.Fatalf("Entry = %+v, %v, %v; want version 2 at 7", a, ok, err)
		}
		// /sync reads every change after its token, also those past the
		// response's position, with the largest bound.
		ads, err := s.AccountData.Changed(ctx, db.Reader(), "@u:x", 3, math.MaxInt64)
		if err != nil || len(ads) != 2 || ads[0].Position != 4 || ads[1].Position != 7 {
			t.Fatalf("Changed(3, max) = %+v, %v; want the entries at 4 and 7", ads, err)
		}
	})
}
