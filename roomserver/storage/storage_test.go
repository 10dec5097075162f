package storage

import (
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
		// A delta whose parent is gone cannot be loaded (the last one is a delta on the one before).
		if _, err := db.ExecContext(ctx, `DELETE FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, nids[len(nids)-2]); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Snapshots.Load(ctx, db.Reader(), nids[len(nids)-1]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(broken chain) = %v, want ErrNotFound", err)
		}
	})
}

func TestEventsIdempotentInsert(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		e := Event{RoomNID: 1, EventID: "$a", Depth: 1, JSON: []byte(`{}`)}
		n1, ins1, err := st.Events.Insert(ctx, db, e, "")
		if err != nil || !ins1 {
			t.Fatalf("first insert = %d %v %v", n1, ins1, err)
		}
		n2, ins2, err := st.Events.Insert(ctx, db, e, "")
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
