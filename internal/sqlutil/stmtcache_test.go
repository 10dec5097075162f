package sqlutil_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// TestStatementReuse exercises cached statements the ways tables use them:
// the same text again, nested inside open rows of the same text, inside
// transactions, and after errors.
func TestStatementReuse(t *testing.T) {
	db, err := sqlutil.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"), sqlutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const ins = `INSERT INTO kv (k, v) VALUES ($1, $2)`
	for i := range 50 {
		if _, err := db.ExecContext(ctx, ins, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, ins, 1, "dup"); !sqlutil.IsUniqueViolation(err) {
		t.Fatalf("duplicate = %v", err)
	}
	if _, err := db.ExecContext(ctx, ins, 50, "after error"); err != nil {
		t.Fatalf("statement unusable after an error: %v", err)
	}
	// The same text again while its rows are still open, on the same
	// connection (one transaction): the cached statement is busy, so the
	// nested call must get its own.
	const sel = `SELECT k, v FROM kv WHERE k >= $1 ORDER BY k`
	n := 0
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, sel, 45)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k int
			var v string
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			inner, err := tx.QueryContext(ctx, sel, k)
			if err != nil {
				return err
			}
			m := 0
			for inner.Next() {
				m++
			}
			inner.Close()
			if m != 51-k {
				return fmt.Errorf("nested rows from %d = %d, want %d", k, m, 51-k)
			}
			n++
		}
		return rows.Err()
	})
	if err != nil || n != 6 {
		t.Fatalf("rows = %d, %v; want 6", n, err)
	}
	// And the cached statement is usable again afterwards.
	var count int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv WHERE k >= $1`, 0).Scan(&count); err != nil || count != 51 {
		t.Fatalf("count = %d, %v", count, err)
	}
	for range 3 {
		var v string
		if err := db.Reader().QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, 7).Scan(&v); err != nil || v != "v7" {
			t.Fatalf("reader = %q, %v", v, err)
		}
	}
}

func BenchmarkInsertSelect(b *testing.B) {
	db, err := sqlutil.Open(b.Context(), filepath.Join(b.TempDir(), "s.db"), sqlutil.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := b.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, a TEXT, b TEXT, c BIGINT)`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, a, b, c) VALUES ($1, $2, $3, $4) ON CONFLICT (k) DO UPDATE SET a = excluded.a`, i, "x", "y", i); err != nil {
			b.Fatal(err)
		}
		var a string
		if err := db.Reader().QueryRowContext(ctx, `SELECT a FROM kv WHERE k = $1 AND c = $2`, i, i).Scan(&a); err != nil {
			b.Fatal(err)
		}
	}
}
