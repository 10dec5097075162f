package storage

import (
	"database/sql"
	"errors"
	"maps"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestSnapshotsDeltaChain(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		room, err := st.Rooms.Insert(ctx, db, "!r:x", "12")
		if err != nil {
			t.Fatal(err)
		}
		// Grow a state one change at a time, past several full copies, with replacements and removals.
		state := State{}
		parent, parentState := int64(0), State(nil)
		var nids []int64
		var states []State
		for i := int64(1); i <= 40; i++ {
			next := maps.Clone(state)
			next[i%7+1] = 1000 + i // replaces every 7th tuple
			if i%11 == 0 {
				delete(next, 3)
			}
			nid, err := st.Snapshots.Insert(ctx, db, room, parent, parentState, next)
			if err != nil {
				t.Fatal(err)
			}
			nids, states = append(nids, nid), append(states, next)
			state, parent, parentState = next, nid, next
		}
		for i, nid := range nids {
			got, err := st.Snapshots.Load(ctx, db.Reader(), nid)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, states[i]) {
				t.Fatalf("Load(%d) = %v, want %v", nid, got, states[i])
			}
		}
		// The empty state, and a snapshot that does not exist.
		if got, err := st.Snapshots.Load(ctx, db.Reader(), 0); err != nil || len(got) != 0 {
			t.Fatalf("Load(0) = %v, %v; want the empty state", got, err)
		}
		if _, err := st.Snapshots.Load(ctx, db.Reader(), nids[len(nids)-1]+1000); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(unknown) = %v, want ErrNotFound", err)
		}
		var maxGen int
		if err := db.QueryRowContext(ctx, `SELECT MAX(generation) FROM roomserver_state_snapshots`).Scan(&maxGen); err != nil || maxGen >= maxGeneration {
			t.Fatalf("max generation = %d, %v; want < %d", maxGen, err, maxGeneration)
		}
		// A delta whose parent is gone cannot be loaded (the last one is a
		// delta on the one before). Snapshots are never deleted, so the
		// cache would still answer: read without it.
		if _, err := db.ExecContext(ctx, `DELETE FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, nids[len(nids)-2]); err != nil {
			t.Fatal(err)
		}
		if _, err := (SnapshotsTable{d: db.Dialect}).Load(ctx, db.Reader(), nids[len(nids)-1]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(broken chain) = %v, want ErrNotFound", err)
		}
	})
}

// A snapshot or tuple read inside a transaction that then rolls back must
// not stay cached: SQLite gives its number to the next row inserted.
func TestCachesKeepOnlyCommittedRows(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		room, err := st.Rooms.Insert(ctx, db, "!r:x", "12")
		if err != nil {
			t.Fatal(err)
		}
		errRollback := errors.New("roll back")
		var lostSnap, lostTuple int64
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if lostSnap, err = st.Snapshots.Insert(ctx, tx, room, 0, nil, State{1: 100}); err != nil {
				return err
			}
			if _, err := st.Snapshots.Load(ctx, tx, lostSnap); err != nil {
				return err
			}
			if lostTuple, err = st.StateKeys.Assign(ctx, tx, Tuple{Type: "m.lost", StateKey: ""}); err != nil {
				return err
			}
			if _, err := st.StateKeys.Lookup(ctx, tx, []Tuple{{Type: "m.lost"}}); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("InTx = %v", err)
		}
		snap, err := st.Snapshots.Insert(ctx, db, room, 0, nil, State{2: 200})
		if err != nil {
			t.Fatal(err)
		}
		tuple, err := st.StateKeys.Assign(ctx, db, Tuple{Type: "m.kept", StateKey: ""})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := st.Snapshots.Load(ctx, db.Reader(), snap); err != nil || !maps.Equal(got, State{2: 200}) {
			t.Fatalf("Load(%d) = %v, %v; want {2:200} (rolled back snapshot was %d)", snap, got, err, lostSnap)
		}
		got, err := st.StateKeys.Lookup(ctx, db.Reader(), []Tuple{{Type: "m.kept"}, {Type: "m.lost"}})
		if err != nil || len(got) != 1 || got[Tuple{Type: "m.kept"}] != tuple {
			t.Fatalf("Lookup = %v, %v; want only m.kept = %d (rolled back tuple was %d)", got, err, tuple, lostTuple)
		}
		// Cached now: a second read answers the same without the database.
		if _, err := db.ExecContext(ctx, `DELETE FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, snap); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Snapshots.Load(ctx, db.Reader(), snap); err != nil || !maps.Equal(got, State{2: 200}) {
			t.Fatalf("cached Load(%d) = %v, %v", snap, got, err)
		}
	})
}

func TestBoundedCacheEvicts(t *testing.T) {
	c := NewBoundedCache[int](100, func(s State) int { return len(s) + 1 })
	for i := range 1000 {
		c.Put(i, State{1: int64(i)})
		if c.used > c.max {
			t.Fatalf("after %d puts the cache holds %d, more than %d", i+1, c.used, c.max)
		}
	}
	if v, ok := c.Get(999); !ok || v[1] != 999 {
		t.Fatalf("the last value put is gone: %v %v", v, ok)
	}
	big := State{}
	for i := range 30 {
		big[int64(i)] = 1
	}
	c.Put(-1, big) // more than a quarter of the budget: not kept
	if _, ok := c.Get(-1); ok {
		t.Fatal("an oversized value was cached")
	}
	var sum int
	for _, v := range c.Entries() {
		sum += c.cost(v)
	}
	if sum != c.used {
		t.Fatalf("used = %d, but the entries cost %d", c.used, sum)
	}
	c.Clear()
	if len(c.Entries()) != 0 || c.used != 0 {
		t.Fatalf("after Clear: %d entries, used %d", len(c.Entries()), c.used)
	}
}

func TestEventsIdempotentInsert(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		e := Event{RoomNID: 1, EventID: "$a", Depth: 1, JSON: []byte(`{}`)}
		n1, ins1, err := st.Events.Insert(ctx, db, e)
		if err != nil || !ins1 {
			t.Fatalf("first insert = %d %v %v", n1, ins1, err)
		}
		n2, ins2, err := st.Events.Insert(ctx, db, e)
		if err != nil || ins2 || n2 != n1 {
			t.Fatalf("second insert = %d %v %v, want %d false", n2, ins2, err, n1)
		}
		tu := Tuple{Type: "m.room.member", StateKey: "@a:x"}
		a, _ := st.StateKeys.Assign(ctx, db, tu)
		b, _ := st.StateKeys.Assign(ctx, db, tu)
		if a == 0 || a != b {
			t.Fatalf("Assign twice = %d, %d", a, b)
		}
	})
}

// TestSnapshotsCommitted: a snapshot recorded as committed is served from
// the cache afterwards, inside a transaction too, without its row.
func TestSnapshotsCommitted(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		room, err := st.Rooms.Insert(ctx, db, "!c:x", "12")
		if err != nil {
			t.Fatal(err)
		}
		var nid int64
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			nid, err = st.Snapshots.Insert(ctx, tx, room, 0, nil, State{3: 300})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Snapshots.Committed(map[int64]State{nid: {3: 300}, 0: {9: 9}})
		// Gone from the table: only the cache can answer now.
		if _, err := db.ExecContext(ctx, `DELETE FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, nid); err != nil {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			got, err := st.Snapshots.Load(ctx, tx, nid)
			if err != nil || !maps.Equal(got, State{3: 300}) {
				t.Errorf("Load(%d) in a transaction = %v, %v; want {3:300} from the cache", nid, got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := st.Snapshots.Load(ctx, db.Reader(), 0); err != nil || len(got) != 0 {
			t.Errorf("Load(0) = %v, %v; want the empty state", got, err)
		}
	})
}
