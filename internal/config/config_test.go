package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if c.ServerName != "localhost:8008" || c.HTTP.Addr != "127.0.0.1:8008" || c.DataDir != "./axon-data" || c.Registration.Open {
		t.Fatalf("defaults = %+v", c)
	}
	if got := c.DatabaseFor("roomserver"); got != "sqlite:axon-data/roomserver.db" {
		t.Fatalf("DatabaseFor(roomserver) = %q", got)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "axon.yaml")
	if err := os.WriteFile(file, []byte("server_name: file.example\nhttp:\n  addr: 127.0.0.1:1\nregistration:\n  open: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"AXON_HTTP_ADDR": "127.0.0.1:2", "AXON_DATABASE": "postgres://x@h/db"})
	c, err := Load([]string{"--config", file, "--server-name", "flag.example", "--open-registration=false"}, env, io.Discard)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if c.ServerName != "flag.example" || c.HTTP.Addr != "127.0.0.1:2" || c.Registration.Open {
		t.Fatalf("precedence wrong: %+v", c)
	}
	if c.DatabaseFor("userapi") != "postgres://x@h/db" {
		t.Fatalf("database = %q", c.DatabaseFor("userapi"))
	}
}

func TestBadConfigNamesKey(t *testing.T) {
	cases := []struct {
		name, yaml, wantKey string
	}{
		{"server name", "server_name: 'bad name!'", "server_name"},
		{"http addr", "http:\n  addr: nonsense", "http.addr"},
		{"unknown key", "sever_name: x", "sever_name"},
		{"database", "database: mysql://x", "database"},
		{"internal", "internal:\n  nothing: 127.0.0.1:1", "internal.nothing"},
		{"log level", "logging:\n  level: loud", "logging.level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load([]string{"--config", file}, envOf(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("Load(%q) = %v, want an error naming %q", tc.yaml, err, tc.wantKey)
			}
		})
	}
	if _, err := Load(nil, envOf(map[string]string{"AXON_OPEN_REGISTRATION": "maybe"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "AXON_OPEN_REGISTRATION") {
		t.Fatalf("bad bool env = %v", err)
	}
}

func TestComplement(t *testing.T) {
	c, err := Load(nil, envOf(map[string]string{"AXON_COMPLEMENT": "1", "SERVER_NAME": "hs1"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "hs1" || !c.Registration.Open || c.Registration.SharedSecret != "complement" ||
		c.Federation.TLSAddr != "0.0.0.0:8448" || c.RateLimits.Enabled || !c.Federation.AllowPrivateAddresses {
		t.Fatalf("complement config = %+v", c)
	}
}

func TestGeneratedConfigLoads(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(Sample), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", file}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatalf("the sample config does not load: %v", err)
	}
	d := Default()
	if c.ServerName != d.ServerName || c.HTTP != d.HTTP || c.Ops != d.Ops {
		t.Fatalf("sample differs from defaults: %+v", c)
	}
}
