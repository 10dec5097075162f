package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/_matrix/client/versions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	t.Cleanup(ok.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errcode":"M_UNKNOWN"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	// hanging answers only when the client gives up, so the check must time
	// out on its own.
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hanging.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := closed.Listener.Addr().String()
	closed.Close()

	okAddr := ok.Listener.Addr().String()
	tests := []struct {
		name       string
		env        string
		args       []string
		want       int
		wantStderr string
	}{
		{name: "healthy", args: []string{"-addr", okAddr}, want: 0},
		{name: "healthy URL form", args: []string{"-addr", ok.URL + "/"}, want: 0},
		{name: "address from env", env: okAddr, want: 0},
		{name: "flag beats env", env: closedAddr, args: []string{"-addr", okAddr}, want: 0},
		{name: "error status", args: []string{"-addr", failing.Listener.Addr().String()}, want: 1, wantStderr: "503"},
		{name: "timeout", args: []string{"-addr", hanging.Listener.Addr().String()}, want: 1, wantStderr: "deadline exceeded"},
		{name: "connection refused", args: []string{"-addr", closedAddr}, want: 1, wantStderr: "GET http://" + closedAddr},
		{name: "env unreachable", env: closedAddr, want: 1, wantStderr: closedAddr},
		{name: "unknown flag", args: []string{"-bogus"}, want: 1, wantStderr: "flag provided but not defined"},
		{name: "extra argument", args: []string{"-addr", okAddr, "more"}, want: 1, wantStderr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AXON_HTTP_ADDR", tc.env)
			var stderr bytes.Buffer
			got := healthcheckTo(t.Context(), tc.args, &stderr)
			if got != tc.want {
				t.Errorf("healthcheck(%q) = %d, want %d (stderr %q)", tc.args, got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("healthcheck(%q) stderr = %q, want it to contain %q", tc.args, stderr.String(), tc.wantStderr)
			}
			if tc.want == 0 && stderr.Len() != 0 {
				t.Errorf("healthcheck(%q) wrote %q on success", tc.args, stderr.String())
			}
		})
	}
}

// TestRunHealthcheck checks the entry point the subcommand dispatcher calls.
func TestRunHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"versions":[]}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AXON_HTTP_ADDR", srv.Listener.Addr().String())
	if got := runHealthcheck(nil); got != 0 {
		t.Errorf("runHealthcheck(nil) = %d, want 0", got)
	}
}
