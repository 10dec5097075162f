package httputil

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
)

func newTestHandler(t *testing.T) (http.Handler, *strings.Builder) {
	logs := &strings.Builder{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	a := Adapter{Log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo/{id}", a.H(func(w http.ResponseWriter, r *http.Request) error {
		var v struct {
			N int `json:"n"`
		}
		if err := DecodeJSON(r, &v); err != nil {
			return err
		}
		return JSON(w, map[string]any{"id": r.PathValue("id"), "n": v.N})
	}))
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /fail", a.H(func(http.ResponseWriter, *http.Request) error { return io.ErrUnexpectedEOF }))
	return Wrap(mux, ServerOptions{Log: log, MaxBody: 64, CORS: true}), logs
}

func TestWrap(t *testing.T) {
	h, logs := newTestHandler(t)
	cases := []struct {
		name, method, path, body string
		status                   int
		errcode                  string
	}{
		{"ok", "POST", "/echo/a", `{"n":1}`, 200, ""},
		{"escaped slash survives routing", "POST", "/echo/%21a%2Fb%3Ac", `{}`, 200, ""},
		{"not json", "POST", "/echo/a", `{`, 400, apierr.CodeNotJSON},
		{"bad json", "POST", "/echo/a", `{"n":"x"}`, 400, apierr.CodeBadJSON},
		{"too large", "POST", "/echo/a", `{"n":1,"pad":"` + strings.Repeat("x", 100) + `"}`, 413, apierr.CodeTooLarge},
		{"unknown", "GET", "/nothing", ``, 404, apierr.CodeUnrecognized},
		{"wrong method", "GET", "/echo/a", ``, 405, apierr.CodeUnrecognized},
		{"panic", "GET", "/panic", ``, 500, apierr.CodeUnknown},
		{"server error", "GET", "/fail", ``, 500, apierr.CodeUnknown},
		{"double slash", "GET", "//echo", ``, 404, apierr.CodeUnrecognized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			}
			if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("no CORS header")
			}
			var e apierr.Error
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if e.Code != tc.errcode {
				t.Fatalf("errcode = %q, want %q (%s)", e.Code, tc.errcode, rec.Body)
			}
			if tc.errcode == "" && tc.name == "escaped slash survives routing" && !strings.Contains(rec.Body.String(), `"!a/b:c"`) {
				t.Fatalf("path value = %s", rec.Body)
			}
		})
	}
	if !strings.Contains(logs.String(), "panic serving request") || !strings.Contains(logs.String(), "unexpected EOF") {
		t.Fatalf("server faults were not logged: %s", logs)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("OPTIONS", "/echo/a", nil))
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("OPTIONS = %d %v", rec.Code, rec.Header())
	}
}

func TestAccessToken(t *testing.T) {
	cases := []struct {
		header, query, want string
		errcode             string
	}{
		{"Bearer abc", "", "abc", ""},
		{"bearer abc", "", "abc", ""},
		{"", "abc", "abc", ""},
		{"", "", "", apierr.CodeMissingToken},
		{"Basic xyz", "", "", apierr.CodeMissingToken},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/?access_token="+tc.query, nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got, err := AccessToken(r)
		if got != tc.want || (tc.errcode != "" && !apierr.HasCode(err, tc.errcode)) || (tc.errcode == "" && err != nil) {
			t.Errorf("AccessToken(%q, %q) = %q, %v", tc.header, tc.query, got, err)
		}
	}
}

// FuzzUnmarshal: request decoding never panics and always answers with a
// Matrix error when it fails.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `[`, `null`, `{"n":"x"}`, "\xff", `{"n":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v struct {
			N int               `json:"n"`
			S string            `json:"s"`
			M map[string]string `json:"m"`
		}
		if err := Unmarshal(data, &v); err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("Unmarshal(%q) = %v, not a Matrix error", data, err)
			}
		}
	})
}
