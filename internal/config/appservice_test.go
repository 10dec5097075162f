package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodAS = `id: bridge
url: http://127.0.0.1:9000
as_token: aaa
hs_token: bbb
sender_localpart: bridgebot
namespaces:
  users:
    - exclusive: true
      regex: "@bridge_.*:hs1"
  aliases: []
  rooms: []
`

func TestLoadAppServices(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", goodAS)
	got, err := LoadAppServices([]string{filepath.Join(dir, "*.yaml")})
	if err != nil || len(got) != 1 || got[0].ID != "bridge" || got[0].Namespaces.Users[0].Regex != "@bridge_.*:hs1" || *got[0].URL != "http://127.0.0.1:9000" {
		t.Fatalf("LoadAppServices = %+v, %v", got, err)
	}
	if got, err := LoadAppServices([]string{filepath.Join(dir, "none", "*.yaml")}); err != nil || len(got) != 0 {
		t.Fatalf("no files = %v, %v", got, err)
	}
	bad := []struct{ body, want string }{
		{"id: x\n", "as_token"},
		{strings.Replace(goodAS, "regex: \"@bridge_.*:hs1\"", "regex: \"(\"", 1), "namespaces.users[0].regex"},
		{strings.Replace(goodAS, "hs_token: bbb", "hs_token: aaa", 1), "must differ"},
		{"{{{", "invalid YAML"},
	}
	for _, tc := range bad {
		if _, err := ParseAppService([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAppService(%q) = %v, want an error naming %q", tc.body, err, tc.want)
		}
	}
	write("b.yaml", strings.Replace(goodAS, "id: bridge", "id: other", 1))
	if _, err := LoadAppServices([]string{filepath.Join(dir, "*.yaml")}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("shared tokens = %v, want an error", err)
	}
}
