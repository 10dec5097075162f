package sqlutil

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"

	"modernc.org/sqlite"
)

// The SQLite driver parses and plans every statement passed to Exec or
// Query anew; under load that was a quarter of the server's CPU. This
// driver wraps it and keeps each connection's prepared statements, keyed by
// SQL text, so the one SQL text per query of every table is prepared once
// per connection. (pgx caches prepared statements itself.)
const cachingDriverName = "axon-sqlite"

func init() {
	sql.Register(cachingDriverName, cachingDriver{&sqlite.Driver{}})
}

// maxCachedStmts bounds a connection's cache; the server's SQL texts are a
// fixed set far below it, so the bound only guards against a runaway caller.
const maxCachedStmts = 1024

type cachingDriver struct{ d driver.Driver }

func (cd cachingDriver) Open(name string) (driver.Conn, error) {
	c, err := cd.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: c, stmts: map[string]*cachedStmt{}}, nil
}

type cachingConn struct {
	driver.Conn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// cachedStmt is busy while a call or its rows use it: SQLite cannot run a
// statement again before the previous run is reset, so a nested use of the
// same text gets a one-off statement instead.
type cachedStmt struct {
	st   driver.Stmt
	busy bool
}

var errNoContext = errors.New("sqlite driver lacks context methods")

func (c *cachingConn) stmt(ctx context.Context, query string) (driver.Stmt, func(), error) {
	c.mu.Lock()
	cs, ok := c.stmts[query]
	if ok && !cs.busy {
		cs.busy = true
		c.mu.Unlock()
		return cs.st, func() { c.mu.Lock(); cs.busy = false; c.mu.Unlock() }, nil
	}
	c.mu.Unlock()
	p, ok := c.Conn.(driver.ConnPrepareContext)
	if !ok {
		return nil, nil, errNoContext
	}
	st, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.stmts[query]; !exists && len(c.stmts) < maxCachedStmts {
		cs := &cachedStmt{st: st, busy: true}
		c.stmts[query] = cs
		return st, func() { c.mu.Lock(); cs.busy = false; c.mu.Unlock() }, nil
	}
	return st, func() { _ = st.Close() }, nil
}

// ExecContext runs query on its cached statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	st, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	defer release()
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return nil, errNoContext
	}
	return ex.ExecContext(ctx, args)
}

// QueryContext runs query on its cached statement; the statement is free
// again when the rows are closed.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, release, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		release()
		return nil, errNoContext
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		release()
		return nil, err
	}
	return &releasingRows{Rows: rows, release: release}, nil
}

// PrepareContext passes explicit preparation through uncached.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

// BeginTx passes through (the DSN's _txlock applies).
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return nil, errNoContext
}

// Ping passes through.
func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession passes through.
func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid passes through.
func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for k, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
		delete(c.stmts, k)
	}
	c.mu.Unlock()
	errs = append(errs, c.Conn.Close())
	return errors.Join(errs...)
}

type releasingRows struct {
	driver.Rows
	release func()
	once    sync.Once
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
