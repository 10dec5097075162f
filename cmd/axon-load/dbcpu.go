package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/jackc/pgx/v5"
)

// dbTimeout bounds each step of the database measurement: it must never
// hold up the load.
const dbTimeout = 10 * time.Second

// isPostgresURL reports whether dsn is a URL that names a PostgreSQL
// database.
func isPostgresURL(dsn string) bool {
	_, err := url.Parse(dsn)
	return err == nil && sqlutil.IsPostgresDSN(dsn)
}

// dbProbe reads the CPU of a PostgreSQL database's backends from /proc. Its
// one connection is held for the run and left out of the samples.
type dbProbe struct {
	conn *pgx.Conn
}

func openDBProbe(ctx context.Context, dsn string) (*dbProbe, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse -db-dsn: %w", err)
	}
	// A Unix socket is always local; a host elsewhere has no /proc here.
	if !strings.HasPrefix(cfg.Host, "/") && elsewhere(cfg.Host) {
		return nil, fmt.Errorf("cannot be measured: %s is not on this machine", cfg.Host)
	}
	cfg.RuntimeParams["application_name"] = "axon-load"
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return &dbProbe{conn: conn}, nil
}

func (p *dbProbe) close() {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	_ = p.conn.Close(ctx)
}

// sample returns the CPU time so far of every other backend of the
// database, by pid.
func (p *dbProbe) sample(ctx context.Context) (map[int]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	rows, _ := p.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("list backends: %w", err)
	}
	return backendCPU(int(p.conn.PgConn().PID()), pids, readStat)
}

// backendCPU reads the CPU time of each of pids with read (readStat but in
// tests). self is the probe's own backend, alive while it is read: if it is
// not a PostgreSQL process here, the database runs on another machine or in
// another pid namespace (a container) and the pids name unrelated processes.
func backendCPU(self int, pids []int, read func(pid int) (string, error)) (map[int]time.Duration, error) {
	line, err := read(self)
	if err != nil {
		return nil, fmt.Errorf("cannot be measured: the database's backends are not processes on this machine (%w)", err)
	}
	name := statName(line)
	if name != "postgres" && name != "postmaster" {
		return nil, fmt.Errorf("cannot be measured: the database's backends are not processes on this machine (pid %d here is %q)", self, name)
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		line, err := read(pid)
		if errors.Is(err, fs.ErrNotExist) {
			continue // exited since it was listed
		} else if err != nil {
			return nil, err
		}
		if n := statName(line); n != name {
			return nil, fmt.Errorf("cannot be measured: backend %d is %q here, not %q", pid, n, name)
		}
		d, err := parseStat(line)
		if err != nil {
			return nil, fmt.Errorf("backend %d: %w", pid, err)
		}
		out[pid] = d
	}
	return out, nil
}

// dbDelta is the CPU the backends used between two samples. A backend that
// started in between counts from zero; one that exited in between took its
// CPU with it and is only counted in gone.
func dbDelta(before, after map[int]time.Duration) (cpu time.Duration, gone int) {
	for pid, a := range after {
		b := before[pid]
		if a < b {
			b = 0 // the pid was reused by a newer backend
		}
		cpu += a - b
	}
	for pid := range before {
		if _, ok := after[pid]; !ok {
			gone++
		}
	}
	return cpu, gone
}

// dbStart opens the probe and takes the first sample. On failure it
// records why in r.DBErr and returns nil: the load runs on regardless.
func (r *Result) dbStart(ctx context.Context) (*dbProbe, map[int]time.Duration) {
	p, err := openDBProbe(ctx, r.Config.DBDSN)
	if err != nil {
		r.DBErr = err.Error()
		return nil, nil
	}
	s, err := p.sample(ctx)
	if err != nil {
		p.close()
		r.DBErr = err.Error()
		return nil, nil
	}
	return p, s
}

// dbEnd takes the second sample and closes the probe.
func (r *Result) dbEnd(ctx context.Context, p *dbProbe, before map[int]time.Duration) {
	if p == nil {
		return
	}
	defer p.close()
	after, err := p.sample(ctx)
	if err != nil {
		r.DBErr = err.Error()
		return
	}
	r.DBCPU, r.DBGone = dbDelta(before, after)
	r.DBBackends, r.DBKnown = len(after), true
}
