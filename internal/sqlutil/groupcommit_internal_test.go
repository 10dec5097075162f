package sqlutil

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// TestTransactionsShareCommits checks that concurrent transactions are in
// fact committed together (the other group commit tests would pass if each
// ran alone).
func TestTransactionsShareCommits(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// The first transaction holds the writer until the others are queued.
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := db.InTx(ctx, func(tx *sql.Tx) error { close(started); <-release; return nil }); err != nil {
			t.Error(err)
		}
	})
	<-started
	for i := range 20 {
		wg.Go(func() {
			if err := db.InTx(context.Background(), func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO kv (k) VALUES ($1)`, i)
				return err
			}); err != nil {
				t.Error(err)
			}
		})
	}
	for len(db.group.queue) < 20 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	// The 20 queued while the first ran join its commit.
	if got := db.group.shared.Load(); got != 21 {
		t.Fatalf("transactions committed together = %d, want 21", got)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kv`).Scan(&n); err != nil || n != 20 {
		t.Fatalf("rows = %d, %v", n, err)
	}
}
