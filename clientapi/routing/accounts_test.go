package routing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/config"
	"github.com/axon-hs/axon/internal/httputil"
)

// FuzzAccountRequestBodies decodes arbitrary bodies into the accounts
// area's request types (registration with a token, m.login.token,
// get_token): every failure must be M_NOT_JSON or M_BAD_JSON.
func FuzzAccountRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"auth":{"type":"m.login.registration_token","token":"abc","session":"s"},"username":"a"}`,
		`{"type":"m.login.token","token":"axl_x"}`, `{"auth":{"type":"m.login.password","password":"p","identifier":{"type":"m.id.user","user":"a"}}}`,
		`{"auth":{"token":5}}`, `{"token":[]}`, `[`, `null`, `{"auth":null}`,
		`{"guest_access_token":"syt_x","username":"g","password":"p"}`, `{"guest_access_token":5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&registerRequest{}, &loginRequest{}, &getLoginTokenRequest{}} {
			err := httputil.Unmarshal(data, v)
			if err != nil && !apierr.HasCode(err, apierr.CodeNotJSON) && !apierr.HasCode(err, apierr.CodeBadJSON) {
				t.Fatalf("Unmarshal(%q) into %T = %v, want M_NOT_JSON or M_BAD_JSON", data, v, err)
			}
		}
	})
}

// FuzzRegistrationToken: the grammar check accepts exactly 1-64 characters
// of the opaque identifier alphabet, and lookup never panics.
func FuzzRegistrationToken(f *testing.F) {
	for _, s := range []string{"", "abc", "fBVFdqVE", "a b", strings.Repeat("x", 64), strings.Repeat("x", 65), "é", "a.b_c~d-e"} {
		f.Add(s)
	}
	rt := &Routes{cfg: Config{RegistrationTokens: []config.RegistrationToken{{Token: "abc"}, {Token: "old", ExpiresAt: time.Unix(1, 0)}}}, now: time.Now}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= 64
		for _, c := range []byte(s) {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-", rune(c)) {
				want = false
			}
		}
		if got := config.ValidRegistrationToken(s); got != want {
			t.Fatalf("ValidRegistrationToken(%q) = %v, want %v", s, got, want)
		}
		_, ok := rt.registrationToken(s)
		if ok != (s == "abc") {
			t.Fatalf("registrationToken(%q) ok = %v", s, ok)
		}
	})
}

// TestGuestRoute: mux patterns map to the guest list's keys whatever the
// version prefix.
func TestGuestRoute(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /_matrix/client/v3/rooms/{roomId}/state":       "GET /rooms/{roomId}/state",
		"POST /_matrix/client/v1/login/get_token":           "POST /login/get_token",
		"PUT /_matrix/client/r0/profile/{userId}/{keyName}": "PUT /profile/{userId}/{keyName}",
		"GET /_matrix/client/versions":                      "",
		"GET /_synapse/admin/v1/register":                   "",
		"":                                                  "",
	} {
		r := httptestRequest(pattern)
		if got := guestRoute(r); got != want {
			t.Errorf("guestRoute(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func httptestRequest(pattern string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Pattern = pattern
	return r
}

// TestIsCanJoin: only the exact string can_join lets guests join.
func TestIsCanJoin(t *testing.T) {
	for content, want := range map[string]bool{
		`{"guest_access":"can_join"}`: true, `{"guest_access":"forbidden"}`: false, `{}`: false,
		`{"guest_access":"Can_Join"}`: false, `{"guest_access":["can_join"]}`: false, `null`: false, `[`: false, ``: false,
	} {
		if got := isCanJoin([]byte(content)); got != want {
			t.Errorf("isCanJoin(%s) = %v, want %v", content, got, want)
		}
	}
}
