package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// statLine is a /proc/<pid>/stat line of command name with utime and stime
// in clock ticks.
func statLine(pid int, name string, utime, stime int) string {
	return fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 1 0 100 0 0", pid, name, pid, pid, utime, stime)
}

func TestBackendCPU(t *testing.T) {
	denied := errors.New("permission denied")
	// fakeProc reads stat lines from a map; pids without one do not exist.
	fakeProc := func(lines map[int]string, errs map[int]error) func(int) (string, error) {
		return func(pid int) (string, error) {
			if err := errs[pid]; err != nil {
				return "", err
			}
			if l, ok := lines[pid]; ok {
				return l, nil
			}
			return "", fmt.Errorf("read cpu time of %d: %w", pid, fs.ErrNotExist)
		}
	}
	pg := map[int]string{
		10: statLine(10, "postgres", 1, 1),
		11: statLine(11, "postgres", 250, 75),
		12: statLine(12, "postgres", 7, 3),
		20: statLine(20, "kworker/0:1", 5, 5),
		30: statLine(30, "postmaster", 1, 0),
		31: statLine(31, "postmaster", 4, 0),
	}
	tests := []struct {
		name    string
		self    int
		pids    []int
		garbled bool // pid 11's stat line cut short
		errs    map[int]error
		want    map[int]time.Duration
		wantErr bool
	}{
		{"summed per pid", 10, []int{11, 12}, false, nil, map[int]time.Duration{11: 325 * clockTick, 12: 10 * clockTick}, false},
		{"no other backend", 10, nil, false, nil, map[int]time.Duration{}, false},
		{"exited since listed", 10, []int{11, 99}, false, nil, map[int]time.Duration{11: 325 * clockTick}, false},
		{"binary called postmaster", 30, []int{31}, false, nil, map[int]time.Duration{31: 4 * clockTick}, false},
		{"own backend not here", 99, []int{11}, false, nil, nil, true},
		{"own backend is another process", 20, []int{11}, false, nil, nil, true},
		{"backend is another process", 10, []int{11, 20}, false, nil, nil, true},
		{"backend unreadable", 10, []int{11}, false, map[int]error{11: denied}, nil, true},
		{"garbled stat", 10, []int{11}, true, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := maps.Clone(pg)
			if tc.garbled {
				lines[11] = "11 (postgres) S 1"
			}
			got, err := backendCPU(tc.self, tc.pids, fakeProc(lines, tc.errs))
			if (err != nil) != tc.wantErr || !maps.Equal(got, tc.want) {
				t.Errorf("backendCPU(%d, %v) = %v, %v; want %v, error %v", tc.self, tc.pids, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestDBDelta(t *testing.T) {
	ms := time.Millisecond
	before := map[int]time.Duration{1: 100 * ms, 2: 50 * ms, 3: 40 * ms, 4: 500 * ms}
	after := map[int]time.Duration{
		1: 160 * ms, // +60
		2: 50 * ms,  // idle: +0
		5: 30 * ms,  // new: from 0
		4: 20 * ms,  // fewer than before: a newer backend on a reused pid
	}
	// 3 exited during the load: its CPU is lost.
	cpu, gone := dbDelta(before, after)
	if cpu != 110*ms || gone != 1 {
		t.Errorf("dbDelta = %v, %d gone; want 110ms, 1 gone", cpu, gone)
	}
	if cpu, gone := dbDelta(nil, nil); cpu != 0 || gone != 0 {
		t.Errorf("dbDelta(nil, nil) = %v, %d; want 0, 0", cpu, gone)
	}
}

// TestDBProbeOwnBackend measures a backend of the test PostgreSQL: the
// probe must find it and see the CPU of a query it runs.
func TestDBProbeOwnBackend(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ctx := t.Context()
	worker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer worker.Close(ctx)
	var pid int32
	if err := worker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	p, err := openDBProbe(ctx, dsn)
	if err != nil {
		t.Fatalf("openDBProbe: %v", err)
	}
	defer p.close()
	before, err := p.sample(ctx)
	if err != nil {
		t.Fatalf("sample: %v", err)
	}
	if d, ok := before[int(pid)]; !ok || d < 0 {
		t.Fatalf("sample = %v; want backend %d with CPU ≥ 0", before, pid)
	}
	if _, ok := before[int(p.conn.PgConn().PID())]; ok {
		t.Errorf("sample = %v holds the probe's own backend %d", before, p.conn.PgConn().PID())
	}
	// A few hundred ms of CPU, well above the 10 ms clock tick.
	if _, err := worker.Exec(ctx, "SELECT count(*) FROM generate_series(1, 5000000)"); err != nil {
		t.Fatal(err)
	}
	after, err := p.sample(ctx)
	if err != nil {
		t.Fatalf("sample: %v", err)
	}
	if cpu, gone := dbDelta(before, after); cpu <= 0 || gone != 0 {
		t.Errorf("dbDelta = %v, %d gone; want the query's CPU and none gone (before %v, after %v)", cpu, gone, before, after)
	}
}

func TestDBProbeErrors(t *testing.T) {
	// Nothing listens on port 1: the error is returned, for a row to show.
	if _, err := openDBProbe(t.Context(), "postgres://x@127.0.0.1:1/db?connect_timeout=2"); err == nil {
		t.Error("openDBProbe(port 1) = nil error")
	}
	if _, err := openDBProbe(t.Context(), "postgres://x@192.0.2.1/db"); err == nil || !strings.Contains(err.Error(), "not on this machine") {
		t.Errorf("openDBProbe(another machine) = %v, want \"not on this machine\"", err)
	}
	r := &Result{Config: Config{DBDSN: "postgres://x@127.0.0.1:1/db?connect_timeout=2"}}
	if p, s := r.dbStart(t.Context()); p != nil || s != nil || r.DBErr == "" {
		t.Errorf("dbStart = %v, %v, DBErr %q; want nothing and the error", p, s, r.DBErr)
	}
	r.dbEnd(t.Context(), nil, nil)
	if r.DBKnown {
		t.Error("DBKnown after a failed start")
	}
}
