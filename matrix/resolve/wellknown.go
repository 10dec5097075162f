package resolve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/axon-hs/axon/matrix"
)

// Limits of HTTPWellKnown.
const (
	// MaxWellKnownBody is the largest body read; a delegation is a few
	// dozen bytes, and a peer must not make us buffer megabytes.
	MaxWellKnownBody = 50 << 10
	// DefaultMaxRedirects is how many 30x redirects are followed.
	DefaultMaxRedirects = 5
	// WellKnownTimeout bounds the whole fetch of the default client,
	// body included. Connecting and the TLS handshake get less each, so
	// that one slow step cannot use it all.
	WellKnownTimeout = 10 * time.Second
	dialTimeout      = 5 * time.Second
)

// HTTPWellKnown fetches https://<host>/.well-known/matrix/server. The zero
// value is ready to use and safe for concurrent use.
type HTTPWellKnown struct {
	// Client sends the requests; its CheckRedirect is replaced by our
	// redirect policy. nil means a client with WellKnownTimeout, short
	// connect and handshake timeouts, and the system's trusted roots.
	Client *http.Client
	// MaxRedirects is how many redirects to follow; 0 means
	// DefaultMaxRedirects.
	MaxRedirects int
	// Now is the clock used to read Expires headers; nil means time.Now.
	Now func() time.Time

	once sync.Once
	def  *http.Client
}

func (w *HTTPWellKnown) client() http.Client {
	base := w.Client
	if base == nil {
		w.once.Do(func() { w.def = newDefaultClient() })
		base = w.def
	}
	c := *base // a shallow copy shares the Transport and its connections
	c.CheckRedirect = w.checkRedirect
	return c
}

func newDefaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A refused connection fails at once; an unreachable host must not
	// hold resolution for the default 30 s before the 8448 fallback.
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = dialTimeout
	t.ResponseHeaderTimeout = dialTimeout
	t.MaxResponseHeaderBytes = 16 << 10
	return &http.Client{Transport: t, Timeout: WellKnownTimeout}
}

// checkRedirect follows 30x redirects as the spec asks ("30x redirects
// should be followed, however redirection loops should be avoided"), only to
// https URLs, and at most MaxRedirects times.
func (w *HTTPWellKnown) checkRedirect(req *http.Request, via []*http.Request) error {
	limit := w.MaxRedirects
	if limit <= 0 {
		limit = DefaultMaxRedirects
	}
	if len(via) > limit {
		return fmt.Errorf("%w: more than %d redirects", ErrInvalidWellKnown, limit)
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("%w: redirect to non-https URL %s", ErrInvalidWellKnown, req.URL.Redacted())
	}
	target := req.URL.String()
	for _, prev := range via {
		if prev.URL.String() == target {
			return fmt.Errorf("%w: redirect loop at %s", ErrInvalidWellKnown, req.URL.Redacted())
		}
	}
	return nil
}

// FetchWellKnown implements WellKnownFetcher. A non-200 status, a body over
// MaxWellKnownBody, a redirect loop or an invalid document wrap
// ErrInvalidWellKnown; failing to get a response does not. The body is
// parsed as JSON whatever its Content-Type, as the spec says.
func (w *HTTPWellKnown) FetchWellKnown(ctx context.Context, host string) (string, time.Duration, error) {
	u := url.URL{Scheme: "https", Host: host, Path: "/.well-known/matrix/server"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", 0, fmt.Errorf("fetch well-known of %s: %w", host, err)
	}
	req.Header.Set("Accept", "application/json")
	c := w.client()
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("fetch well-known of %s: %w", host, err)
	}
	defer resp.Body.Close()
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	cacheFor := CacheLifetime(resp.Header, now())
	if resp.StatusCode != http.StatusOK {
		return "", cacheFor, fmt.Errorf("fetch well-known of %s: %w: status %d", host, ErrInvalidWellKnown, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxWellKnownBody+1))
	if err != nil {
		return "", 0, fmt.Errorf("fetch well-known of %s: read body: %w", host, err)
	}
	if len(body) > MaxWellKnownBody {
		return "", cacheFor, fmt.Errorf("fetch well-known of %s: %w: body over %d bytes", host, ErrInvalidWellKnown, MaxWellKnownBody)
	}
	delegated, err := ParseWellKnown(body)
	if err != nil {
		return "", cacheFor, fmt.Errorf("fetch well-known of %s: %w", host, err)
	}
	return string(delegated), cacheFor, nil
}

// ParseWellKnown reads the m.server property of a /.well-known/matrix/server
// document: a JSON object whose "m.server" is a server name with optional
// port from 1 to 65535. Other properties are ignored. Errors wrap
// ErrInvalidWellKnown.
func ParseWellKnown(body []byte) (matrix.ServerName, error) {
	// A map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "M.SERVER" is not "m.server".
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidWellKnown, err)
	}
	raw, ok := doc["m.server"]
	if !ok {
		return "", fmt.Errorf("%w: no m.server", ErrInvalidWellKnown)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: m.server is not a string", ErrInvalidWellKnown)
	}
	return parseDelegation(s)
}

// parseDelegation checks an m.server value: the server name grammar, and a
// port a connection can use (the grammar allows five digits above 65535).
func parseDelegation(s string) (matrix.ServerName, error) {
	name, err := matrix.ParseServerName(s)
	if err != nil {
		return "", fmt.Errorf("%w: m.server: %v", ErrInvalidWellKnown, err)
	}
	if _, port, hasPort := name.HostPort(); hasPort && (port < 1 || port > 65535) {
		return "", fmt.Errorf("%w: m.server %q: port out of range", ErrInvalidWellKnown, s)
	}
	return name, nil
}

// CacheLifetime reads how long a response may be cached from its headers
// (RFC 9111): Cache-Control no-store or no-cache, or a max-age of 0, give
// -1; max-age=N gives N seconds less any Age; otherwise an Expires date
// gives its distance from the Date header (or now), -1 if past or invalid.
// Without any of them the result is 0, "no information".
func CacheLifetime(h http.Header, now time.Time) time.Duration {
	if cc := h.Values("Cache-Control"); len(cc) > 0 {
		maxAge, hasMaxAge := time.Duration(0), false
		for _, line := range cc {
			for _, d := range strings.Split(line, ",") {
				name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "no-store", "no-cache":
					return -1
				case "max-age":
					n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
					if err != nil {
						return -1 // RFC 9111 5.2.1.1: an invalid max-age is stale
					}
					maxAge, hasMaxAge = seconds(n), true
				}
			}
		}
		if hasMaxAge {
			if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
				maxAge -= seconds(age)
			}
			if maxAge <= 0 {
				return -1
			}
			return maxAge
		}
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return -1 // RFC 9111 5.3: an invalid date, such as "0", is in the past
		}
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		if d := t.Sub(base); d > 0 {
			return d
		}
		return -1
	}
	return 0
}

// seconds converts n seconds to a Duration without overflowing; anything
// beyond a year is a year, far above every cap the resolver applies.
func seconds(n int64) time.Duration {
	const year = 365 * 24 * 3600
	if n > year {
		n = year
	}
	return time.Duration(n) * time.Second
}

var _ WellKnownFetcher = (*HTTPWellKnown)(nil)
