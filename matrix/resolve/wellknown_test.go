package resolve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/axon-hs/axon/matrix"
)

// newTLSWellKnown starts an HTTPS server with h and returns a fetcher whose
// client trusts the server's certificate (valid for example.com and
// *.example.com) and connects to it whatever host it is asked for.
func newTLSWellKnown(t *testing.T, h http.Handler) *HTTPWellKnown {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &HTTPWellKnown{Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func TestHTTPWellKnown(t *testing.T) {
	const path = "/.well-known/matrix/server"
	mux := http.NewServeMux()
	reply := func(p, body string, status int, hdr ...string) {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
	}
	redirect := func(p, to string) {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) })
	}
	// One virtual host per case: the fetcher always asks for path.
	type tcase struct {
		name         string
		host         string
		wantServer   string
		wantCacheFor time.Duration
		wantInvalid  bool // error wrapping ErrInvalidWellKnown
		wantMsg      string
	}
	var tests []tcase
	add := func(tc tcase) { tests = append(tests, tc) }

	reply("valid.example.com"+path, `{"m.server": "matrix.example.com:443", "other": true}`, 200,
		"Content-Type", "text/plain", "Cache-Control", "public, max-age=3600")
	add(tcase{name: "valid, any content type, max-age", host: "valid.example.com", wantServer: "matrix.example.com:443", wantCacheFor: time.Hour})

	reply("plain.example.com"+path, `{"m.server":"matrix.example.com"}`, 200)
	add(tcase{name: "no cache headers", host: "plain.example.com", wantServer: "matrix.example.com"})

	reply("nostore.example.com"+path, `{"m.server":"matrix.example.com"}`, 200, "Cache-Control", "no-store")
	add(tcase{name: "no-store", host: "nostore.example.com", wantServer: "matrix.example.com", wantCacheFor: -1})

	reply("404.example.com"+path, `{"errcode":"M_NOT_FOUND"}`, 404, "Cache-Control", "max-age=600")
	add(tcase{name: "404 keeps its cache lifetime", host: "404.example.com", wantInvalid: true, wantCacheFor: 10 * time.Minute, wantMsg: "status 404"})

	reply("500.example.com"+path, `{"m.server":"matrix.example.com"}`, 500)
	add(tcase{name: "500 with a valid body", host: "500.example.com", wantInvalid: true, wantMsg: "status 500"})

	reply("badjson.example.com"+path, `{"m.server":`, 200)
	add(tcase{name: "bad JSON", host: "badjson.example.com", wantInvalid: true})

	reply("array.example.com"+path, `["m.server"]`, 200)
	add(tcase{name: "not an object", host: "array.example.com", wantInvalid: true})

	reply("missing.example.com"+path, `{"M.SERVER":"matrix.example.com"}`, 200)
	add(tcase{name: "no m.server (keys are case-sensitive)", host: "missing.example.com", wantInvalid: true, wantMsg: "no m.server"})

	reply("number.example.com"+path, `{"m.server":8448}`, 200)
	add(tcase{name: "m.server not a string", host: "number.example.com", wantInvalid: true, wantMsg: "not a string"})

	reply("badname.example.com"+path, `{"m.server":"https://matrix.example.com"}`, 200)
	add(tcase{name: "m.server not a server name", host: "badname.example.com", wantInvalid: true})

	reply("bigport.example.com"+path, `{"m.server":"matrix.example.com:99999"}`, 200)
	add(tcase{name: "m.server port out of range", host: "bigport.example.com", wantInvalid: true, wantMsg: "out of range"})

	body := `{"m.server":"matrix.example.com"}`
	reply("limit.example.com"+path, body+strings.Repeat(" ", MaxWellKnownBody-len(body)), 200)
	add(tcase{name: "body of exactly the limit", host: "limit.example.com", wantServer: "matrix.example.com"})

	reply("huge.example.com"+path, body+strings.Repeat(" ", MaxWellKnownBody-len(body)+1), 200)
	add(tcase{name: "body over the limit", host: "huge.example.com", wantInvalid: true, wantMsg: "body over"})

	redirect("redirect.example.com"+path, "https://target.example.com/delegation")
	reply("target.example.com/delegation", `{"m.server":"matrix.example.com:8443"}`, 200)
	add(tcase{name: "redirect followed", host: "redirect.example.com", wantServer: "matrix.example.com:8443"})

	redirect("loop.example.com"+path, "https://loop2.example.com/b")
	redirect("loop2.example.com/b", "https://loop.example.com"+path)
	add(tcase{name: "redirect loop", host: "loop.example.com", wantInvalid: true, wantMsg: "loop"})

	redirect("chain.example.com"+path, "/1")
	for i := 1; i <= DefaultMaxRedirects+1; i++ {
		redirect("chain.example.com/"+string(rune('0'+i)), "/"+string(rune('0'+i+1)))
	}
	add(tcase{name: "too many redirects", host: "chain.example.com", wantInvalid: true, wantMsg: "redirects"})

	redirect("http.example.com"+path, "http://plain.example.com"+path)
	add(tcase{name: "redirect to http", host: "http.example.com", wantInvalid: true, wantMsg: "non-https"})

	fetcher := newTLSWellKnown(t, mux)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cacheFor, err := fetcher.FetchWellKnown(t.Context(), tc.host)
			switch {
			case tc.wantInvalid:
				if !errors.Is(err, ErrInvalidWellKnown) {
					t.Fatalf("FetchWellKnown(%s) = %q, %v; want ErrInvalidWellKnown", tc.host, got, err)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("FetchWellKnown(%s) = %v, want it to mention %q", tc.host, err, tc.wantMsg)
				}
			case err != nil:
				t.Fatalf("FetchWellKnown(%s): %v", tc.host, err)
			case got != tc.wantServer:
				t.Errorf("FetchWellKnown(%s) = %q, want %q", tc.host, got, tc.wantServer)
			}
			if cacheFor != tc.wantCacheFor {
				t.Errorf("FetchWellKnown(%s) cacheFor = %v, want %v", tc.host, cacheFor, tc.wantCacheFor)
			}
		})
	}
}

// TestHTTPWellKnownNoResponse checks failures that are not invalid responses:
// they must not wrap ErrInvalidWellKnown, so the resolver backs off briefly
// instead of caching for an hour.
func TestHTTPWellKnownNoResponse(t *testing.T) {
	t.Run("connection refused, default client", func(t *testing.T) {
		// A port that was just free: the default client must fail at once
		// with the refusal, not wait for a timeout.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		var w HTTPWellKnown
		_, _, err = w.FetchWellKnown(t.Context(), addr)
		if err == nil || errors.Is(err, ErrInvalidWellKnown) {
			t.Fatalf("FetchWellKnown(%s) = %v, want a connection error", addr, err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("FetchWellKnown(%s) = %v, want ECONNREFUSED", addr, err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"m.server":"matrix.example.com"}`))
		}))
		defer srv.Close()
		var w HTTPWellKnown // system roots do not include httptest's CA
		_, _, err := w.FetchWellKnown(t.Context(), srv.Listener.Addr().String())
		if err == nil || errors.Is(err, ErrInvalidWellKnown) {
			t.Fatalf("FetchWellKnown = %v, want a TLS error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		fetcher := newTLSWellKnown(t, http.NotFoundHandler())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, err := fetcher.FetchWellKnown(ctx, "example.com")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("FetchWellKnown = %v, want context.Canceled", err)
		}
	})
}

// TestResolverWithHTTPWellKnown runs the whole chain: the resolver fetches
// the well-known over TLS and follows the delegation through SRV.
func TestResolverWithHTTPWellKnown(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("example.com/.well-known/matrix/server", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"m.server":"matrix.example.com"}`))
	})
	dns := &fakeDNS{
		srv:   map[string][]*net.SRV{"_matrix-fed._tcp.matrix.example.com": {srv("fed.example.net.", 8000, 10, 0)}},
		hosts: map[string][]string{"fed.example.net.": {"203.0.113.3"}, "other.example.com": {"203.0.113.8"}},
	}
	clock := &fakeClock{now: t0}
	r := &Resolver{DNS: dns, WellKnown: newTLSWellKnown(t, mux), Now: clock.Now}
	got := resolveOK(t, r, "example.com")
	want := Result{Addrs: []string{"203.0.113.3:8000"}, Host: "matrix.example.com", TLSServerName: "matrix.example.com"}
	if len(got) != 1 || got[0].Host != want.Host || got[0].TLSServerName != want.TLSServerName || got[0].Addrs[0] != want.Addrs[0] {
		t.Fatalf("Resolve = %+v, want [%+v]", got, want)
	}
	// No well-known at all: steps 4 to 6 on the hostname.
	got = resolveOK(t, r, "other.example.com")
	if got[0].Host != "other.example.com" || got[0].Addrs[0] != "203.0.113.8:8448" {
		t.Fatalf("Resolve(other.example.com) = %+v", got)
	}
}

func TestCacheLifetime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name string
		hdr  map[string]string
		want time.Duration
	}{
		{"nothing", nil, 0},
		{"max-age", map[string]string{"Cache-Control": "max-age=120"}, 2 * time.Minute},
		{"max-age quoted, mixed case", map[string]string{"Cache-Control": `Public, Max-Age="120"`}, 2 * time.Minute},
		{"max-age less Age", map[string]string{"Cache-Control": "max-age=120", "Age": "20"}, 100 * time.Second},
		{"max-age used up by Age", map[string]string{"Cache-Control": "max-age=120", "Age": "200"}, -1},
		{"max-age 0", map[string]string{"Cache-Control": "max-age=0"}, -1},
		{"max-age invalid", map[string]string{"Cache-Control": "max-age=soon"}, -1},
		{"max-age huge", map[string]string{"Cache-Control": "max-age=99999999999999999999"}, -1}, // overflows int64: invalid
		{"max-age very long", map[string]string{"Cache-Control": "max-age=9999999999"}, 365 * 24 * time.Hour},
		{"no-cache wins over max-age", map[string]string{"Cache-Control": "max-age=120, no-cache"}, -1},
		{"no-store", map[string]string{"Cache-Control": "no-store"}, -1},
		{"other directives only: Expires applies", map[string]string{"Cache-Control": "public", "Expires": date(time.Hour)}, time.Hour},
		{"max-age wins over Expires", map[string]string{"Cache-Control": "max-age=60", "Expires": date(time.Hour)}, time.Minute},
		{"Expires against Date", map[string]string{"Date": date(-time.Hour), "Expires": date(time.Hour)}, 2 * time.Hour},
		{"Expires in the past", map[string]string{"Expires": date(-time.Minute)}, -1},
		{"Expires 0", map[string]string{"Expires": "0"}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			if got := CacheLifetime(h, now); got != tc.want {
				t.Errorf("CacheLifetime(%v) = %v, want %v", tc.hdr, got, tc.want)
			}
		})
	}
}

func TestParseWellKnown(t *testing.T) {
	tests := []struct {
		in   string
		want matrix.ServerName // "" = error
	}{
		{`{"m.server":"example.org"}`, "example.org"},
		{`{"m.server":"example.org:8448","m.other":{}}`, "example.org:8448"},
		{`{"m.server":"[::1]:8448"}`, "[::1]:8448"},
		{` {"m.server" : "1.2.3.4"} `, "1.2.3.4"},
		{`{"m.server":"a.org","m.server":"b.org"}`, "b.org"},
		{`{}`, ""},
		{`null`, ""},
		{`"example.org"`, ""},
		{`{"m.server":null}`, ""},
		{`{"m.server":""}`, ""},
		{`{"m.server":"example.org:0"}`, ""},
		{`{"m.server":"example.org/path"}`, ""},
		{`{"m.server":"example.org"} trailing`, ""},
		{``, ""},
	}
	for _, tc := range tests {
		got, err := ParseWellKnown([]byte(tc.in))
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrInvalidWellKnown) {
				t.Errorf("ParseWellKnown(%s) = %q, %v; want ErrInvalidWellKnown", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseWellKnown(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseWellKnown(f *testing.F) {
	for _, s := range []string{
		`{"m.server":"example.org"}`,
		`{"m.server":"[2001:db8::1]:8448"}`,
		`{"m.server":"example.org:99999"}`,
		`{"m.server":8448}`,
		`{"m.server":"\u0065xample.org"}`,
		`[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := ParseWellKnown(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidWellKnown) {
				t.Fatalf("ParseWellKnown(%q) = %v, does not wrap ErrInvalidWellKnown", body, err)
			}
			return
		}
		if _, err := matrix.ParseServerName(string(name)); err != nil {
			t.Fatalf("ParseWellKnown(%q) = %q, not a server name: %v", body, name, err)
		}
		if _, port, ok := name.HostPort(); ok && (port < 1 || port > 65535) {
			t.Fatalf("ParseWellKnown(%q) = %q, port out of range", body, name)
		}
	})
}
