package storage_test

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

func open(t *testing.T, db *sqlutil.DB) *storage.Storage {
	t.Helper()
	s, err := storage.Open(t.Context(), db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Opening again must find the migrations applied.
	if s, err = storage.Open(t.Context(), db); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	return s
}

func TestStreamPositions(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		if p, err := s.Positions.Current(ctx, db.Reader(), streams.PDU); err != nil || p != 0 {
			t.Fatalf("Current on empty = %d, %v; want 0", p, err)
		}
		for want := streams.Position(1); want <= 3; want++ {
			p, err := s.Positions.Next(ctx, db, streams.PDU)
			if err != nil || p != want {
				t.Fatalf("Next = %d, %v; want %d", p, err, want)
			}
		}
		// A rolled back allocation is not used.
		errRollback := fmt.Errorf("roll back")
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := s.Positions.Next(ctx, tx, streams.PDU); err != nil {
				return err
			}
			return errRollback
		})
		if err == nil {
			t.Fatal("InTx returned nil, want the rollback error")
		}
		tok, err := s.Positions.Token(ctx, db.Reader())
		if err != nil || tok.Get(streams.PDU) != 3 {
			t.Fatalf("Token = %v, %v; want PDU 3", tok, err)
		}
	})
}

func ptr(s string) *string { return &s }

// roomEvent makes a stored event row; the JSON is a minimal PDU.
func roomEvent(pos streams.Position, room, typ string, stateKey *string) storage.Event {
	js := fmt.Sprintf(`{"type":%q,"sender":"@a:x","room_id":%q,"content":{"n":%d}`, typ, room, pos)
	if stateKey != nil {
		js += fmt.Sprintf(`,"state_key":%q`, *stateKey)
	}
	return storage.Event{
		Position: pos, EventID: fmt.Sprintf("$e%d", pos), RoomID: room, RoomVersion: "10",
		Type: typ, Sender: "@a:x", StateKey: stateKey, JSON: []byte(js + "}"),
	}
}

func ids(evs []storage.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

func TestOutputRoomEvents(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		for p := streams.Position(1); p <= 6; p++ {
			room := "!a:x"
			if p%3 == 0 {
				room = "!b:x"
			}
			e := roomEvent(p, room, "m.room.message", nil)
			if p == 1 {
				e.StateKey = ptr("")
				e.Txn = storage.TxnID{UserID: "@a:x", DeviceID: "D", TxnID: "t1"}
			}
			if ok, err := s.Events.Insert(ctx, db, e); err != nil || !ok {
				t.Fatalf("Insert(%d) = %v, %v; want true", p, ok, err)
			}
		}
		dup := roomEvent(9, "!a:x", "m.room.message", nil)
		dup.EventID = "$e2"
		if ok, err := s.Events.Insert(ctx, db, dup); err != nil || ok {
			t.Fatalf("Insert(duplicate id) = %v, %v; want false", ok, err)
		}
		stored, err := s.Events.StoredIDs(ctx, db.Reader(), []string{"$e6", "$nope", "$e1", "$e3"})
		if err != nil || len(stored) != 3 || !stored["$e1"] || !stored["$e3"] || !stored["$e6"] {
			t.Fatalf("StoredIDs = %v, %v; want $e1, $e3, $e6", stored, err)
		}
		got, err := s.Events.SelectByIDs(ctx, db.Reader(), []string{"$e1", "$nope"})
		if err != nil || len(got) != 1 {
			t.Fatalf("SelectByIDs = %v, %v", got, err)
		}
		if e := got[0]; e.StateKey == nil || *e.StateKey != "" || e.Txn.TxnID != "t1" || e.RoomVersion != "10" {
			t.Fatalf("round trip lost fields: %+v", e)
		}

		tests := []struct {
			name        string
			after, upTo streams.Position
			limit       int
			want        []string
			limited     bool
		}{
			{name: "all", after: 0, upTo: 6, limit: 10, want: []string{"$e1", "$e2", "$e4", "$e5"}},
			{name: "limited keeps newest", after: 0, upTo: 6, limit: 2, want: []string{"$e4", "$e5"}, limited: true},
			{name: "exact limit", after: 1, upTo: 5, limit: 3, want: []string{"$e2", "$e4", "$e5"}},
			{name: "bounded above", after: 0, upTo: 4, limit: 10, want: []string{"$e1", "$e2", "$e4"}},
			{name: "empty range", after: 5, upTo: 5, limit: 10, want: []string{}},
		}
		for _, tc := range tests {
			evs, limited, err := s.Events.Recent(ctx, db.Reader(), "!a:x", tc.after, tc.upTo, tc.limit)
			if err != nil || !slices.Equal(ids(evs), tc.want) || limited != tc.limited {
				t.Errorf("%s: Recent = %v, %v, %v; want %v, %v", tc.name, ids(evs), limited, err, tc.want, tc.limited)
			}
		}
		rooms, err := s.Events.RoomsWithEvents(ctx, db.Reader(), []string{"!a:x", "!b:x", "!c:x"}, 3, 5)
		if slices.Sort(rooms); err != nil || !slices.Equal(rooms, []string{"!a:x"}) {
			t.Fatalf("RoomsWithEvents(3, 5] = %v, %v; want [!a:x]", rooms, err)
		}
	})
}

func TestStateHistory(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		const room = "!r:x"
		member := storage.Tuple{Type: storage.MemberEvent, StateKey: "@b:x"}
		name := storage.Tuple{Type: "m.room.name", StateKey: ""}
		// 1: create, 2: name, 3: @b invited, 4: message, 5: @b joins, 6: name removed (state res), 7: @b leaves
		steps := []struct {
			tuple      *storage.Tuple
			typ        string
			membership string
			removal    bool
		}{
			{tuple: &storage.Tuple{Type: "m.room.create"}, typ: "m.room.create"},
			{tuple: &name, typ: "m.room.name"},
			{tuple: &member, typ: storage.MemberEvent, membership: "invite"},
			{typ: "m.room.message"},
			{tuple: &member, typ: storage.MemberEvent, membership: "join"},
			{tuple: &name, removal: true, typ: "m.room.message"},
			{tuple: &member, typ: storage.MemberEvent, membership: "leave"},
		}
		for i, st := range steps {
			pos := streams.Position(i + 1)
			var sk *string
			if st.tuple != nil && !st.removal {
				sk = ptr(st.tuple.StateKey)
			}
			e := roomEvent(pos, room, st.typ, sk)
			if _, err := s.Events.Insert(ctx, db, e); err != nil {
				t.Fatal(err)
			}
			if st.tuple == nil {
				continue
			}
			d := storage.Delta{Position: pos, RoomID: room, Tuple: *st.tuple, EventID: e.EventID, Membership: st.membership}
			if st.removal {
				d.EventID = ""
			}
			for range 2 { // idempotent
				if err := s.Deltas.Insert(ctx, db, d); err != nil {
					t.Fatal(err)
				}
			}
		}
		stateTests := []struct {
			at    streams.Position
			types []string
			want  []string
		}{
			{at: 0, want: []string{}},
			{at: 2, want: []string{"$e1", "$e2"}},
			{at: 4, want: []string{"$e1", "$e2", "$e3"}},
			{at: 5, want: []string{"$e1", "$e2", "$e5"}},
			{at: 6, want: []string{"$e1", "$e5"}},
			{at: 7, want: []string{"$e1", "$e7"}},
			{at: 5, types: []string{"m.room.name", "m.room.topic"}, want: []string{"$e2"}},
		}
		for _, tc := range stateTests {
			evs, err := s.Deltas.StateAt(ctx, db.Reader(), room, tc.at, tc.types)
			if err != nil || !slices.Equal(ids(evs), tc.want) {
				t.Errorf("StateAt(%d, %v) = %v, %v; want %v", tc.at, tc.types, ids(evs), err, tc.want)
			}
		}
		changeTests := []struct {
			after, upTo streams.Position
			want        []string
		}{
			{after: 2, upTo: 5, want: []string{"$e5"}},
			{after: 0, upTo: 3, want: []string{"$e1", "$e2", "$e3"}},
			{after: 4, upTo: 7, want: []string{"$e7"}}, // the removal has no event to report
			{after: 5, upTo: 5, want: []string{}},
		}
		for _, tc := range changeTests {
			evs, err := s.Deltas.StateChanges(ctx, db.Reader(), room, tc.after, tc.upTo)
			if err != nil || !slices.Equal(ids(evs), tc.want) {
				t.Errorf("StateChanges(%d, %d) = %v, %v; want %v", tc.after, tc.upTo, ids(evs), err, tc.want)
			}
		}
		memberTests := []struct {
			at   streams.Position
			want string
		}{{2, ""}, {3, "invite"}, {4, "invite"}, {5, "join"}, {7, "leave"}}
		for _, tc := range memberTests {
			ms, err := s.Deltas.MembershipsAt(ctx, db.Reader(), "@b:x", tc.at)
			got := ""
			if len(ms) == 1 {
				got = ms[0].Membership
			}
			if err != nil || len(ms) > 1 || got != tc.want {
				t.Errorf("MembershipsAt(%d) = %+v, %v; want %q", tc.at, ms, err, tc.want)
			}
		}
		hist, err := s.Deltas.TupleHistory(ctx, db.Reader(), room, name, 7)
		if err != nil || len(hist) != 2 || hist[0].EventID != "$e2" || len(hist[0].JSON) == 0 || hist[1].EventID != "" || len(hist[1].JSON) != 0 {
			t.Fatalf("TupleHistory(name) = %+v, %v; want $e2 then a removal", hist, err)
		}
		if hist, err = s.Deltas.TupleHistory(ctx, db.Reader(), room, member, 5); err != nil || len(hist) != 2 || hist[1].Membership != "join" {
			t.Fatalf("TupleHistory(member, 5) = %+v, %v; want invite then join", hist, err)
		}
		ch, err := s.Deltas.MembershipChanges(ctx, db.Reader(), "@b:x", 3, 7)
		if err != nil || len(ch) != 2 || ch[0].Membership != "join" || ch[1].Membership != "leave" || ch[1].Position != 7 {
			t.Fatalf("MembershipChanges(3, 7] = %+v, %v; want join then leave at 7", ch, err)
		}
	})
}

func TestCurrentRoomState(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		set := func(room, user, membership string, pos streams.Position) {
			t.Helper()
			tu := storage.Tuple{Type: storage.MemberEvent, StateKey: user}
			if err := s.CurrentState.Upsert(ctx, db, room, tu, fmt.Sprintf("$%s%d", membership, pos), membership, pos); err != nil {
				t.Fatal(err)
			}
		}
		set("!r:x", "@me:x", "join", 1)
		set("!r:x", "@b:x", "invite", 2)
		set("!r:x", "@c:x", "join", 3)
		set("!r:x", "@d:x", "leave", 4)
		set("!s:x", "@d:x", "leave", 5)
		set("!r:x", "@b:x", "join", 6) // replaces the invite
		if id, err := s.CurrentState.Select(ctx, db.Reader(), "!r:x", storage.Tuple{Type: storage.MemberEvent, StateKey: "@b:x"}); err != nil || id != "$join6" {
			t.Fatalf("Select = %q, %v; want $join6", id, err)
		}
		if j, i, err := s.CurrentState.MemberCounts(ctx, db.Reader(), "!r:x"); err != nil || j != 3 || i != 0 {
			t.Fatalf("MemberCounts = %d, %d, %v; want 3, 0", j, i, err)
		}
		if h, err := s.CurrentState.Heroes(ctx, db.Reader(), "!r:x", "@me:x", 5); err != nil || !slices.Equal(h, []string{"@c:x", "@b:x"}) {
			t.Fatalf("Heroes = %v, %v; want [@c:x @b:x]", h, err)
		}
		if h, err := s.CurrentState.Heroes(ctx, db.Reader(), "!s:x", "@me:x", 5); err != nil || !slices.Equal(h, []string{"@d:x"}) {
			t.Fatalf("Heroes of a room without members = %v, %v; want the leavers", h, err)
		}
		joined, err := s.CurrentState.JoinedUsers(ctx, db.Reader())
		if slices.Sort(joined["!r:x"]); err != nil || len(joined) != 1 || !slices.Equal(joined["!r:x"], []string{"@b:x", "@c:x", "@me:x"}) {
			t.Fatalf("JoinedUsers = %v, %v", joined, err)
		}
		if err := s.CurrentState.Delete(ctx, db, "!r:x", storage.Tuple{Type: storage.MemberEvent, StateKey: "@c:x"}); err != nil {
			t.Fatal(err)
		}
		st, err := s.CurrentState.SelectRoom(ctx, db.Reader(), "!r:x")
		if err != nil || len(st) != 3 {
			t.Fatalf("SelectRoom after Delete = %v, %v; want 3 tuples", st, err)
		}
	})
}

// TestPositionsCommitInOrder checks the invariant /sync relies on: a reader
// that sees position P as the counter also sees every event at or below P,
// however many writers run at once.
func TestPositionsCommitInOrder(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		const writers, perWriter = 4, 25
		done := make(chan error, writers)
		for w := range writers {
			go func() {
				for i := range perWriter {
					err := s.InTx(ctx, func(tx *sql.Tx) error {
						p, err := s.Positions.Next(ctx, tx, streams.PDU)
						if err != nil {
							return err
						}
						e := roomEvent(p, fmt.Sprintf("!w%d:x", w), "m.room.message", nil)
						e.EventID = fmt.Sprintf("$w%d_%d", w, i)
						_, err = s.Events.Insert(ctx, tx, e)
						return err
					})
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		check := func() {
			cur, err := s.Positions.Current(ctx, db.Reader(), streams.PDU)
			if err != nil {
				t.Fatal(err)
			}
			var n streams.Position
			if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM syncapi_output_room_events WHERE position <= $1`, cur).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != cur {
				t.Fatalf("counter at %d but %d events at or below it are visible", cur, n)
			}
		}
		for finished := 0; finished < writers; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("writer: %v", err)
				}
				finished++
			default:
				check()
			}
		}
		check()
	})
}
