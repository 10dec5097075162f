package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistrationTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "registration:\n  requires_token: true\n  guests: true\n  login_tokens: true\n  tokens:\n    - token: once\n      uses_allowed: 1\n      expires_at: 2030-01-02T03:04:05Z\n    - token: free\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", file}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Registration
	if !r.RequiresToken || !r.Guests || !r.LoginTokens || len(r.Tokens) != 2 || r.Tokens[0].UsesAllowed != 1 ||
		!r.Tokens[0].ExpiresAt.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) || !r.Tokens[1].ExpiresAt.IsZero() {
		t.Fatalf("registration = %+v", r)
	}

	c, err = Load(nil, envOf(map[string]string{"AXON_REGISTRATION_TOKENS": "a1, b2", "AXON_GUEST_ACCESS": "true", "AXON_LOGIN_TOKENS": "1"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Registration; !r.RequiresToken || len(r.Tokens) != 2 || r.Tokens[1].Token != "b2" || !r.Guests || !r.LoginTokens {
		t.Fatalf("registration from env = %+v", r)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"registration:\n  requires_token: true\n", "registration.tokens"},
		{"registration:\n  tokens:\n    - token: 'has space'\n", "registration.tokens[0].token"},
		{"registration:\n  tokens:\n    - token: a\n    - token: a\n", "registration.tokens[1].token"},
		{"registration:\n  tokens:\n    - token: a\n      uses_allowed: -1\n", "registration.tokens[0].uses_allowed"},
		{"registration:\n  tokens:\n    - token: " + strings.Repeat("x", 65) + "\n", "registration.tokens[0].token"},
	} {
		if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load([]string{"--config", file}, envOf(nil), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) = %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}
