package sqlutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// SQLite has one writer, so write transactions run one after the other
// anyway; what each one costs on its own is the commit (its pages written
// to the WAL) and the BEGIN. Under load those were a quarter of the server's
// CPU. The group committer runs the transactions that are waiting at the
// same moment inside one SQLite transaction, each in its own SAVEPOINT, and
// commits once: a function that fails rolls back only its savepoint, and
// every caller returns only after the commit that holds its writes (or with
// the error that lost them). With nobody else waiting, a transaction runs
// alone and pays nothing extra.

// maxGroup bounds the transactions committed together, so that one commit
// does not keep the first caller waiting for long.
const maxGroup = 64

var errClosed = errors.New("database closed")

type txRequest struct {
	ctx   context.Context
	f     func(*sql.Tx) error
	err   error
	panic any // a panic in f, raised again in the caller's goroutine
	done  chan struct{}
}

type groupCommitter struct {
	db      *sql.DB
	queue   chan *txRequest
	stop    chan struct{}
	stopped chan struct{}
	// closed is set under the write lock; senders hold the read lock, so
	// nothing is queued after the committer drains the queue and stops.
	mu     sync.RWMutex
	closed bool
	// shared counts transactions that were committed with others.
	shared atomic.Int64
}

func newGroupCommitter(db *sql.DB) *groupCommitter {
	g := &groupCommitter{db: db, queue: make(chan *txRequest, maxGroup), stop: make(chan struct{}),
		stopped: make(chan struct{})}
	go g.run()
	return g
}

// do runs f in a (possibly shared) transaction and returns after the commit.
func (g *groupCommitter) do(ctx context.Context, f func(*sql.Tx) error) error {
	r := &txRequest{ctx: ctx, f: f, done: make(chan struct{})}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errClosed
	}
	select {
	case g.queue <- r:
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	g.mu.RUnlock()
	// Once queued, the request is answered even if ctx ends: its writes may
	// already be in a transaction about to commit.
	<-r.done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// close answers what is queued and stops the committer.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	<-g.stopped
}

func (g *groupCommitter) run() {
	defer close(g.stopped)
	for {
		select {
		case r := <-g.queue:
			g.commit(g.gather(r))
		case <-g.stop:
			// Callers that queued before the stop still get their answer.
			for {
				select {
				case r := <-g.queue:
					g.commit(g.gather(r))
				default:
					return
				}
			}
		}
	}
}

// gather takes first and whatever else is already waiting.
func (g *groupCommitter) gather(first *txRequest) []*txRequest {
	batch := []*txRequest{first}
	for len(batch) < maxGroup {
		select {
		case r := <-g.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit runs the batch in one transaction. Callers that queue while it
// runs join it too, until the commit (late joiners): they would otherwise
// wait for this commit and then pay one of their own.
func (g *groupCommitter) commit(batch []*txRequest) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	// The transaction belongs to the whole group: no caller's context may
	// roll it back.
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("begin transaction: %w", err)
		}
		return
	}
	var kept []*txRequest
	// run runs r in its own savepoint; it returns false if the whole
	// group was aborted.
	run := func(r *txRequest) bool {
		if r.err = r.ctx.Err(); r.err != nil {
			return true
		}
		if _, err := tx.ExecContext(context.Background(), "SAVEPOINT axon_group"); err != nil {
			g.abort(tx, batch, fmt.Errorf("savepoint: %w", err))
			return false
		}
		if r.err = call(r, tx); r.err != nil {
			if _, err := tx.ExecContext(context.Background(), "ROLLBACK TO axon_group"); err != nil {
				g.abort(tx, batch, fmt.Errorf("roll back to savepoint: %w", err))
				return false
			}
		} else {
			kept = append(kept, r)
		}
		if _, err := tx.ExecContext(context.Background(), "RELEASE axon_group"); err != nil {
			g.abort(tx, batch, fmt.Errorf("release savepoint: %w", err))
			return false
		}
		return true
	}
	if len(batch) == 1 {
		// Alone so far: no savepoint, and a failure rolls back at once.
		r := batch[0]
		if r.err = r.ctx.Err(); r.err == nil {
			r.err = call(r, tx)
		}
		if r.err != nil {
			_ = tx.Rollback()
			return
		}
		kept = append(kept, r)
	} else {
		for _, r := range batch {
			if !run(r) {
				return
			}
		}
	}
	for len(batch) < maxGroup {
		var r *txRequest
		select {
		case r = <-g.queue:
		default:
		}
		if r == nil {
			break
		}
		batch = append(batch, r)
		if !run(r) {
			return
		}
	}
	if err := tx.Commit(); err != nil {
		for _, r := range kept {
			r.err = fmt.Errorf("commit: %w", err)
		}
		return
	}
	if len(batch) > 1 {
		g.shared.Add(int64(len(kept)))
	}
}

// abort rolls the whole group back: every caller whose function succeeded
// gets err (its writes are lost with the transaction).
func (g *groupCommitter) abort(tx *sql.Tx, batch []*txRequest, err error) {
	_ = tx.Rollback()
	for _, r := range batch {
		if r.err == nil && r.panic == nil {
			r.err = err
		}
	}
}

// call runs r.f, turning a panic into an error for the group and keeping
// the value for the caller.
func call(r *txRequest, tx *sql.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panic = p
			err = fmt.Errorf("panic in transaction: %v", p)
		}
	}()
	return r.f(tx)
}
