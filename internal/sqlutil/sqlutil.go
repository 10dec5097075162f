// Package sqlutil opens the databases components store their tables in and
// hides the few places where SQLite and PostgreSQL differ.
//
// Every query is one SQL text for both engines: `$n` placeholders,
// RETURNING, ON CONFLICT ... DO UPDATE and TRUE/FALSE run unchanged on both.
// What does not (column types for ids and bytes, list parameters) goes
// through Dialect. SQLite runs in WAL mode with one writer connection and a
// pool of readers, because SQLite allows one writer at a time and a pool of
// writers only turns that into SQLITE_BUSY retries.
package sqlutil

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Querier runs statements; *sql.DB, *sql.Tx and *DB satisfy it, so table
// methods work inside and outside transactions.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Engine names a database engine.
type Engine string

// The supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Dialect holds the differences between the engines.
type Dialect struct{ Engine Engine }

// ID is the column type of an auto-incrementing integer primary key.
func (d Dialect) ID() string {
	if d.Engine == Postgres {
		return "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return "INTEGER PRIMARY KEY"
}

// WithoutRowID ends a CREATE TABLE whose rows should live in the primary
// key's B-tree: on SQLite a table keeps a hidden rowid tree beside its key
// index otherwise, and every write by key touches both. PostgreSQL has no
// such choice.
func (d Dialect) WithoutRowID() string {
	if d.Engine == Postgres {
		return ""
	}
	return " WITHOUT ROWID"
}

// Bytes is the column type for binary data.
func (d Dialect) Bytes() string {
	if d.Engine == Postgres {
		return "BYTEA"
	}
	return "BLOB"
}

// In is a `col IN (list)` condition whose list is the single parameter $n,
// bound with List.
func (d Dialect) In(col string, n int) string {
	if d.Engine == Postgres {
		return fmt.Sprintf("%s = ANY($%d)", col, n)
	}
	return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", col, n)
}

// List binds a slice for In: a JSON array on SQLite, an array on PostgreSQL.
func (d Dialect) List(v any) any {
	if d.Engine == Postgres {
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only slices of strings and integers are passed here.
		return "[]"
	}
	return string(b)
}

// PlanEach prefixes the arguments of a query that PostgreSQL must plan
// with each call's values: a cached generic plan made while a table was
// still small (a new server's first minutes) keeps scanning the whole table
// until autovacuum next analyzes it. Planning costs a little on every call.
func (d Dialect) PlanEach(args ...any) []any {
	if d.Engine != Postgres {
		return args
	}
	return append([]any{pgx.QueryExecModeExec}, args...)
}

// DB is a component's database: a writer and a reader pool (the same pool on
// PostgreSQL). As a Querier it writes.
type DB struct {
	Dialect Dialect
	writer  *sql.DB
	reader  *sql.DB
	metrics *Metrics
	name    string
	// group commits SQLite write transactions together (groupcommit.go);
	// nil on PostgreSQL, whose transactions run concurrently.
	group *groupCommitter
}

// Options configure Open.
type Options struct {
	// Name labels metrics and migrations (the component name).
	Name string
	// Metrics is optional.
	Metrics *Metrics
	// Readers is the SQLite reader pool size (default: 2 × CPUs, at least 4).
	Readers int
}

// Open opens dsn: a postgres:// or postgresql:// URL, or an SQLite file path
// (optionally prefixed "sqlite:" or "file:"). The SQLite file's directory is
// created.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	if IsPostgresDSN(dsn) {
		return openPostgres(ctx, dsn, opt)
	}
	return openSQLite(ctx, dsn, opt)
}

// IsPostgresDSN reports whether dsn names a PostgreSQL database: a URL of
// the schemes pgx reads (lower case only).
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func openPostgres(ctx context.Context, dsn string, opt Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres dsn: %w", err)
	}
	if _, set := cfg.RuntimeParams["application_name"]; !set && opt.Name != "" {
		// pg_stat_activity then tells the components' connections apart.
		cfg.RuntimeParams["application_name"] = "axon " + opt.Name
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &DB{Dialect: Dialect{Postgres}, writer: db, reader: db, metrics: opt.Metrics, name: opt.Name}, nil
}

func openSQLite(ctx context.Context, dsn string, opt Options) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("empty sqlite path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	// temp_store(MEMORY): a multi-row statement inside a transaction keeps
	// a statement journal; in a temporary file its writes were 13% of the
	// server's CPU under load.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_time_format=sqlite"
	// Page caches are per connection and SQLite's default is 2 MB: with a
	// writer and a reader pool per database they were a third of the
	// monolith's memory under load. A reader's cache buys little anyway: in
	// WAL mode a read transaction that finds the database changed since its
	// last one drops its whole cache, which under writes is nearly every
	// time, so its pages come from the OS page cache regardless. The
	// writer's cache stays valid (its own writes are the changes) and holds
	// the hot index pages of inserts. Measured: no CPU difference.
	writer, err := sql.Open(cachingDriverName, base+"&_txlock=immediate&_pragma=cache_size("+writerCacheKiB+")")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	reader, err := sql.Open(cachingDriverName, base+"&_pragma=query_only(1)&_pragma=cache_size("+readerCacheKiB+")")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite readers %s: %w", path, err)
	}
	n := opt.Readers
	if n <= 0 {
		n = max(4, 2*runtime.NumCPU())
	}
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	return &DB{Dialect: Dialect{SQLite}, writer: writer, reader: reader, metrics: opt.Metrics, name: opt.Name,
		group: newGroupCommitter(writer)}, nil
}

// SQLite page cache sizes per connection (negative: KiB, SQLite's
// convention); see openSQLite.
const (
	writerCacheKiB = "-1024"
	readerCacheKiB = "-256"
)

// Close closes both pools.
func (db *DB) Close() error {
	if db.group != nil {
		db.group.close()
	}
	err := db.writer.Close()
	if db.reader != db.writer {
		err = errors.Join(err, db.reader.Close())
	}
	return err
}

// Reader returns the pool for read-only queries. On SQLite it does not see
// writes of transactions still open on the writer.
func (db *DB) Reader() Querier { return timed{db.reader, db, "read"} }

// ExecContext runs a write statement. On SQLite it joins the group
// commit: alone it would take the writer for a commit of its own.
func (db *DB) ExecContext(ctx context.Context, q string, args ...any) (res sql.Result, err error) {
	defer db.observe("exec", time.Now())
	if db.group == nil {
		return db.writer.ExecContext(ctx, q, args...)
	}
	err = db.group.do(ctx, func(tx *sql.Tx) error {
		res, err = tx.ExecContext(ctx, q, args...)
		return err
	})
	return res, err
}

// QueryContext runs a query on the writer (for read-your-writes).
func (db *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	defer db.observe("query", time.Now())
	return db.writer.QueryContext(ctx, q, args...)
}

// QueryRowContext runs a single-row query on the writer.
func (db *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	defer db.observe("query", time.Now())
	return db.writer.QueryRowContext(ctx, q, args...)
}

// InTx runs f in a write transaction, committing when f returns nil.
func (db *DB) InTx(ctx context.Context, f func(tx *sql.Tx) error) (err error) {
	defer db.observe("tx", time.Now())
	if db.group != nil {
		return db.group.do(ctx, f)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = f(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (db *DB) observe(kind string, start time.Time) {
	if db.metrics != nil {
		db.metrics.latency.WithLabelValues(db.name, kind).Observe(time.Since(start).Seconds())
	}
}

type timed struct {
	q    *sql.DB
	db   *DB
	kind string
}

func (t timed) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer t.db.observe(t.kind, time.Now())
	return t.q.ExecContext(ctx, q, args...)
}

func (t timed) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	defer t.db.observe(t.kind, time.Now())
	return t.q.QueryContext(ctx, q, args...)
}

func (t timed) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	defer t.db.observe(t.kind, time.Now())
	return t.q.QueryRowContext(ctx, q, args...)
}

// Metrics is the database query latency histogram.
type Metrics struct{ latency *prometheus.HistogramVec }

// NewMetrics registers the database metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "axon_db_query_duration_seconds",
		Help:    "Latency of database statements and transactions by component and kind.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"db", "kind"})}
	reg.MustRegister(m.latency)
	return m
}

// IsUniqueViolation reports whether err is a unique-constraint violation:
// SQLSTATE 23505 on PostgreSQL, a failed UNIQUE constraint on SQLite.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}
