package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// EnvPostgresBin names the variable holding the directory of PostgreSQL's
// binaries (initdb, pg_ctl), which the test command exports.
const EnvPostgresBin = "AXON_TEST_PGBIN"

// PrivatePostgres is a PostgreSQL cluster of one test's own, for tests that
// crash it: crashing the shared server would take every other test down.
type PrivatePostgres struct {
	// DSN is the URL of its postgres database.
	DSN  string
	t    testing.TB
	data string
	bin  string
}

// StartPrivatePostgres initializes and starts a cluster in a temporary
// directory, on a free loopback port, stopped when the test ends. settings
// are extra server settings (name=value). As root it runs the server as the
// postgres user, which the test command creates.
func StartPrivatePostgres(t testing.TB, settings ...string) *PrivatePostgres {
	t.Helper()
	bin := os.Getenv(EnvPostgresBin)
	if bin == "" {
		t.Fatalf("%s is not set: run the tests with ./scripts/test", EnvPostgresBin)
	}
	dir, err := os.MkdirTemp("", "axon-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &PrivatePostgres{t: t, data: filepath.Join(dir, "data"), bin: bin}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("look up the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.run("initdb", "-D", p.data, "-U", "axon", "--auth=trust", "-E", "UTF8", "--locale=C")
	// Before the start: a start that times out may have left it running.
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(p.data, "postmaster.pid")); err == nil {
			p.run("pg_ctl", "-D", p.data, "-m", "immediate", "stop")
		}
	})
	port := freePort(t)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(dir, "server.log"), "-w", "-o", opts, "start")
	p.DSN = fmt.Sprintf("postgres://axon@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p
}

// run runs one of the server's binaries, as the postgres user when root.
func (p *PrivatePostgres) run(name string, args ...string) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, name)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// Crash kills one backend of the cluster with SIGKILL, as a crash would:
// the server then ends every session, empties its shared memory (WAL not
// yet written included) and recovers from the WAL on disk. It returns once
// the server accepts connections again.
func (p *PrivatePostgres) Crash(ctx context.Context) {
	p.t.Helper()
	db, err := sql.Open("pgx", p.DSN)
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	var pid int
	var checkpoint string
	// A backend other than the one asking: killing the asker would
	// crash the server just the same, but leave no answer to read.
	if err := db.QueryRowContext(ctx, `SELECT pid, (pg_control_checkpoint()).checkpoint_lsn::text FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY backend_start LIMIT 1`).Scan(&pid, &checkpoint); err != nil {
		p.t.Fatalf("find a backend to kill: %v", err)
	}
	proc, err := os.FindProcess(pid)
	if err == nil {
		err = proc.Kill()
	}
	if err != nil {
		p.t.Fatalf("kill backend %d: %v", pid, err)
	}
	// Recovery ends with a checkpoint of its own: until it is there, the
	// server may not even have noticed the crash yet.
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", p.DSN)
		if err == nil {
			var now string
			err = db.QueryRowContext(ctx, `SELECT (pg_control_checkpoint()).checkpoint_lsn::text`).Scan(&now)
			db.Close()
			if err == nil && now == checkpoint {
				err = fmt.Errorf("no checkpoint after recovery yet")
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the server did not recover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port nothing listens on now, below the
// kernel's ephemeral range (from 32768): a port an outgoing connection
// holds there could be taken before the server binds it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}
