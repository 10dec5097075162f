package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/axon-hs/axon/matrix"
)

// fakeDNS answers from maps. A name that is not in a map is "not found".
type fakeDNS struct {
	mu     sync.Mutex
	srv    map[string][]*net.SRV // "_matrix-fed._tcp.example.org"
	srvErr map[string]error
	hosts  map[string][]string
}

func (d *fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.srvErr[key]; err != nil {
		return "", nil, err
	}
	recs, ok := d.srv[key]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
	}
	return key + ".", recs, nil
}

func (d *fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ips, ok := d.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ips, nil
}

type wkAnswer struct {
	delegated string
	cacheFor  time.Duration
	err       error
}

// errNotFound is the well-known answer of a host without delegation.
var errNotFound = fmt.Errorf("%w: status 404", ErrInvalidWellKnown)

// errRefused is a well-known fetch that got no response.
var errRefused = errors.New("dial tcp: connection refused")

// fakeWellKnown answers from a map; a host not in it answers 404.
type fakeWellKnown struct {
	mu      sync.Mutex
	answers map[string]wkAnswer
	calls   map[string]int
}

func (f *fakeWellKnown) FetchWellKnown(_ context.Context, host string) (string, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[host]++
	a, ok := f.answers[host]
	if !ok {
		return "", 0, errNotFound
	}
	return a.delegated, a.cacheFor, a.err
}

func (f *fakeWellKnown) set(host string, a wkAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[string]wkAnswer{}
	}
	f.answers[host] = a
}

func (f *fakeWellKnown) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[host]
}

func srv(target string, port, priority, weight uint16) *net.SRV {
	return &net.SRV{Target: target, Port: port, Priority: priority, Weight: weight}
}

// hosts shared by the scenarios.
var testHosts = map[string][]string{
	"example.org":        {"203.0.113.1", "2001:db8::1"},
	"matrix.example.org": {"203.0.113.2"},
	"fed.example.net.":   {"203.0.113.3"},
	"fed2.example.net.":  {"203.0.113.4"},
	"old.example.net.":   {"203.0.113.5"},
	"1.2.3.999":          {"203.0.113.6"},
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		server    matrix.ServerName
		wellKnown map[string]wkAnswer
		srv       map[string][]*net.SRV
		srvErr    map[string]error
		want      []Result
		wantErr   string
		noFetch   bool // the well-known must not be requested
	}{
		// Step 1.
		{name: "1 IPv4 literal", server: "203.0.113.9", noFetch: true,
			want: []Result{{Addrs: []string{"203.0.113.9:8448"}, Host: "203.0.113.9", TLSServerName: "203.0.113.9"}}},
		{name: "1 IPv4 literal with port", server: "203.0.113.9:1234", noFetch: true,
			want: []Result{{Addrs: []string{"203.0.113.9:1234"}, Host: "203.0.113.9:1234", TLSServerName: "203.0.113.9"}}},
		{name: "1 IPv6 literal", server: "[2001:db8::9]", noFetch: true,
			want: []Result{{Addrs: []string{"[2001:db8::9]:8448"}, Host: "[2001:db8::9]", TLSServerName: "2001:db8::9"}}},
		{name: "1 IPv6 literal with port", server: "[2001:db8::9]:1234", noFetch: true,
			want: []Result{{Addrs: []string{"[2001:db8::9]:1234"}, Host: "[2001:db8::9]:1234", TLSServerName: "2001:db8::9"}}},
		// Step 2.
		{name: "2 hostname with port ignores well-known and SRV", server: "example.org:1234", noFetch: true,
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org"}},
			srv:       map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("fed.example.net.", 8000, 10, 0)}},
			want:      []Result{{Addrs: []string{"203.0.113.1:1234", "[2001:db8::1]:1234"}, Host: "example.org:1234", TLSServerName: "example.org"}}},
		{name: "2 hostname with port that does not resolve", server: "nowhere.example:1234", noFetch: true, wantErr: "look up host nowhere.example"},
		// Step 3.
		{name: "3.1 delegated IPv4 literal", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "203.0.113.7"}},
			want:      []Result{{Addrs: []string{"203.0.113.7:8448"}, Host: "203.0.113.7", TLSServerName: "203.0.113.7"}}},
		{name: "3.1 delegated IPv4 literal with port", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "203.0.113.7:9000"}},
			want:      []Result{{Addrs: []string{"203.0.113.7:9000"}, Host: "203.0.113.7:9000", TLSServerName: "203.0.113.7"}}},
		{name: "3.1 delegated IPv6 literal with port", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "[2001:db8::7]:9000"}},
			want:      []Result{{Addrs: []string{"[2001:db8::7]:9000"}, Host: "[2001:db8::7]:9000", TLSServerName: "2001:db8::7"}}},
		{name: "3.2 delegated hostname with port ignores its SRV", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org:9000"}},
			srv:       map[string][]*net.SRV{"_matrix-fed._tcp.matrix.example.org": {srv("fed.example.net.", 8000, 10, 0)}},
			want:      []Result{{Addrs: []string{"203.0.113.2:9000"}, Host: "matrix.example.org:9000", TLSServerName: "matrix.example.org"}}},
		{name: "3.2 delegated hostname with port that does not resolve", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "nowhere.example:9000"}},
			wantErr:   "delegated to nowhere.example:9000"},
		{name: "3.3 delegated hostname with _matrix-fed SRV", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org"}},
			srv: map[string][]*net.SRV{
				"_matrix-fed._tcp.matrix.example.org": {srv("fed.example.net.", 8000, 10, 0)},
				"_matrix._tcp.matrix.example.org":     {srv("old.example.net.", 8001, 10, 0)},
				"_matrix-fed._tcp.example.org":        {srv("fed2.example.net.", 8002, 10, 0)},
			},
			want: []Result{{Addrs: []string{"203.0.113.3:8000"}, Host: "matrix.example.org", TLSServerName: "matrix.example.org"}}},
		{name: "3.4 delegated hostname with deprecated _matrix SRV", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org"}},
			srv:       map[string][]*net.SRV{"_matrix._tcp.matrix.example.org": {srv("old.example.net.", 8001, 10, 0)}},
			want:      []Result{{Addrs: []string{"203.0.113.5:8001"}, Host: "matrix.example.org", TLSServerName: "matrix.example.org"}}},
		{name: "3.5 delegated hostname without SRV", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org"}},
			srv:       map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("fed2.example.net.", 8002, 10, 0)}},
			want:      []Result{{Addrs: []string{"203.0.113.2:8448"}, Host: "matrix.example.org", TLSServerName: "matrix.example.org"}}},
		{name: "3 delegation to itself", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "example.org"}},
			want:      []Result{{Addrs: []string{"203.0.113.1:8448", "[2001:db8::1]:8448"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "3 invalid m.server falls back to step 4", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "bad name!"}},
			srv:       map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("fed.example.net.", 8000, 10, 0)}},
			want:      []Result{{Addrs: []string{"203.0.113.3:8000"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "3 m.server port out of range falls back", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {delegated: "matrix.example.org:99999"}},
			want:      []Result{{Addrs: []string{"203.0.113.1:8448", "[2001:db8::1]:8448"}, Host: "example.org", TLSServerName: "example.org"}}},
		// Steps 4 to 6.
		{name: "4 _matrix-fed SRV on hostname", server: "example.org",
			srv: map[string][]*net.SRV{
				"_matrix-fed._tcp.example.org": {srv("fed.example.net.", 8000, 10, 0)},
				"_matrix._tcp.example.org":     {srv("old.example.net.", 8001, 10, 0)},
			},
			want: []Result{{Addrs: []string{"203.0.113.3:8000"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "5 deprecated _matrix SRV on hostname", server: "example.org",
			srv:  map[string][]*net.SRV{"_matrix._tcp.example.org": {srv("old.example.net.", 8001, 10, 0)}},
			want: []Result{{Addrs: []string{"203.0.113.5:8001"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "6 hostname on 8448", server: "example.org",
			want: []Result{{Addrs: []string{"203.0.113.1:8448", "[2001:db8::1]:8448"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "6 after a failed well-known fetch", server: "example.org",
			wellKnown: map[string]wkAnswer{"example.org": {err: errRefused}},
			want:      []Result{{Addrs: []string{"203.0.113.1:8448", "[2001:db8::1]:8448"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "6 hostname that does not resolve", server: "nowhere.example", wantErr: "look up host nowhere.example"},
		{name: "1.2.3.999 is a hostname", server: "1.2.3.999",
			want: []Result{{Addrs: []string{"203.0.113.6:8448"}, Host: "1.2.3.999", TLSServerName: "1.2.3.999"}}},
		// SRV details.
		{name: "SRV records by priority", server: "example.org",
			srv: map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("fed2.example.net.", 8002, 20, 0), srv("fed.example.net.", 8000, 10, 0)}},
			want: []Result{
				{Addrs: []string{"203.0.113.3:8000"}, Host: "example.org", TLSServerName: "example.org"},
				{Addrs: []string{"203.0.113.4:8002"}, Host: "example.org", TLSServerName: "example.org"},
			}},
		{name: "SRV target . means not offered", server: "example.org",
			srv: map[string][]*net.SRV{
				"_matrix-fed._tcp.example.org": {srv(".", 0, 0, 0)},
				"_matrix._tcp.example.org":     {srv("old.example.net.", 8001, 10, 0)},
			},
			want: []Result{{Addrs: []string{"203.0.113.5:8001"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "SRV with no records is not found", server: "example.org",
			srv:  map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {}},
			want: []Result{{Addrs: []string{"203.0.113.1:8448", "[2001:db8::1]:8448"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "SRV target that does not resolve is skipped", server: "example.org",
			srv:  map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("gone.example.net.", 8009, 5, 0), srv("fed.example.net.", 8000, 10, 0)}},
			want: []Result{{Addrs: []string{"203.0.113.3:8000"}, Host: "example.org", TLSServerName: "example.org"}}},
		{name: "SRV whose targets all fail does not fall back", server: "example.org",
			srv:     map[string][]*net.SRV{"_matrix-fed._tcp.example.org": {srv("gone.example.net.", 8009, 5, 0)}},
			wantErr: "no target resolves"},
		{name: "SRV lookup failure other than not found", server: "example.org",
			srvErr:  map[string]error{"_matrix-fed._tcp.example.org": &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}},
			wantErr: "server misbehaving"},
		// Invalid input.
		{name: "invalid server name", server: "exa mple.org", noFetch: true, wantErr: "invalid identifier"},
		{name: "empty server name", server: "", noFetch: true, wantErr: "invalid identifier"},
		{name: "port out of range", server: "example.org:70000", noFetch: true, wantErr: "out of range"},
		{name: "port zero", server: "203.0.113.9:0", noFetch: true, wantErr: "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dns := &fakeDNS{srv: tc.srv, srvErr: tc.srvErr, hosts: testHosts}
			wk := &fakeWellKnown{answers: tc.wellKnown}
			r := &Resolver{DNS: dns, WellKnown: wk}
			got, err := r.Resolve(t.Context(), tc.server)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want error containing %q", tc.server, got, err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.server, err)
			} else if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Resolve(%q) =\n%+v\nwant\n%+v", tc.server, got, tc.want)
			}
			host, _, _ := tc.server.HostPort()
			if n := wk.count(host); tc.noFetch && n != 0 {
				t.Errorf("well-known of %s fetched %d times, want none", host, n)
			} else if !tc.noFetch && n != 1 {
				t.Errorf("well-known of %s fetched %d times, want once", host, n)
			}
		})
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newCachingResolver(wk WellKnownFetcher) (*Resolver, *fakeClock) {
	clock := &fakeClock{now: t0}
	dns := &fakeDNS{hosts: testHosts}
	return &Resolver{DNS: dns, WellKnown: wk, Now: clock.Now}, clock
}

func TestWellKnownCacheLifetime(t *testing.T) {
	tests := []struct {
		name string
		ans  wkAnswer
		want time.Duration
	}{
		{"valid without headers: 24h default", wkAnswer{delegated: "matrix.example.org"}, 24 * time.Hour},
		{"valid with max-age 1h", wkAnswer{delegated: "matrix.example.org", cacheFor: time.Hour}, time.Hour},
		{"valid with 100h: capped at 48h", wkAnswer{delegated: "matrix.example.org", cacheFor: 100 * time.Hour}, 48 * time.Hour},
		{"valid with 1 min: raised to 5 min", wkAnswer{delegated: "matrix.example.org", cacheFor: time.Minute}, 5 * time.Minute},
		{"valid with no-store: 5 min", wkAnswer{delegated: "matrix.example.org", cacheFor: -1}, 5 * time.Minute},
		{"404 without headers: 1h", wkAnswer{err: errNotFound}, time.Hour},
		{"404 with max-age 10 min", wkAnswer{err: errNotFound, cacheFor: 10 * time.Minute}, 10 * time.Minute},
		{"404 with max-age 5h: capped at 1h", wkAnswer{err: errNotFound, cacheFor: 5 * time.Hour}, time.Hour},
		{"invalid m.server: 1h", wkAnswer{delegated: "not valid!"}, time.Hour},
		{"no response: first backoff 2 min", wkAnswer{err: errRefused, cacheFor: 10 * time.Hour}, 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wk := &fakeWellKnown{}
			wk.set("example.org", tc.ans)
			r, clock := newCachingResolver(wk)
			resolveOK(t, r, "example.org")
			clock.Set(t0.Add(tc.want - time.Second))
			resolveOK(t, r, "example.org")
			if n := wk.count("example.org"); n != 1 {
				t.Fatalf("fetched %d times before the entry expired, want 1", n)
			}
			clock.Set(t0.Add(tc.want))
			resolveOK(t, r, "example.org")
			if n := wk.count("example.org"); n != 2 {
				t.Fatalf("fetched %d times once the entry expired, want 2", n)
			}
		})
	}
}

func resolveOK(t *testing.T, r *Resolver, name matrix.ServerName) []Result {
	t.Helper()
	res, err := r.Resolve(t.Context(), name)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", name, err)
	}
	return res
}

func TestWellKnownBackoff(t *testing.T) {
	wk := &fakeWellKnown{}
	wk.set("example.org", wkAnswer{err: errRefused})
	r, clock := newCachingResolver(wk)
	now := t0
	for i, want := range []time.Duration{2, 4, 8, 16, 32, 60, 60} {
		want *= time.Minute
		clock.Set(now)
		resolveOK(t, r, "example.org")
		if n := wk.count("example.org"); n != i+1 {
			t.Fatalf("failure %d: %d fetches, want %d", i+1, n, i+1)
		}
		clock.Set(now.Add(want - time.Second))
		resolveOK(t, r, "example.org")
		if n := wk.count("example.org"); n != i+1 {
			t.Fatalf("failure %d: refetched before %v", i+1, want)
		}
		now = now.Add(want)
	}
	// A response, even a 404, ends the backoff.
	wk.set("example.org", wkAnswer{err: errNotFound})
	clock.Set(now)
	resolveOK(t, r, "example.org")
	wk.set("example.org", wkAnswer{err: errRefused})
	now = now.Add(time.Hour)
	clock.Set(now)
	resolveOK(t, r, "example.org")
	clock.Set(now.Add(2 * time.Minute))
	resolveOK(t, r, "example.org")
	if n := wk.count("example.org"); n != 10 {
		t.Fatalf("after reset: %d fetches, want 10 (backoff back to 2 min)", n)
	}
}

func TestStaleDelegationKeptThroughOutage(t *testing.T) {
	wk := &fakeWellKnown{}
	wk.set("example.org", wkAnswer{delegated: "matrix.example.org:9000", cacheFor: time.Hour})
	r, clock := newCachingResolver(wk)
	delegated := "matrix.example.org:9000"

	check := func(at time.Duration, wantHost string) {
		t.Helper()
		clock.Set(t0.Add(at))
		res := resolveOK(t, r, "example.org")
		if res[0].Host != wantHost {
			t.Fatalf("at %v: Host %q, want %q", at, res[0].Host, wantHost)
		}
	}
	check(0, delegated)
	// The web server goes away: the delegation outlives its expiry by up
	// to StaleDelegationGrace.
	wk.set("example.org", wkAnswer{err: errRefused})
	check(time.Hour, delegated)
	check(time.Hour+2*time.Minute, delegated)
	check(time.Hour+59*time.Minute, delegated)
	check(2*time.Hour+10*time.Minute, "example.org")
	// A definite answer drops a delegation at once.
	wk.set("example.org", wkAnswer{delegated: delegated, cacheFor: time.Hour})
	check(3*time.Hour, delegated)
	wk.set("example.org", wkAnswer{err: errNotFound})
	check(4*time.Hour, "example.org")
}

// blockingWellKnown blocks every fetch until release is closed.
type blockingWellKnown struct {
	release chan struct{}
	fakeWellKnown
}

func (b *blockingWellKnown) FetchWellKnown(ctx context.Context, host string) (string, time.Duration, error) {
	<-b.release
	return b.fakeWellKnown.FetchWellKnown(ctx, host)
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("condition not met after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

func waiters(r *Resolver, host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.inflight[host]; c != nil {
		return c.waiters
	}
	return 0
}

func TestConcurrentResolvesShareOneFetch(t *testing.T) {
	wk := &blockingWellKnown{release: make(chan struct{})}
	wk.set("example.org", wkAnswer{delegated: "matrix.example.org:9000"})
	r, _ := newCachingResolver(wk)
	const n = 8
	results := make(chan error, n)
	for range n {
		go func() {
			res, err := r.Resolve(t.Context(), "example.org")
			if err == nil && res[0].Host != "matrix.example.org:9000" {
				err = fmt.Errorf("Host %q", res[0].Host)
			}
			results <- err
		}()
	}
	waitFor(t, 5*time.Second, func() error {
		if w := waiters(r, "example.org"); w != n {
			return fmt.Errorf("%d waiters", w)
		}
		return nil
	})
	close(wk.release)
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if c := wk.count("example.org"); c != 1 {
		t.Fatalf("%d fetches, want 1", c)
	}
}

func TestCancelledCallerDoesNotSpoilCache(t *testing.T) {
	wk := &blockingWellKnown{release: make(chan struct{})}
	wk.set("example.org", wkAnswer{delegated: "matrix.example.org:9000"})
	r, _ := newCachingResolver(wk)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, "example.org")
		done <- err
	}()
	waitFor(t, 5*time.Second, func() error {
		if waiters(r, "example.org") != 1 {
			return errors.New("fetch not started")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with cancelled ctx = %v, want context.Canceled", err)
	}
	// The shared fetch goes on and its answer is cached.
	close(wk.release)
	waitFor(t, 5*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.cache["example.org"] == nil {
			return errors.New("not cached yet")
		}
		return nil
	})
	res := resolveOK(t, r, "example.org")
	if res[0].Host != "matrix.example.org:9000" || wk.count("example.org") != 1 {
		t.Fatalf("after cancel: Host %q, %d fetches", res[0].Host, wk.count("example.org"))
	}
}

func TestEvict(t *testing.T) {
	r := &Resolver{cache: map[string]*wellKnownEntry{
		"expired.example": {expires: t0.Add(-time.Second)},
		"fresh.example":   {expires: t0.Add(time.Second)},
		"stale-good.example": {expires: t0.Add(-time.Second), lastGood: "x.example",
			lastGoodExpires: t0.Add(-time.Minute)},
	}}
	r.evict(t0)
	if _, ok := r.cache["expired.example"]; ok {
		t.Error("expired entry kept")
	}
	if _, ok := r.cache["fresh.example"]; !ok {
		t.Error("fresh entry dropped")
	}
	if _, ok := r.cache["stale-good.example"]; !ok {
		t.Error("entry within the stale grace dropped")
	}
}

func TestDefaultResolverIPLiteral(t *testing.T) {
	// The zero Resolver works, and an IP literal needs neither DNS nor HTTP.
	var r Resolver
	res, err := r.Resolve(t.Context(), "127.0.0.1:8448")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Addrs[0] != "127.0.0.1:8448" {
		t.Fatalf("Resolve = %+v", res)
	}
}

// BenchmarkResolveCached measures resolution when the well-known answer is
// cached, the common case: the cost beyond the DNS lookups themselves.
func BenchmarkResolveCached(b *testing.B) {
	wk := &fakeWellKnown{}
	wk.set("example.org", wkAnswer{delegated: "matrix.example.org"})
	r := &Resolver{DNS: &fakeDNS{hosts: testHosts, srv: map[string][]*net.SRV{
		"_matrix-fed._tcp.matrix.example.org": {srv("fed.example.net.", 8000, 10, 5), srv("fed2.example.net.", 8000, 10, 5)},
	}}, WellKnown: wk}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(ctx, "example.org"); err != nil {
			b.Fatal(err)
		}
	}
}
