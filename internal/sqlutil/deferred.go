package sqlutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Deferred commits (PostgreSQL). A commit that waits for its WAL to reach
// the disk waits for an fsync, and every fsync of the cluster queues behind
// the one in progress: under load the roomserver's one-statement batches
// spent two thirds of their time there. SQLite, in WAL mode with
// synchronous=NORMAL, never waits for one: its commits survive a killed
// process but not a power cut.
//
// A log consumer need not wait either, because the log keeps what it
// consumed until it acks: it can commit without waiting for the flush
// (synchronous_commit off) and ack only once the WAL holding its commits is
// on disk. Flush makes sure of that for everything committed before it is
// called, with one synchronous commit of its own: the WAL is one sequence,
// and flushing a commit flushes all that precedes it. Until then the
// messages stay un-acked, and a crash of PostgreSQL that loses commits
// leaves them to be delivered again.
//
// Commits are lost only when PostgreSQL restarts after a crash (or a
// standby is promoted). Recovery then empties every unlogged table, so a
// row of one (the epoch) tells whether that happened since it was written:
// Flush reports ErrCommitsLost when it is gone. So does every deferred
// write, which checks the epoch in its own transaction: what the process
// cached from commits that may be lost must be forgotten (the reset given
// to DeferCommits) before it writes anything built on it, and a new epoch
// then begins.

// ErrCommitsLost reports that PostgreSQL recovered from a crash since the
// epoch of a deferred commit began: commits made without waiting for the
// WAL flush may be gone. What consumed their input must take it again from
// the log.
var ErrCommitsLost = errors.New("deferred commits may be lost: the database recovered from a crash")

// commitsLostCode is the SQLSTATE axon_commits_lost raises.
const commitsLostCode = "AXCL1"

// deferredLock is the advisory lock that serializes creating the tables
// below (components of one process start together).
const deferredLock = 0x61786f6e_64656672

// The schema: the unlogged epochs, and the logged row Flush writes so that
// its commit has WAL to flush.
var deferredTables = []string{
	`CREATE UNLOGGED TABLE IF NOT EXISTS axon_commit_epochs (
	epoch      TEXT PRIMARY KEY,
	started_ms BIGINT NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS axon_commit_flushes (
	epoch   TEXT PRIMARY KEY,
	flushes BIGINT NOT NULL
)`,
}

// commitsLostFunction is what a one-statement write raises through (its
// statement commits on its own, so it cannot just count).
const commitsLostFunction = `CREATE FUNCTION axon_commits_lost(epoch TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'epoch % is gone: the database recovered from a crash', epoch USING ERRCODE = '` + commitsLostCode + `';
END
$$`

// epochAlive is the condition that the epoch bound to parameter $n is still
// there: no crash since it began.
func epochAlive(n int) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM axon_commit_epochs WHERE epoch = $%d)`, n)
}

// DeferredCommits defers the WAL flush of a log consumer's commits on
// PostgreSQL; see Flush. A nil *DeferredCommits (SQLite) defers nothing and
// its methods do nothing.
type DeferredCommits struct {
	db    *DB
	reset func()

	mu    sync.Mutex
	epoch string
	// renewed: a new epoch began since the last Flush began, so commits
	// before it may be lost whatever the current epoch says.
	renewed bool

	// stopWatch ends Watch's checks, and watching is done once they ended.
	stopWatch context.CancelFunc
	watching  sync.WaitGroup
}

// DeferCommits starts deferring commits on db (nil on SQLite). reset must
// forget whatever the process cached from its own deferred commits, or read
// from anyone's: it is called when they may have been lost, before any
// further deferred write can commit.
func (db *DB) DeferCommits(ctx context.Context, reset func()) (*DeferredCommits, error) {
	if db.Dialect.Engine != Postgres {
		return nil, nil
	}
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(deferredLock)); err != nil {
			return err
		}
		// The function is created once: replacing it needs its owner.
		var have bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE p.proname = 'axon_commits_lost' AND n.nspname = current_schema())`).Scan(&have); err != nil {
			return err
		}
		for _, s := range deferredTables {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		if !have {
			if _, err := tx.ExecContext(ctx, commitsLostFunction); err != nil {
				return err
			}
		}
		// The flush counts of epochs a crash ended (Close removes those
		// of a process that stops).
		_, err := tx.ExecContext(ctx, `DELETE FROM axon_commit_flushes f
			WHERE NOT EXISTS (SELECT 1 FROM axon_commit_epochs e WHERE e.epoch = f.epoch)`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set up deferred commits: %w", err)
	}
	d := &DeferredCommits{db: db, reset: reset, stopWatch: func() {}}
	if d.epoch, err = d.newEpoch(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *DeferredCommits) newEpoch(ctx context.Context) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	epoch := hex.EncodeToString(b[:])
	if _, err := d.db.writer.ExecContext(ctx, `INSERT INTO axon_commit_epochs (epoch, started_ms) VALUES ($1, $2)`,
		epoch, time.Now().UnixMilli()); err != nil {
		return "", fmt.Errorf("begin a commit epoch: %w", err)
	}
	return epoch, nil
}

// Close ends Watch's checks and removes the current epoch's rows, once
// nothing commits with it any more (its last Flush is done): the tables
// keep a row per running process, not per start. Nothing may use d after
// Close.
func (d *DeferredCommits) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.stopWatch()
	d.watching.Wait()
	epoch := d.Epoch()
	if _, err := d.db.writer.ExecContext(ctx, `WITH e AS (DELETE FROM axon_commit_epochs WHERE epoch = $1)
		DELETE FROM axon_commit_flushes WHERE epoch = $1`, epoch); err != nil {
		return fmt.Errorf("end commit epoch: %w", err)
	}
	return nil
}

// Epoch is the current epoch, the parameter of Guard ("" for nil).
func (d *DeferredCommits) Epoch() string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch
}

// Guard is an expression for a statement that commits on its own (no
// transaction around it): it defers the statement's commit, and fails it
// when the epoch bound to parameter $n (Epoch, read before the statement
// was built on any cached state) is gone. Check maps that failure.
func (d *DeferredCommits) Guard(n int) string {
	return fmt.Sprintf(`(SELECT CASE WHEN %s
		THEN set_config('synchronous_commit', 'off', true) ELSE axon_commits_lost($%d) END)`, epochAlive(n), n)
}

// Check maps the error of a statement holding Guard, bound to epoch: when
// the epoch was gone it forgets what the process cached, begins a new
// epoch, and returns ErrCommitsLost. Other errors are returned unchanged.
func (d *DeferredCommits) Check(ctx context.Context, err error, epoch string) error {
	var pe *pgconn.PgError
	if d == nil || !errors.As(err, &pe) || pe.Code != commitsLostCode {
		return err
	}
	return d.lost(ctx, epoch, false)
}

// Begin defers the commit of tx, a transaction that consumed log input,
// or returns ErrCommitsLost (see Check) when epoch, the epoch its input
// was taken in (Epoch, before anything cached was read for it), is over.
// It is tx's first statement.
func (d *DeferredCommits) Begin(ctx context.Context, tx *sql.Tx, epoch string) error {
	if d == nil {
		return nil
	}
	var s string
	err := tx.QueryRowContext(ctx, `SELECT `+d.Guard(1), epoch).Scan(&s)
	if err != nil {
		if err = d.Check(ctx, err, epoch); !errors.Is(err, ErrCommitsLost) {
			err = fmt.Errorf("defer commit: %w", err)
		}
	}
	return err
}

// Fenced runs f, which puts in the process's caches what a write of epoch
// committed, unless the epoch is over: the reset of a loss takes the same
// lock, so f runs before it (and is undone by it) or not at all. Without
// the fence, a write that committed just before a crash could put its
// lost rows back into the caches just after the reset.
func (d *DeferredCommits) Fenced(epoch string, f func()) {
	if d == nil {
		f()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if epoch == d.epoch {
		f()
	}
}

// lost handles a gone epoch: the first report of the current one resets
// the caches and begins the next epoch, which the next Flush reports
// unless this is a Flush reporting it (flushing); a report of an older one
// was handled already.
func (d *DeferredCommits) lost(ctx context.Context, epoch string, flushing bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if epoch != d.epoch {
		return ErrCommitsLost
	}
	d.reset()
	next, err := d.newEpoch(ctx)
	if err != nil {
		// The epoch stays the gone one: the next write or Flush fails
		// again, and comes back here.
		return fmt.Errorf("%w (and %w)", ErrCommitsLost, err)
	}
	d.epoch, d.renewed = next, !flushing
	return ErrCommitsLost
}

// Watch checks the epoch every interval until Close, so that a process
// with no input to write or flush (an idle partition) still forgets what it
// cached once a crash may have taken it back, instead of answering queries
// from it. It is called once.
func (d *DeferredCommits) Watch(every time.Duration) {
	if d == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopWatch = cancel
	d.watching.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			epoch := d.Epoch()
			var alive bool
			err := d.db.writer.QueryRowContext(ctx, `SELECT `+epochAlive(1), epoch).Scan(&alive)
			if err == nil && !alive {
				_ = d.lost(ctx, epoch, false) // a failed renewal is tried again by the next check or write
			}
		}
	})
}

// Flush returns nil once every deferred commit made before it was called
// is on disk (as far as the server's synchronous_commit asks for any
// commit), or ErrCommitsLost when some may have been lost; then the input
// of all commits not yet flushed must be taken again. Other errors leave it
// unknown, and should be treated as ErrCommitsLost.
func (d *DeferredCommits) Flush(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	epoch, renewed := d.epoch, d.renewed
	d.renewed = false
	d.mu.Unlock()
	// Everything inserted into the WAL so far includes those commits. If
	// it is flushed already (by the WAL writer, or another commit), that
	// is all; if not, the upsert gives this statement's commit WAL of its
	// own, so that it waits for the flush (a commit that wrote none does
	// not), locally at least even when the server's default is not to
	// wait, and for synchronous standbys as configured. The epoch is read
	// before the commit: a crash after the read fails the statement.
	// (level is read only so that set_config surely runs.)
	var alive bool
	var level sql.NullString
	err := d.db.writer.QueryRowContext(ctx, `WITH s AS (
		SELECT pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()
			AND current_setting('synchronous_standby_names') = '' AS flushed,
			`+epochAlive(1)+` AS alive,
			CASE WHEN current_setting('synchronous_commit') = 'off'
				THEN set_config('synchronous_commit', 'local', true) END AS level
	), f AS (
		INSERT INTO axon_commit_flushes (epoch, flushes) SELECT $1, 1 FROM s WHERE NOT s.flushed
		ON CONFLICT (epoch) DO UPDATE SET flushes = axon_commit_flushes.flushes + 1
	)
	SELECT alive, level FROM s`, epoch).Scan(&alive, &level)
	switch {
	case err != nil:
		return fmt.Errorf("flush deferred commits: %w", err)
	case !alive:
		return d.lost(ctx, epoch, true)
	case renewed:
		// A write (or Watch) found the loss: what waits for this flush may
		// include its commits. (After a loss found by a write, this costs
		// the input one more rewind: correct, if not needed every time.)
		return ErrCommitsLost
	}
	return nil
}
