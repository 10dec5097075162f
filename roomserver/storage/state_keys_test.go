package storage

import (
	"database/sql"
	"maps"
	"sync"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// TestAssignSharedTuples: transactions of different rooms take the same
// tuples (everyone sets m.room.name) in opposite orders. Assign must not
// lock them: on PostgreSQL the two transactions below hold one tuple each
// while asking for the other, which deadlocked with a locking upsert.
func TestAssignSharedTuples(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		a, b := Tuple{Type: "m.room.name"}, Tuple{Type: "m.room.member", StateKey: "@alice:x"}
		want := map[Tuple]int64{}
		for _, tu := range []Tuple{a, b} {
			if want[tu], err = st.StateKeys.Assign(ctx, db, tu); err != nil {
				t.Fatal(err)
			}
		}
		if again, err := st.StateKeys.Assign(ctx, db, a); err != nil || again != want[a] {
			t.Fatalf("Assign again = %d, %v; want %d", again, err, want[a])
		}
		// SQLite runs write transactions one at a time (they would wait
		// for each other forever at the barrier); PostgreSQL runs them
		// side by side, which is the case that matters.
		barrier := db.Dialect.Engine == sqlutil.Postgres
		var firstDone sync.WaitGroup
		firstDone.Add(2)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, order := range [][2]Tuple{{a, b}, {b, a}} {
			wg.Go(func() {
				once := sync.OnceFunc(firstDone.Done)
				defer once()
				errs[i] = db.InTx(ctx, func(tx *sql.Tx) error {
					for j, tu := range order {
						nid, err := st.StateKeys.Assign(ctx, tx, tu)
						if err != nil {
							return err
						}
						if nid != want[tu] {
							t.Errorf("Assign(%v) = %d, want %d", tu, nid, want[tu])
						}
						if j == 0 && barrier {
							once()
							firstDone.Wait()
						}
					}
					return nil
				})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("transaction failed: %v", err)
			}
		}
		// A new tuple assigned by two transactions at once gets one nid.
		var nids [2]int64
		for i := range nids {
			wg.Go(func() {
				errs[i] = db.InTx(ctx, func(tx *sql.Tx) error {
					var err error
					nids[i], err = st.StateKeys.Assign(ctx, tx, Tuple{Type: "m.room.topic"})
					return err
				})
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || nids[0] != nids[1] || nids[0] == 0 {
			t.Fatalf("concurrent new tuple: nids %v, errors %v", nids, errs)
		}
	})
}

// TestLookupPairsOnly: Lookup asks for all tuples in one query by their
// types and state keys; a stored pair made of an asked type and an asked
// state key that was not itself asked for must not come back, and tuples
// never assigned are left out.
func TestLookupPairsOnly(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		pl, member := "m.room.power_levels", "m.room.member"
		stored := []Tuple{{Type: pl}, {Type: member, StateKey: "@a:x"}, {Type: pl, StateKey: "@a:x"}, {Type: member}, {Type: "m.room.create"}}
		nids := map[Tuple]int64{}
		for _, tu := range stored {
			if nids[tu], err = st.StateKeys.Assign(ctx, db, tu); err != nil {
				t.Fatal(err)
			}
		}
		ask := []Tuple{{Type: pl}, {Type: member, StateKey: "@a:x"}, {Type: member, StateKey: "@b:x"}, {Type: "m.room.join_rules"}, {Type: pl}}
		got, err := st.StateKeys.Lookup(ctx, db.Reader(), ask)
		if err != nil {
			t.Fatal(err)
		}
		want := map[Tuple]int64{{Type: pl}: nids[Tuple{Type: pl}], {Type: member, StateKey: "@a:x"}: nids[Tuple{Type: member, StateKey: "@a:x"}]}
		if !maps.Equal(got, want) {
			t.Fatalf("Lookup = %v, want %v", got, want)
		}
		if got, err := st.StateKeys.Lookup(ctx, db.Reader(), nil); err != nil || len(got) != 0 {
			t.Fatalf("Lookup(nothing) = %v, %v", got, err)
		}
	})
}
