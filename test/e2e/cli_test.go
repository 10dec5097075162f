package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCommandLine checks the admin subcommands and that a bad
// configuration names the key at fault and exits with status 2.
func TestCommandLine(t *testing.T) {
	bin := binary(t, "axon")
	dir := t.TempDir()

	out, err := exec.Command(bin, "generate-config").Output()
	if err != nil || !strings.Contains(string(out), "server_name: localhost:8008") {
		t.Fatalf("generate-config = %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "axon.yaml")
	if err := os.WriteFile(cfg, out, 0o600); err != nil {
		t.Fatal(err)
	}

	key := filepath.Join(dir, "k", "signing.key")
	if out, err := exec.Command(bin, "generate-keys", "-o", key).CombinedOutput(); err != nil {
		t.Fatalf("generate-keys = %v\n%s", err, out)
	}
	data, err := os.ReadFile(key)
	if err != nil || !strings.HasPrefix(string(data), "ed25519 a_") {
		t.Fatalf("key file = %q, %v", data, err)
	}
	if err := exec.Command(bin, "generate-keys", "-o", key).Run(); err == nil {
		t.Fatal("generate-keys overwrote an existing key")
	}

	bad := []struct {
		args    []string
		env     string
		wantKey string
	}{
		{[]string{"--http", "nonsense"}, "", "http.addr"},
		{[]string{"--server-name", "bad name"}, "", "server_name"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "", "read config"},
		{nil, "AXON_DATABASE=mysql://x", "database"},
		{nil, "AXON_OPEN_REGISTRATION=perhaps", "AXON_OPEN_REGISTRATION"},
	}
	for _, tc := range bad {
		cmd := exec.Command(bin, append(tc.args, "--data-dir", dir)...)
		if tc.env != "" {
			cmd.Env = append(os.Environ(), tc.env)
		}
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.wantKey) {
			t.Errorf("axon %v %s = %v\n%s\nwant exit status 2 naming %q", tc.args, tc.env, err, out, tc.wantKey)
		}
	}
}

// TestShutdownAndRestart: SIGTERM stops the monolith cleanly, and what was
// stored survives a restart on the same data directory.
func TestShutdownAndRestart(t *testing.T) {
	s := startMonolith(t, "")
	reg := registerShared(t, s, "erin", "pw", false)
	p := s.procs["axon"]
	start := time.Now()
	p.stop(15) // SIGTERM
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d, want 0", code)
	}
	t.Logf("shutdown took %s", time.Since(start))
	p.start()
	waitHTTP(t, s.URL+"/_matrix/client/versions")
	t.Logf("restart to first /versions answer: %s", time.Since(p.started))
	status, body, _ := do(t, "GET", s.URL+"/_matrix/client/v3/account/whoami", reg.AccessToken, nil)
	if status != 200 || !strings.Contains(string(body), reg.UserID) {
		t.Fatalf("whoami after restart = %d %s", status, body)
	}
}
