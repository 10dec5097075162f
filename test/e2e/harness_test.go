// Package e2e drives real Axon processes over HTTP with a real Matrix client
// library (mautrix-go): the monolith on SQLite and on PostgreSQL, and the
// polylith as separate OS processes with an external NATS server.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "axon-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

var buildOnce sync.Once

// binary builds (once per test run) and returns the path of cmd/<name>.
func binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", binDir+"/", "../../cmd/axon", "../../cmd/clientapi",
			"../../cmd/roomserver", "../../cmd/syncapi", "../../cmd/userapi")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	// Not port 0: the kernel hands those out from the ephemeral range,
	// where every outgoing connection of a busy test run also takes its
	// port, so one could take ours before the server binds it (a polylith
	// failed with "address already in use"). Below the range only other
	// listeners compete, and handedOut keeps this binary from reusing one.
	for range 1000 {
		port := 10000 + rand.IntN(22000) // 10000-31999, below 32768
		handedOutMu.Lock()
		taken := handedOut[port]
		handedOut[port] = true
		handedOutMu.Unlock()
		if taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t testing.TB, d time.Duration, f func() error) {
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

// proc is a running Axon process.
type proc struct {
	t       testing.TB
	name    string
	bin     string
	args    []string
	env     []string
	cmd     *exec.Cmd
	logPath string
	logs    *os.File
	done    chan struct{}
	started time.Time
}

func startProc(t testing.TB, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, args: args, env: env, logPath: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			data, _ := os.ReadFile(p.logPath)
			if len(data) > 20000 {
				data = data[len(data)-20000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", p.name, data)
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.logs = f
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
}

// stop signals the process and waits for it to exit (killing it after 15 s).
func (p *proc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) log() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}

// waitHTTP waits until url answers 200.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		res, err := http.Get(url)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, res.StatusCode)
		}
		return nil
	})
}

// server is a running homeserver as a client sees it.
type server struct {
	URL        string   // client API base URL
	OpsURLs    []string // ops listener of every process
	ServerName string
	Secret     string
	procs      map[string]*proc
}

const sharedSecret = "e2e-shared-secret"

// startMonolith starts cmd/axon on a fresh data directory with the database
// dsn ("" for SQLite).
func startMonolith(t testing.TB, dsn string) *server {
	t.Helper()
	// Tests make requests faster than any person; the limiter has its own test.
	return startMonolithEnv(t, dsn, "AXON_RATE_LIMITS=false")
}

// startMonolithEnv is startMonolith with extra environment variables.
func startMonolithEnv(t testing.TB, dsn string, env ...string) *server {
	t.Helper()
	httpAddr, opsAddr := freeAddr(t), freeAddr(t)
	args := []string{"--data-dir", t.TempDir(), "--http", httpAddr, "--ops", opsAddr, "--server-name", "e2e.test",
		"--open-registration", "--registration-shared-secret", sharedSecret}
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	p := startProc(t, "axon", binary(t, "axon"), args, env)
	s := &server{URL: "http://" + httpAddr, OpsURLs: []string{"http://" + opsAddr}, ServerName: "e2e.test", Secret: sharedSecret,
		procs: map[string]*proc{"axon": p}}
	waitHTTP(t, s.URL+"/_matrix/client/versions")
	return s
}

// polylith is the four component processes, an external NATS server and
// PostgreSQL, with a reverse proxy in front as a load balancer would be.
type polylith struct {
	*server
	syncAddr string
}

func startPolylith(t testing.TB) *polylith {
	t.Helper()
	return startPolylithWith(t, "")
}

// startPolylithWith starts the polylith with more registration settings:
// registration is YAML lines indented under the registration key.
func startPolylithWith(t testing.TB, registration string) *polylith {
	t.Helper()
	natsBin := os.Getenv("AXON_TEST_NATS_SERVER")
	if natsBin == "" {
		t.Fatal("AXON_TEST_NATS_SERVER is not set: run the tests with ./scripts/test, which builds nats-server")
	}
	natsAddr := freeAddr(t)
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	startProc(t, "nats", natsBin, []string{"-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", natsPort}, nil)
	waitFor(t, 20*time.Second, func() error {
		c, err := net.Dial("tcp", natsAddr)
		if err == nil {
			c.Close()
		}
		return err
	})

	dsn := storagetest.PostgresDSN(t)
	internal := map[string]string{"userapi": freeAddr(t), "roomserver": freeAddr(t), "syncapi": freeAddr(t), "clientapi": freeAddr(t)}
	cfg := fmt.Sprintf("server_name: poly.test\ndatabase: %q\nlog:\n  nats_url: nats://%s\nregistration:\n  open: true\n  shared_secret: %s\n%srate_limits:\n  enabled: false\ninternal:\n",
		dsn, natsAddr, sharedSecret, registration)
	for k, v := range internal {
		cfg += fmt.Sprintf("  %s: %s\n", k, v)
	}
	cfgPath := filepath.Join(t.TempDir(), "axon.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{ServerName: "poly.test", Secret: sharedSecret, procs: map[string]*proc{}}
	pl := &polylith{server: s}
	var clientAddr string
	for _, c := range []string{"userapi", "roomserver", "syncapi", "clientapi"} {
		httpAddr, opsAddr := freeAddr(t), freeAddr(t)
		args := []string{"--config", cfgPath, "--data-dir", t.TempDir(), "--http", httpAddr, "--ops", opsAddr}
		s.procs[c] = startProc(t, c, binary(t, c), args, nil)
		s.OpsURLs = append(s.OpsURLs, "http://"+opsAddr)
		waitHTTP(t, "http://"+opsAddr+"/metrics")
		if c == "userapi" || c == "roomserver" || c == "syncapi" {
			// Their internal API listener comes up after the ops listener.
			waitFor(t, 20*time.Second, func() error {
				conn, err := net.Dial("tcp", internal[c])
				if err == nil {
					conn.Close()
				}
				return err
			})
		}
		switch c {
		case "syncapi":
			pl.syncAddr = httpAddr
		case "clientapi":
			clientAddr = httpAddr
		}
	}
	// The proxy sends the syncapi's paths (/sync, typing, receipts, read
	// markers, presence) to the syncapi and everything else to the clientapi.
	toClient := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: clientAddr})
	toSync := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: pl.syncAddr})
	for _, rp := range []*httputil.ReverseProxy{toClient, toSync} {
		rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	}
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isSyncAPIPath(r.URL.Path) {
			toSync.ServeHTTP(w, r)
			return
		}
		toClient.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = proxy.Serve(ln) }()
	t.Cleanup(func() { proxy.Close() })
	s.URL = "http://" + ln.Addr().String()
	waitHTTP(t, s.URL+"/_matrix/client/versions")
	return pl
}

// do sends a raw request and returns status and body.
func do(t testing.TB, method, url, token string, body []byte, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return res.StatusCode, data, res.Header
}

// isSyncAPIPath reports whether the syncapi serves a client path.
func isSyncAPIPath(p string) bool {
	return strings.HasSuffix(p, "/sync") || strings.Contains(p, "/typing/") || strings.Contains(p, "/receipt/") ||
		strings.HasSuffix(p, "/read_markers") || strings.Contains(p, "/presence/") ||
		strings.Contains(p, "/relations/") || strings.HasSuffix(p, "/threads") ||
		strings.HasSuffix(p, "/v3/search") || strings.HasSuffix(p, "/r0/search") ||
		isRoomPath(p, "messages", 0) || isRoomPath(p, "context", 1) || isRoomPath(p, "event", 1) ||
		isRoomPath(p, "timestamp_to_event", 0)
}

// isRoomPath reports whether p is /rooms/{roomId}/<name> followed by n
// more segments (so an event type named like the endpoint in /send/ or
// /state/ does not match).
func isRoomPath(p, name string, n int) bool {
	segs := strings.Split(p, "/")
	i := len(segs) - 1 - n
	return i >= 2 && segs[i] == name && segs[i-2] == "rooms"
}

// onBothEngines runs scenario against a monolith on SQLite and on
// PostgreSQL.
func onBothEngines(t *testing.T, scenario func(*testing.T, *server)) {
	t.Run("sqlite", func(t *testing.T) { scenario(t, startMonolith(t, "")) })
	t.Run("postgres", func(t *testing.T) { scenario(t, startMonolith(t, storagetest.PostgresDSN(t))) })
}

// publicRoom creates a public room as owner and joins members to it.
func publicRoom(t *testing.T, owner *mautrix.Client, members ...*mautrix.Client) *mautrix.RespCreateRoom {
	t.Helper()
	room, err := owner.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "CreateRoom", err)
	for _, m := range members {
		_, err := m.JoinRoomByID(t.Context(), room.RoomID)
		must(t, "JoinRoomByID", err)
	}
	return room
}
