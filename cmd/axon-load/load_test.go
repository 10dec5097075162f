package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMonolith builds cmd/axon and runs it in a temporary data directory,
// as test/e2e does, on SQLite unless extra says otherwise; it returns the
// client URL and the process.
func startMonolith(t *testing.T, secret string, extra ...string) (string, *os.Process) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "axon")
	if out, err := exec.Command("go", "build", "-o", bin, "../axon").CombinedOutput(); err != nil {
		t.Fatalf("go build ../axon: %v\n%s", err, out)
	}
	httpAddr, opsAddr := freeAddr(t), freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--data-dir", t.TempDir(), "--http", httpAddr, "--ops", opsAddr, "--server-name", "load.test",
		"--open-registration", "--registration-shared-secret", secret}, extra...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- axon log ---\n%s", logs.String())
		}
	})
	url := "http://" + httpAddr
	waitFor(t, 30*time.Second, func() error {
		res, err := http.Get(url + "/_matrix/client/versions")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("versions: status %d", res.StatusCode)
		}
		return nil
	})
	return url, cmd.Process
}

// TestRunAgainstMonolith runs a tiny load against a real monolith so the
// tool keeps working as the server grows. It checks what the run saw, never
// how fast it was.
func TestRunAgainstMonolith(t *testing.T) {
	const secret = "load-test-secret"
	url, p := startMonolith(t, secret)
	tests := []struct {
		name   string
		secret string
		dbDSN  string
	}{
		{"shared-secret registration", secret, ""},
		{"m.login.dummy registration", "", ""},
		// The database measurement failing must not fail the load.
		{"database unreachable", secret, "postgres://x@127.0.0.1:1/db?connect_timeout=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{HS: url, Users: 3, Rooms: 2, Messages: 40, Senders: 3, Syncers: 2, SharedSecret: tc.secret,
				DBDSN: tc.dbDSN, IdleMax: 5 * time.Second, DrainMax: 10 * time.Second}
			var progress bytes.Buffer
			r, err := Run(t.Context(), cfg, &progress)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, progress.String())
			}
			if r.Sent != cfg.Messages || r.SendErrors != 0 {
				t.Errorf("sent %d with %d errors (%s), want %d and none", r.Sent, r.SendErrors, r.FirstError, cfg.Messages)
			}
			if r.Expected == 0 || r.Missing != 0 || r.Duplicates != 0 || r.Delivered != r.Expected {
				t.Errorf("delivered %d of %d, %d missing, %d duplicates; want all once", r.Delivered, r.Expected, r.Missing, r.Duplicates)
			}
			if r.Send.N != cfg.Messages || r.Delivery.N == 0 || r.InitialSync.N == 0 || r.IncrementalSync.N == 0 {
				t.Errorf("summaries: send n=%d, delivery n=%d, initial n=%d, incremental n=%d; want all measured",
					r.Send.N, r.Delivery.N, r.InitialSync.N, r.IncrementalSync.N)
			}
			if r.MessagesSupported && (r.MessagesMissing != 0 || r.MessagesDup != 0) {
				t.Errorf("/messages: %d missing, %d duplicates; want none", r.MessagesMissing, r.MessagesDup)
			}
			if r.ToolCPU <= 0 {
				t.Errorf("load tool CPU = %v, want it measured", r.ToolCPU)
			}
			if r.PID != p.Pid || !r.MemKnown || r.MemEnd.RSS <= 0 {
				t.Errorf("server process: pid %d (want %d), memory known %v, RSS %d (%s)", r.PID, p.Pid, r.MemKnown, r.MemEnd.RSS, r.ProcErr)
			}
			var out bytes.Buffer
			r.Print(&out)
			for _, want := range []string{"send throughput", "send-to-sync latency", "idle after load", "initial sync", "/messages", "VmHWM", "load tool CPU"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, out.String())
				}
			}
			if hasDB := strings.Contains(out.String(), "database CPU during load") && strings.Contains(out.String(), "n/a (connect:"); hasDB != (tc.dbDSN != "") || r.DBKnown {
				t.Errorf("database rows: DBKnown %v, want an n/a row only with -db-dsn:\n%s", r.DBKnown, out.String())
			}
		})
	}
}

// TestRunAgainstMonolithOnPostgres measures the backends of the monolith's
// own PostgreSQL database.
func TestRunAgainstMonolithOnPostgres(t *testing.T) {
	const secret = "load-test-secret"
	dsn := storagetest.PostgresDSN(t)
	url, _ := startMonolith(t, secret, "--database", dsn)
	// Enough messages for the backends to use many 10 ms clock ticks.
	cfg := Config{HS: url, Users: 3, Rooms: 2, Messages: 300, Senders: 3, Syncers: 2, SharedSecret: secret,
		DBDSN: dsn, IdleMax: 5 * time.Second, DrainMax: 10 * time.Second}
	var progress bytes.Buffer
	r, err := Run(t.Context(), cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	r.Print(&out)
	if r.Sent != cfg.Messages || !r.DBKnown || r.DBBackends == 0 || r.DBCPU <= 0 {
		t.Errorf("sent %d; database: known %v, %d backends, CPU %v (%s); want the sends' CPU\n%s",
			r.Sent, r.DBKnown, r.DBBackends, r.DBCPU, r.DBErr, out.String())
	}
	for _, want := range []string{"database CPU during load", "server + database CPU"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "n/a (") {
		t.Errorf("table has an n/a row:\n%s", out.String())
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"defaults", nil, false},
		{"issue parameters", []string{"-hs", "http://x:8008", "-users", "20", "-rooms", "10", "-messages", "5000", "-senders", "8"}, false},
		{"zero senders", []string{"-senders", "0"}, true},
		{"negative rooms", []string{"-rooms", "-1"}, true},
		{"unknown flag", []string{"-nope"}, true},
		{"empty hs", []string{"-hs", ""}, true},
		{"db-dsn postgres", []string{"-db-dsn", "postgres://axon@127.0.0.1:5432/axon?sslmode=disable"}, false},
		{"db-dsn postgresql", []string{"-db-dsn", "postgresql:///axon?host=/var/run/postgresql"}, false},
		{"db-dsn sqlite", []string{"-db-dsn", "sqlite:/tmp/axon.db"}, true},
		{"db-dsn keyword form", []string{"-db-dsn", "host=127.0.0.1 dbname=axon"}, true},
		{"db-dsn upper-case scheme", []string{"-db-dsn", "POSTGRES://x@h/db"}, true},
		{"db-dsn bad URL", []string{"-db-dsn", "postgres://x@h:port/db"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tc.args, &stderr)
			if (err != nil) != tc.wantErr {
				t.Errorf("parseFlags(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			}
		})
	}
}

// TestCPUProfileFlag checks that -cpuprofile works and -h does not list it.
func TestCPUProfileFlag(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := parseFlags([]string{"-cpuprofile", "/tmp/x.pprof", "-users", "3"}, &stderr)
	if err != nil || cfg.CPUProfile != "/tmp/x.pprof" || cfg.Users != 3 {
		t.Errorf("parseFlags(-cpuprofile) = %+v, %v; want CPUProfile set", cfg, err)
	}
	stderr.Reset()
	if _, err := parseFlags([]string{"-h"}, &stderr); err == nil {
		t.Errorf("parseFlags(-h) = nil error, want flag.ErrHelp")
	}
	if out := stderr.String(); strings.Contains(out, "cpuprofile") || !strings.Contains(out, "-senders") ||
		!strings.Contains(out, "(default 8)") {
		t.Errorf("usage lists cpuprofile or lacks -senders and its default:\n%s", out)
	}
}
