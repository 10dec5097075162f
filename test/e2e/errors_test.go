package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrors checks every error case of the foundation: each answer is the
// spec's status with a {"errcode","error"} body, and no bad input makes a
// route panic (the recover middleware would log it).
func TestErrors(t *testing.T) {
	s := startMonolith(t, "")
	reg := registerShared(t, s, "carol", "secret", false)
	tok := reg.AccessToken
	v3 := s.URL + "/_matrix/client/v3"
	big := `{"body":"` + strings.Repeat("x", 2<<20) + `"}`

	cases := []struct {
		name, method, url, token, body string
		status                         int
		errcode                        string
	}{
		{"malformed json", "POST", v3 + "/login", "", `{"type":`, 400, "M_NOT_JSON"},
		{"malformed json createRoom", "POST", v3 + "/createRoom", tok, `not json`, 400, "M_NOT_JSON"},
		{"wrong shape", "POST", v3 + "/login", "", `{"type": 5}`, 400, "M_BAD_JSON"},
		{"wrong shape top level", "POST", v3 + "/createRoom", tok, `[1,2]`, 400, "M_BAD_JSON"},
		{"wrong shape send", "PUT", v3 + "/rooms/!a:e2e.test/send/m.room.message/t1", tok, `"a string"`, 400, "M_BAD_JSON"},
		{"unknown endpoint", "GET", v3 + "/no/such/thing", "", ``, 404, "M_UNRECOGNIZED"},
		{"unknown prefix", "GET", s.URL + "/whatever", "", ``, 404, "M_UNRECOGNIZED"},
		{"wrong method", "DELETE", v3 + "/login", "", ``, 405, "M_UNRECOGNIZED"},
		{"wrong method createRoom", "GET", v3 + "/createRoom", tok, ``, 405, "M_UNRECOGNIZED"},
		{"missing token", "GET", v3 + "/account/whoami", "", ``, 401, "M_MISSING_TOKEN"},
		{"missing token sync", "GET", v3 + "/sync", "", ``, 401, "M_MISSING_TOKEN"},
		{"unknown token", "GET", v3 + "/account/whoami", "nonsense", ``, 401, "M_UNKNOWN_TOKEN"},
		{"unknown token sync", "GET", v3 + "/sync", "nonsense", ``, 401, "M_UNKNOWN_TOKEN"},
		{"too large", "POST", v3 + "/createRoom", tok, big, 413, "M_TOO_LARGE"},
		{"too large send", "PUT", v3 + "/rooms/!a:e2e.test/send/m.room.message/t2", tok, big, 413, "M_TOO_LARGE"},
		{"bad room id", "PUT", v3 + "/rooms/nonsense/send/m.room.message/t3", tok, `{}`, 400, "M_INVALID_PARAM"},
		{"bad since", "GET", v3 + "/sync?since=garbage", tok, ``, 400, "M_INVALID_PARAM"},
		{"unsupported room version", "POST", v3 + "/createRoom", tok, `{"room_version":"999"}`, 400, "M_UNSUPPORTED_ROOM_VERSION"},
		{"invalid username", "GET", v3 + "/register/available?username=Not%20Valid", "", ``, 400, "M_INVALID_USERNAME"},
		{"bad login type", "POST", v3 + "/login", "", `{"type":"m.login.magic"}`, 400, "M_UNKNOWN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := do(t, tc.method, tc.url, tc.token, []byte(tc.body))
			var e struct {
				Errcode string `json:"errcode"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Errcode != tc.errcode || e.Error == "" {
				t.Fatalf("%s %s = %d %.200s, want %d %s with an error message", tc.method, tc.url, status, body, tc.status, tc.errcode)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("missing CORS header")
			}
		})
	}

	// CORS preflight.
	status, _, hdr := do(t, http.MethodOptions, v3+"/createRoom", "", nil)
	if status != 200 || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("OPTIONS = %d %v", status, hdr)
	}

	// Garbage to every route: never a 500, never a panic.
	routes := []struct{ method, path string }{
		{"POST", "/register"}, {"GET", "/register/available?username="}, {"POST", "/login"}, {"GET", "/account/whoami"},
		{"POST", "/logout"}, {"POST", "/createRoom"}, {"PUT", "/rooms/%21x%3Ae2e.test/send/m.room.message/1"},
		{"GET", "/sync?timeout=-5"}, {"GET", "/sync?timeout=abc"}, {"GET", "/sync?filter=%7B"},
	}
	bodies := []string{``, `null`, `{}`, `[]`, `"s"`, `{"auth":{"type":5}}`, `{"auth":"x"}`, `{"username":{"a":1}}`,
		`{"identifier":[]}`, `{"initial_state":[{"type":1}]}`, `{"invite":["not a user"]}`, `{"preset":"nope"}`,
		`{"power_level_content_override":[]}`, `{"creation_content":"x"}`, `{"name":5}`, "\xff\xfe", `{"a":1e999}`}
	for _, rt := range routes {
		for _, b := range bodies {
			for _, token := range []string{"", tok} {
				status, body, _ := do(t, rt.method, v3+rt.path, token, []byte(b))
				if status >= 500 {
					t.Errorf("%s %s with %q = %d %s", rt.method, rt.path, b, status, body)
				}
			}
		}
	}
	status, body, _ := do(t, "POST", s.URL+"/_synapse/admin/v1/register", "", []byte(`{"nonce":"x","username":"u","mac":"zz"}`))
	if status != 403 {
		t.Errorf("bad mac = %d %s, want 403", status, body)
	}
	if log := s.procs["axon"].log(); strings.Contains(log, "panic serving request") {
		t.Fatalf("a route panicked on bad input:\n%s", log)
	}
}

// TestOps checks /metrics and /debug/pprof/ on the monolith.
func TestOps(t *testing.T) {
	s := startMonolith(t, "")
	do(t, "GET", s.URL+"/_matrix/client/versions", "", nil)
	checkOps(t, s)
	// Every consumer group of the monolith exports its lag (set when the
	// group starts, then every 10 s).
	waitFor(t, 10*time.Second, func() error {
		_, body, _ := do(t, "GET", s.OpsURLs[0]+"/metrics", "", nil)
		for _, group := range []string{"roomserver", "syncapi", "userapi_push", "userapi_receipts"} {
			if want := `group="` + group + `"`; !metricLine(string(body), "axon_eventlog_consumer_lag", want) {
				return fmt.Errorf("no axon_eventlog_consumer_lag for %s", want)
			}
		}
		return nil
	})
}

// metricLine reports whether the exposition text has a sample of name with
// a label matching label.
func metricLine(text, name, label string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			return true
		}
	}
	return false
}

func checkOps(t *testing.T, s *server) {
	t.Helper()
	for _, u := range s.OpsURLs {
		status, body, _ := do(t, "GET", u+"/metrics", "", nil)
		if status != 200 || !strings.Contains(string(body), "go_goroutines") || !strings.Contains(string(body), "axon_") {
			t.Errorf("%s/metrics = %d (%d bytes), want Go runtime and axon metrics", u, status, len(body))
		}
		status, body, _ = do(t, "GET", u+"/debug/pprof/", "", nil)
		if status != 200 || !strings.Contains(string(body), "goroutine") {
			t.Errorf("%s/debug/pprof/ = %d", u, status)
		}
	}
}

// TestRateLimit: with limits on, a client sending faster than its rate gets
// 429 M_LIMIT_EXCEEDED with retry_after_ms.
func TestRateLimit(t *testing.T) {
	s := startMonolithEnv(t, "")
	limited := 0
	for range 300 {
		status, body, hdr := do(t, "POST", s.URL+"/_matrix/client/v3/logout", "", nil)
		if status == 429 {
			var e struct {
				Errcode string `json:"errcode"`
				Retry   int64  `json:"retry_after_ms"`
			}
			if json.Unmarshal(body, &e) != nil || e.Errcode != "M_LIMIT_EXCEEDED" || e.Retry <= 0 || hdr.Get("Retry-After") == "" {
				t.Fatalf("429 = %s", body)
			}
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("300 requests at once were never limited")
	}
}
