package sqlutil_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func openKV(t testing.TB) *sqlutil.DB {
	t.Helper()
	db, err := sqlutil.Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), sqlutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(context.Background(), `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestGroupCommitIsolatesFailures runs many transactions at once, so that
// they share commits, with failures, constraint violations and panics among
// them: each caller sees exactly its own outcome.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openKV(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (1000, 'taken')`); err != nil {
		t.Fatal(err)
	}
	errPlanned := errors.New("planned failure")
	const n = 300
	results := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			results[i] = db.InTx(ctx, func(tx *sql.Tx) error {
				// Two writes, so a failure after the first must undo it.
				if _, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'a')`, i); err != nil {
					return err
				}
				switch i % 5 {
				case 1:
					return errPlanned
				case 2:
					_, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (1000, 'dup')`)
					return err
				case 3:
					if i%3 == 0 {
						panic(fmt.Sprint("boom ", i))
					}
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'b')`, 10000+i)
				return err
			})
		})
	}
	wg.Wait()
	for i := range n {
		var rows int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv WHERE k = $1 OR k = $2`, i, 10000+i).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%5 == 1:
			if !errors.Is(results[i], errPlanned) || rows != 0 {
				t.Errorf("tx %d: err %v, %d rows; want the planned error and nothing written", i, results[i], rows)
			}
		case i%5 == 2:
			if !sqlutil.IsUniqueViolation(results[i]) || rows != 0 {
				t.Errorf("tx %d: err %v, %d rows; want a unique violation and nothing written", i, results[i], rows)
			}
		case i%5 == 3 && i%3 == 0:
			if panics[i] != fmt.Sprint("boom ", i) || rows != 0 {
				t.Errorf("tx %d: panic %v, %d rows; want its own panic and nothing written", i, panics[i], rows)
			}
		default:
			if results[i] != nil || panics[i] != nil || rows != 2 {
				t.Errorf("tx %d: err %v, panic %v, %d rows; want both rows", i, results[i], panics[i], rows)
			}
		}
	}
}

// TestExecJoinsGroup: lone statements share the group commit with
// transactions on SQLite, and each still gets its own result or error.
func TestExecJoinsGroup(t *testing.T) {
	db := openKV(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (-1, 'taken')`); err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make([]error, n)
	affected := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = db.InTx(ctx, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'tx')`, i)
					return err
				})
				return
			}
			k := i
			if i%10 == 1 {
				k = -1 // taken: this one fails alone
			}
			res, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'exec')`, k)
			if errs[i] = err; err == nil {
				affected[i], errs[i] = res.RowsAffected()
			}
		})
	}
	wg.Wait()
	for i := range n {
		var rows int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv WHERE k = $1`, i).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%10 == 1:
			if !sqlutil.IsUniqueViolation(errs[i]) || rows != 0 {
				t.Errorf("exec %d: err %v, %d rows; want a unique violation and nothing written", i, errs[i], rows)
			}
		case i%2 == 1:
			if errs[i] != nil || affected[i] != 1 || rows != 1 {
				t.Errorf("exec %d: err %v, %d affected, %d rows; want 1 and 1", i, errs[i], affected[i], rows)
			}
		default:
			if errs[i] != nil || rows != 1 {
				t.Errorf("tx %d: err %v, %d rows", i, errs[i], rows)
			}
		}
	}
}

// TestGroupCommitCancelledCaller: a caller whose context ended before its
// turn runs nothing and gets the context's error.
func TestGroupCommitCancelledCaller(t *testing.T) {
	db := openKV(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := db.InTx(ctx, func(tx *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("InTx with a cancelled context = %v (ran %v)", err, ran)
	}
	// The database is still usable, and Close answers later callers.
	if err := db.InTx(t.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(t.Context(), `INSERT INTO kv (k, v) VALUES (1, 'x')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.InTx(t.Context(), func(tx *sql.Tx) error { return nil }); err == nil {
		t.Fatal("InTx after Close succeeded")
	}
}

// BenchmarkConcurrentTx is eight writers committing small transactions, as
// the consumers do under load.
func BenchmarkConcurrentTx(b *testing.B) {
	db := openKV(b)
	ctx := b.Context()
	var mu sync.Mutex
	next := 0
	b.SetParallelism(4) // 8 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			next++
			k := next
			mu.Unlock()
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				for j := range 4 {
					if _, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'some value of a row')`, k*10+j); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
