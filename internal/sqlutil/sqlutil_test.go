package sqlutil_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestDialectAndMigrations(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		ms := []sqlutil.Migration{{Version: 1, Name: "things", Up: sqlutil.Exec(func(d sqlutil.Dialect) string {
			return `CREATE TABLE things (id ` + d.ID() + `, name TEXT NOT NULL UNIQUE, blob ` + d.Bytes() + `)`
		})}}
		for range 2 { // the second run must be a no-op
			if err := sqlutil.Migrate(ctx, db, "test", ms); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		var ids []int64
		for _, n := range []string{"a", "b", "c"} {
			var id int64
			if err := db.QueryRowContext(ctx, `INSERT INTO things (name, blob) VALUES ($1, $2) RETURNING id`, n, []byte{0, 1, 2}).Scan(&id); err != nil {
				t.Fatalf("insert %s: %v", n, err)
			}
			ids = append(ids, id)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO things (name) VALUES ($1)`, "a")
		if !sqlutil.IsUniqueViolation(err) {
			t.Fatalf("duplicate insert: err = %v, want unique violation", err)
		}
		rows, err := db.Reader().QueryContext(ctx, `SELECT name FROM things WHERE `+db.Dialect.In("id", 1)+` ORDER BY id`, db.Dialect.List(ids[1:]))
		if err != nil {
			t.Fatalf("select in: %v", err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		rows.Close()
		if len(got) != 2 || got[0] != "b" || got[1] != "c" {
			t.Fatalf("In(ids[1:]) = %v, want [b c]", got)
		}
		var blob []byte
		if err := db.Reader().QueryRowContext(ctx, `SELECT blob FROM things WHERE name = $1`, "a").Scan(&blob); err != nil || string(blob) != "\x00\x01\x02" {
			t.Fatalf("blob = %q, %v", blob, err)
		}
	})
}

func TestInTxRollsBack(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)`); err != nil {
			t.Fatal(err)
		}
		wantErr := context.Canceled
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2)`, "k", "v"); err != nil {
				return err
			}
			return wantErr
		})
		if err != wantErr {
			t.Fatalf("InTx = %v, want %v", err, wantErr)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows after rollback = %d, %v; want 0", n, err)
		}
		_, err = db.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, "k", "1")
		if err == nil {
			_, err = db.ExecContext(ctx, `INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, "k", "2")
		}
		var v string
		if err != nil || db.Reader().QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, "k").Scan(&v) != nil || v != "2" {
			t.Fatalf("upsert: v = %q, err %v", v, err)
		}
	})
}

// TestSQLitePageCacheSizes: every connection gets its bounded page cache
// (SQLite's 2 MB default per connection was a third of the monolith's
// memory under load).
func TestSQLitePageCacheSizes(t *testing.T) {
	ctx := t.Context()
	db, err := sqlutil.Open(ctx, filepath.Join(t.TempDir(), "c.db"), sqlutil.Options{Name: "test", Readers: 2})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	for _, c := range []struct {
		name string
		q    sqlutil.Querier
		want int
	}{{"writer", db, -1024}, {"reader", db.Reader(), -256}} {
		var got int
		if err := c.q.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA cache_size: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: cache_size = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestPlanEach: a query given PlanEach's arguments answers as without them;
// on PostgreSQL it leaves no prepared statement in the session (its plan
// is made for each call), while the same query without them does.
func TestPlanEach(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		if _, err := db.ExecContext(ctx, `CREATE TABLE plan_each (id `+db.Dialect.ID()+`, name TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO plan_each (name) VALUES ('a'), ('b'), ('c')`); err != nil {
			t.Fatal(err)
		}
		const q = `SELECT name FROM plan_each WHERE name IN ($1, $2) ORDER BY name`
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			prepared := func() int {
				t.Helper()
				if db.Dialect.Engine != sqlutil.Postgres {
					return 0
				}
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement = $1`, q).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for i, args := range [][]any{db.Dialect.PlanEach("c", "a"), {"c", "a"}} {
				rows, err := tx.QueryContext(ctx, q, args...)
				if err != nil {
					return err
				}
				var got []string
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						return err
					}
					got = append(got, s)
				}
				rows.Close()
				if len(got) != 2 || got[0] != "a" || got[1] != "c" {
					t.Errorf("query %d = %v, want [a c]", i, got)
				}
				want := 0
				if i == 1 && db.Dialect.Engine == sqlutil.Postgres {
					want = 1
				}
				if n := prepared(); n != want {
					t.Errorf("after query %d: %d prepared statements, want %d", i, n, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestPostgresApplicationName: a component's connections name it, unless
// the DSN names them already.
func TestPostgresApplicationName(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	for _, tc := range []struct{ dsn, want string }{
		{dsn, "axon roomserver"},
		{dsn + sep + "application_name=mine", "mine"},
	} {
		db, err := sqlutil.Open(t.Context(), tc.dsn, sqlutil.Options{Name: "roomserver"})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = db.Reader().QueryRowContext(t.Context(), `SELECT current_setting('application_name')`).Scan(&got)
		db.Close()
		if err != nil || got != tc.want {
			t.Errorf("application_name = %q, %v; want %q", got, err, tc.want)
		}
	}
}
