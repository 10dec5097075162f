package image

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/tlsutil"
)

const (
	serverName = "hs1"
	// sharedSecret is the registration shared secret of AXON_COMPLEMENT=1,
	// as in Complement's Synapse and Dendrite images.
	sharedSecret = "complement"
	// spawnTimeout is how long Complement waits for a server to answer
	// /versions by default (COMPLEMENT_SPAWN_HS_TIMEOUT_SECS).
	spawnTimeout = 30 * time.Second
	// stopGrace is the timeout Complement gives `docker stop` before
	// committing a blueprint container.
	stopGrace = 10
)

// TestImage runs the container contract against the image of the real
// server, ./cmd/axon.
func TestImage(t *testing.T) {
	runContract(t, "./cmd/axon")
}

// runContract builds an image from pkg and walks it through what Complement
// does with it.
func runContract(t *testing.T, pkg string) {
	if out, err := exec.CommandContext(t.Context(), "docker", "version").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers: docker version: %v\n%s", err, out)
	}
	root := repoRoot(t)
	tag := "axon-test:" + rand.Text()[:12]
	tag = strings.ToLower(tag)

	build := exec.CommandContext(t.Context(), filepath.Join(root, "scripts", "build-image"), tag)
	build.Dir = root
	build.Env = append(os.Environ(), "AXON_BUILD_PKG="+pkg)
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-image %s (AXON_BUILD_PKG=%s): %v\n%s", tag, pkg, err, out)
	}
	t.Logf("scripts/build-image took %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { dockerCleanup(t, "rmi", "--force", tag) })

	t.Run("image config", func(t *testing.T) { checkImageConfig(t, tag) })

	caCert, caKey, err := tlsutil.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	caDir := t.TempDir()
	for name, data := range map[string][]byte{"ca.crt": caCert, "ca.key": caKey} {
		if err := os.WriteFile(filepath.Join(caDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caCert)

	id := docker(t, "create", "-e", "SERVER_NAME="+serverName, "-p", "127.0.0.1::8008", "-p", "127.0.0.1::8448", tag)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := dockerCleanupOutput("logs", "--tail", "200", id)
			t.Logf("container logs (last 200 lines):\n%s", logs)
		}
		dockerCleanup(t, "rm", "--force", "--volumes", id)
	})
	for _, name := range []string{"ca.crt", "ca.key"} {
		docker(t, "cp", filepath.Join(caDir, name), id+":/complement/ca/"+name)
	}

	docker(t, "start", id)
	c := newContainer(t, id, roots)

	t.Run("healthcheck", func(t *testing.T) {
		err := waitFor(t, spawnTimeout, func() error {
			status := docker(t, "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
			if status != "healthy" {
				return fmt.Errorf("health status %q", status)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	t.Run("federation TLS", c.checkTLS)
	t.Run("server keys", c.checkServerKeys)

	const user, password = "alice", "complement-password"
	registered := t.Run("shared-secret registration", func(t *testing.T) {
		c.register(t, user, password)
	})

	start = time.Now()
	docker(t, "stop", "--time", fmt.Sprint(stopGrace), id)
	t.Logf("docker stop --time %d took %v", stopGrace, time.Since(start).Round(time.Millisecond))
	t.Run("graceful stop", func(t *testing.T) {
		// Killed after the grace period, the process would exit 137;
		// dying of SIGTERM without handling it, 143 (or 2, from Go's
		// runtime as PID 1).
		if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
			t.Errorf("exit code after docker stop = %s, want 0", code)
		}
	})

	docker(t, "start", id)
	c = newContainer(t, id, roots) // the host ports change on restart
	t.Run("federation TLS after restart", c.checkTLS)
	t.Run("login after restart", func(t *testing.T) {
		if !registered {
			t.Skip("registration failed; nothing to log in with")
		}
		c.login(t, user, password)
	})
}

// container is a started container with its host ports.
type container struct {
	id          string
	clientURL   string // http://127.0.0.1:port
	fedAddr     string // 127.0.0.1:port
	roots       *x509.CertPool
	client, fed *http.Client
}

// newContainer finds the ports of the started container id and waits until
// it answers /versions like Complement does; it fails the test if the
// server never does.
func newContainer(t *testing.T, id string, roots *x509.CertPool) *container {
	t.Helper()
	c := &container{
		id:    id,
		roots: roots,
		// A proxy from the environment must not carry requests to loopback.
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}},
		fed: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName},
		}},
	}
	c.clientURL = "http://" + hostPort(t, id, "8008/tcp")
	c.fedAddr = hostPort(t, id, "8448/tcp")

	start := time.Now()
	err := waitFor(t, spawnTimeout, func() error {
		if running := docker(t, "inspect", "--format", "{{.State.Running}}", id); running != "true" {
			return stop{fmt.Errorf("container exited (exit code %s)",
				docker(t, "inspect", "--format", "{{.State.ExitCode}}", id))}
		}
		resp, err := c.client.Get(c.clientURL + "/_matrix/client/versions")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /_matrix/client/versions: %s", resp.Status)
		}
		var v struct{ Versions []string }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Versions) == 0 {
			return stop{fmt.Errorf("GET /_matrix/client/versions: body without versions (%v)", err)}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("server never answered /versions: %v", err)
	}
	t.Logf("/versions answered 200 %v after docker start", time.Since(start).Round(time.Millisecond))
	return c
}

// checkTLS dials federation as a peer that knows the server as hs1 and
// trusts only the test CA.
func (c *container) checkTLS(t *testing.T) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: c.roots, ServerName: serverName}}
	conn, err := d.DialContext(t.Context(), "tcp", c.fedAddr)
	if err != nil {
		t.Fatalf("TLS handshake with %s as %q, trusting the test CA: %v", c.fedAddr, serverName, err)
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, serverName) {
		t.Errorf("certificate DNS names = %q, want %q among them", leaf.DNSNames, serverName)
	}
}

// checkServerKeys fetches the server's signing keys over verified TLS
// (server-server API, "Publishing Keys").
func (c *container) checkServerKeys(t *testing.T) {
	resp, err := c.fed.Get("https://" + c.fedAddr + "/_matrix/key/v2/server")
	if err != nil {
		t.Fatalf("GET /_matrix/key/v2/server: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_matrix/key/v2/server = %s: %s", resp.Status, body)
	}
	var keys struct {
		ServerName string                     `json:"server_name"`
		VerifyKeys map[string]json.RawMessage `json:"verify_keys"`
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("GET /_matrix/key/v2/server: %v: %s", err, body)
	}
	if keys.ServerName != serverName {
		t.Errorf("server_name = %q, want %q", keys.ServerName, serverName)
	}
	if len(keys.VerifyKeys) == 0 {
		t.Errorf("verify_keys is empty: %s", body)
	}
}

// register creates user with Synapse's shared-secret registration API,
// which Complement uses to make admin and ordinary users.
func (c *container) register(t *testing.T, user, password string) {
	var nonce struct{ Nonce string }
	c.call(t, http.MethodGet, "/_synapse/admin/v1/register", nil, &nonce)
	if nonce.Nonce == "" {
		t.Fatal("GET /_synapse/admin/v1/register returned no nonce")
	}
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	c.call(t, http.MethodPost, "/_synapse/admin/v1/register", map[string]any{
		"nonce":    nonce.Nonce,
		"username": user,
		"password": password,
		"admin":    false,
		"mac":      registrationMAC(sharedSecret, nonce.Nonce, user, password, false),
	}, &resp)
	if want := "@" + user + ":" + serverName; resp.UserID != want || resp.AccessToken == "" {
		t.Errorf("register = user_id %q, access_token %q; want %q and a token", resp.UserID, resp.AccessToken, want)
	}
}

// login logs user in with a password.
func (c *container) login(t *testing.T, user, password string) {
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	c.call(t, http.MethodPost, "/_matrix/client/v3/login", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   password,
	}, &resp)
	if want := "@" + user + ":" + serverName; resp.UserID != want || resp.AccessToken == "" {
		t.Errorf("login = user_id %q, access_token %q; want %q and a token", resp.UserID, resp.AccessToken, want)
	}
}

// call sends a client API request with a JSON body and decodes a 200
// answer into out; any other status fails the test.
func (c *container) call(t *testing.T, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.clientURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %s: %s", method, path, resp.Status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, data)
	}
}

// registrationMAC is the mac field of shared-secret registration: hex
// HMAC-SHA1 keyed with the secret over nonce, user, password and
// "admin"/"notadmin", NUL separated.
func registrationMAC(secret, nonce, user, password string, admin bool) string {
	role := "notadmin"
	if admin {
		role = "admin"
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(strings.Join([]string{nonce, user, password, role}, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

func TestRegistrationMAC(t *testing.T) {
	// Computed independently: printf 'n\0u\0p\0notadmin' | openssl dgst -sha1 -hmac complement
	tests := []struct {
		admin bool
		want  string
	}{
		{admin: false, want: "a2a6798ba39b8221b550bd78fe408c9d6f69234d"},
		{admin: true, want: "464966339081dcbf97a01a1afb4a0c47bf20e94c"},
	}
	for _, tc := range tests {
		if got := registrationMAC(sharedSecret, "n", "u", "p", tc.admin); got != tc.want {
			t.Errorf("registrationMAC(admin=%v) = %s, want %s", tc.admin, got, tc.want)
		}
	}
}

// checkImageConfig checks the parts of the image configuration Complement
// relies on.
func checkImageConfig(t *testing.T, tag string) {
	var cfg struct {
		Env          []string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		WorkingDir   string
		Entrypoint   []string
		Healthcheck  *struct {
			Test     []string
			Interval time.Duration
		}
	}
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", "--format", "{{json .Config}}", tag)), &cfg); err != nil {
		t.Fatalf("image config: %v", err)
	}
	for _, env := range []string{"SSL_CERT_FILE=/complement/ca/ca.crt", "AXON_COMPLEMENT=1"} {
		if !slices.Contains(cfg.Env, env) {
			t.Errorf("Env = %q, want %s among it", cfg.Env, env)
		}
	}
	for _, port := range []string{"8008/tcp", "8448/tcp"} {
		if _, ok := cfg.ExposedPorts[port]; !ok {
			t.Errorf("ExposedPorts = %v, want %s among them", cfg.ExposedPorts, port)
		}
	}
	// Complement warns about volumes: they escape `docker commit`.
	if len(cfg.Volumes) != 0 {
		t.Errorf("Volumes = %v, want none", cfg.Volumes)
	}
	if cfg.WorkingDir == "" || cfg.WorkingDir == "/" {
		t.Errorf("WorkingDir = %q, want a state directory", cfg.WorkingDir)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/axon"}) {
		t.Errorf("Entrypoint = %q, want [/axon]", cfg.Entrypoint)
	}
	if hc := cfg.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/axon", "healthcheck"}) || hc.Interval != time.Second {
		t.Errorf("Healthcheck = %+v, want CMD /axon healthcheck every 1s", hc)
	}
}

// hostPort returns the 127.0.0.1 host address mapped to the container port.
func hostPort(t *testing.T, id, port string) string {
	t.Helper()
	for line := range strings.Lines(docker(t, "port", id, port)) {
		if addr := strings.TrimSpace(line); strings.HasPrefix(addr, "127.0.0.1:") {
			return addr
		}
	}
	t.Fatalf("docker port %s %s: no 127.0.0.1 mapping", id, port)
	return ""
}

// docker runs the docker CLI and returns its trimmed standard output; a
// failure fails the test.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// dockerCleanupOutput runs the docker CLI from a cleanup function, where
// t.Context() is already cancelled.
func dockerCleanupOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

func dockerCleanup(t *testing.T, args ...string) {
	if out, err := dockerCleanupOutput(args...); err != nil {
		t.Errorf("cleanup: docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// stop wraps an error that waitFor must not retry.
type stop struct{ error }

// waitFor calls fn until it returns nil, returns a stop error, or timeout
// passes; it returns the last error.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if s, ok := errors.AsType[stop](err); ok {
			return s.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above the test: %v", err)
	}
	return root
}
