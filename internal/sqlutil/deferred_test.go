package sqlutil_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestDeferCommitsSQLite(t *testing.T) {
	db := storagetest.SQLite(t)
	d, err := db.DeferCommits(t.Context(), func() { t.Error("reset called on SQLite") })
	if err != nil || d != nil {
		t.Fatalf("DeferCommits on SQLite = %v, %v; want nil, nil (its commits survive a killed process)", d, err)
	}
	err = db.InTx(t.Context(), func(tx *sql.Tx) error { return d.Begin(t.Context(), tx, d.Epoch()) })
	if err != nil {
		t.Fatalf("Begin of nil: %v", err)
	}
	if err := d.Flush(t.Context()); err != nil {
		t.Fatalf("Flush of nil: %v", err)
	}
	if d.Epoch() != "" {
		t.Fatalf("Epoch of nil = %q", d.Epoch())
	}
}

// syncDSN is a fresh PostgreSQL database whose sessions ask for durable
// commits (the test server is started with synchronous_commit off).
func syncDSN(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(storagetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-c synchronous_commit=on")
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads + as itself
	return u.String()
}

// deferred opens deferred commits on a fresh PostgreSQL database (syncDSN)
// and counts the resets.
func deferred(t *testing.T) (*sqlutil.DB, *sqlutil.DeferredCommits, *atomic.Int32) {
	t.Helper()
	db, _, d, resets := deferredAt(t)
	return db, d, resets
}

func deferredAt(t *testing.T) (*sqlutil.DB, string, *sqlutil.DeferredCommits, *atomic.Int32) {
	t.Helper()
	dsn := syncDSN(t)
	db, err := sqlutil.Open(t.Context(), dsn, sqlutil.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	resets := new(atomic.Int32)
	d, err := db.DeferCommits(t.Context(), func() { resets.Add(1) })
	if err != nil || d == nil {
		t.Fatalf("DeferCommits: %v, %v", d, err)
	}
	return db, dsn, d, resets
}

// crash does to the epochs what PostgreSQL's recovery from a crash does to
// every unlogged table: it empties them. (Crashing the test server would
// take every other test down with it.)
func crash(t *testing.T, db *sqlutil.DB) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), `DELETE FROM axon_commit_epochs`); err != nil {
		t.Fatal(err)
	}
}

func TestDeferredCommitsPremises(t *testing.T) {
	db, d, _ := deferred(t)
	// Recovery empties only unlogged tables: the epochs must be one.
	var persistence string
	if err := db.QueryRowContext(t.Context(), `SELECT relpersistence FROM pg_class WHERE relname = 'axon_commit_epochs'`).Scan(&persistence); err != nil {
		t.Fatal(err)
	}
	if persistence != "u" {
		t.Fatalf("axon_commit_epochs persistence = %q, want u (unlogged)", persistence)
	}
	// Set up twice (two components of one process share the tables).
	if _, err := db.DeferCommits(t.Context(), func() {}); err != nil {
		t.Fatalf("second DeferCommits: %v", err)
	}
	// Begin turns the transaction's commit asynchronous, whatever the
	// session said before.
	err := db.InTx(t.Context(), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(t.Context(), `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
		if err := d.Begin(t.Context(), tx, d.Epoch()); err != nil {
			return err
		}
		var s string
		if err := tx.QueryRowContext(t.Context(), `SELECT current_setting('synchronous_commit')`).Scan(&s); err != nil {
			return err
		}
		if s != "off" {
			t.Errorf("synchronous_commit after Begin = %q, want off", s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Flush returns once the WAL holding a deferred commit is flushed.
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (x BIGINT)`); err != nil {
		t.Fatal(err)
	}
	var inserted string
	err = db.InTx(t.Context(), func(tx *sql.Tx) error {
		if err := d.Begin(t.Context(), tx, d.Epoch()); err != nil {
			return err
		}
		_, err := tx.ExecContext(t.Context(), `INSERT INTO t VALUES (1)`)
		return err
	})
	if err == nil {
		err = db.QueryRowContext(t.Context(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&inserted)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	var flushed bool
	if err := db.QueryRowContext(t.Context(), `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, inserted).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Fatalf("after Flush the WAL is not flushed up to %s, past the deferred commit", inserted)
	}
}

// TestDeferredCommitsScope: the deferral holds for the one transaction or
// statement only; the session goes on waiting for its flushes.
func TestDeferredCommitsScope(t *testing.T) {
	_, dsn, d, _ := deferredAt(t)
	// One connection, so that what the deferral leaves behind is seen.
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	setting := func() string {
		t.Helper()
		var s string
		if err := conn.QueryRowContext(t.Context(), `SELECT current_setting('synchronous_commit')`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	tx, err := conn.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Begin(t.Context(), tx, d.Epoch()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if s := setting(); s != "on" {
		t.Errorf("synchronous_commit after a deferred transaction = %q, want on", s)
	}
	var g string
	if err := conn.QueryRowContext(t.Context(), `SELECT `+d.Guard(1), d.Epoch()).Scan(&g); err != nil {
		t.Fatal(err)
	}
	if s := setting(); s != "on" {
		t.Errorf("synchronous_commit after a guarded statement = %q, want on", s)
	}
}

// TestDeferredCommitsFence: cache updates of an epoch run while it lasts,
// and not after a loss ended it.
func TestDeferredCommitsFence(t *testing.T) {
	db, d, _ := deferred(t)
	first := d.Epoch()
	ran := 0
	d.Fenced(first, func() { ran++ })
	crash(t, db)
	if err := d.Flush(t.Context()); !errors.Is(err, sqlutil.ErrCommitsLost) {
		t.Fatalf("Flush after the crash = %v", err)
	}
	d.Fenced(first, func() { ran++ })
	d.Fenced(d.Epoch(), func() { ran += 10 })
	if ran != 11 {
		t.Fatalf("fenced updates ran %d, want 11 (the old epoch's once, before the loss)", ran)
	}
	var nilD *sqlutil.DeferredCommits
	nilD.Fenced("", func() { ran++ })
	if ran != 12 {
		t.Fatal("a nil DeferredCommits (SQLite) fenced an update")
	}
}

func TestDeferredCommitsLostFoundByFlush(t *testing.T) {
	db, d, resets := deferred(t)
	first := d.Epoch()
	if err := d.Flush(t.Context()); err != nil || resets.Load() != 0 {
		t.Fatalf("Flush before the crash: %v, %d resets", err, resets.Load())
	}
	crash(t, db)
	if err := d.Flush(t.Context()); !errors.Is(err, sqlutil.ErrCommitsLost) {
		t.Fatalf("Flush after the crash = %v, want ErrCommitsLost", err)
	}
	if resets.Load() != 1 || d.Epoch() == first {
		t.Fatalf("after the loss: %d resets, epoch renewed %v; want 1, true", resets.Load(), d.Epoch() != first)
	}
	// Reported once: the next Flush covers commits of the new epoch.
	if err := d.Flush(t.Context()); err != nil {
		t.Fatalf("Flush in the new epoch: %v", err)
	}
	// Writes of the new epoch go through.
	if err := db.InTx(t.Context(), func(tx *sql.Tx) error { return d.Begin(t.Context(), tx, d.Epoch()) }); err != nil {
		t.Fatalf("Begin in the new epoch: %v", err)
	}
}

func TestDeferredCommitsLostFoundByWrite(t *testing.T) {
	db, d, resets := deferred(t)
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (x BIGINT)`); err != nil {
		t.Fatal(err)
	}
	// A one-statement write with the guard, as the roomserver's pipelined
	// input makes.
	write := func(epoch string) error {
		var s string
		err := db.QueryRowContext(t.Context(), `WITH i AS (INSERT INTO t VALUES (1)) SELECT `+d.Guard(1), epoch).Scan(&s)
		return d.Check(t.Context(), err, epoch)
	}
	first := d.Epoch()
	if err := write(first); err != nil {
		t.Fatalf("guarded write: %v", err)
	}
	crash(t, db)
	// The write fails and writes nothing; the caches are reset and a new
	// epoch begins.
	if err := write(first); !errors.Is(err, sqlutil.ErrCommitsLost) {
		t.Fatalf("guarded write after the crash = %v, want ErrCommitsLost", err)
	}
	var rows int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM t`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("rows = %d, %v; want 1 (the failed write undone)", rows, err)
	}
	if resets.Load() != 1 || d.Epoch() == first {
		t.Fatalf("after the loss: %d resets, epoch renewed %v; want 1, true", resets.Load(), d.Epoch() != first)
	}
	// A write built before the reset still carries the old epoch: it fails
	// too, without resetting again.
	if err := write(first); !errors.Is(err, sqlutil.ErrCommitsLost) || resets.Load() != 1 {
		t.Fatalf("stale write = %v with %d resets; want ErrCommitsLost, 1", err, resets.Load())
	}
	// The Flush after the loss reports it, once: the input waiting for it
	// may include the lost commits.
	if err := d.Flush(t.Context()); !errors.Is(err, sqlutil.ErrCommitsLost) {
		t.Fatalf("first Flush after a write found the loss = %v, want ErrCommitsLost", err)
	}
	if err := d.Flush(t.Context()); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if err := write(d.Epoch()); err != nil {
		t.Fatalf("write in the new epoch: %v", err)
	}
	// Begin finds a loss the same way.
	crash(t, db)
	err := db.InTx(t.Context(), func(tx *sql.Tx) error { return d.Begin(t.Context(), tx, d.Epoch()) })
	if !errors.Is(err, sqlutil.ErrCommitsLost) || resets.Load() != 2 {
		t.Fatalf("Begin after a crash = %v with %d resets; want ErrCommitsLost, 2", err, resets.Load())
	}
}

// TestDeferredCommitsWatch: with no write and no flush, Watch still finds
// a loss, and resets what the process cached.
func TestDeferredCommitsWatch(t *testing.T) {
	db, d, resets := deferred(t)
	first := d.Epoch()
	d.Watch(5 * time.Millisecond)
	t.Cleanup(func() { _ = d.Close(context.WithoutCancel(t.Context())) })
	time.Sleep(20 * time.Millisecond)
	if n := resets.Load(); n != 0 {
		t.Fatalf("%d resets before any crash", n)
	}
	crash(t, db)
	for deadline := time.Now().Add(10 * time.Second); resets.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not find the loss")
		}
	}
	if d.Epoch() == first {
		t.Error("no new epoch after the loss")
	}
}

// TestDeferredCommitsClose: a stopped process's epoch leaves no rows, and
// a start removes the flush counts of epochs a crash ended.
func TestDeferredCommitsClose(t *testing.T) {
	db, d, _ := deferred(t)
	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A flush with WAL to wait for writes the epoch's count row.
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (x BIGINT)`); err != nil {
		t.Fatal(err)
	}
	err := db.InTx(t.Context(), func(tx *sql.Tx) error {
		if err := d.Begin(t.Context(), tx, d.Epoch()); err != nil {
			return err
		}
		_, err := tx.ExecContext(t.Context(), `INSERT INTO t VALUES (1)`)
		return err
	})
	if err == nil {
		err = d.Flush(t.Context())
	}
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.DeferCommits(t.Context(), func() {})
	if err != nil {
		t.Fatal(err)
	}
	if n := count("axon_commit_epochs"); n != 2 {
		t.Fatalf("%d epochs for two processes", n)
	}
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM axon_commit_epochs WHERE epoch = $1`, other.Epoch()).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if n := count("axon_commit_epochs"); n != 1 || left != 1 {
		t.Fatalf("after Close: %d epochs, the other's %d; want only the other's", n, left)
	}
	// A count row whose epoch a crash ended goes at the next start.
	if _, err := db.ExecContext(t.Context(), `INSERT INTO axon_commit_flushes (epoch, flushes) VALUES ('ended', 3)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeferCommits(t.Context(), func() {}); err != nil {
		t.Fatal(err)
	}
	var ended int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM axon_commit_flushes WHERE epoch = 'ended'`).Scan(&ended); err != nil || ended != 0 {
		t.Fatalf("count rows of the ended epoch: %d, %v; want 0", ended, err)
	}
}
