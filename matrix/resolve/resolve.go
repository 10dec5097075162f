// Package resolve turns a Matrix server name into the addresses to connect
// to, the Host header to send and the name the TLS certificate must carry,
// following server-server API "Resolving server names" step by step: IP
// literals, explicit ports, /.well-known/matrix/server delegation, the
// _matrix-fed._tcp and deprecated _matrix._tcp SRV records, and port 8448.
//
// DNS and the well-known fetch sit behind small interfaces so that tests, and
// deployments with their own resolvers, supply them. HTTPWellKnown is the
// default fetcher. Well-known answers are cached by the Resolver with the
// lifetimes the spec recommends.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/axon-hs/axon/matrix"
)

// DefaultPort is the federation port used when nothing names another
// (IANA "matrix-fed").
const DefaultPort = 8448

// DNS is the part of *net.Resolver the resolver needs.
type DNS interface {
	// LookupSRV looks up _service._proto.name. A missing record must be
	// reported as a *net.DNSError with IsNotFound set, or as no records.
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	// LookupHost returns the IP addresses of host (CNAME, AAAA and A).
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// WellKnownFetcher fetches https://host/.well-known/matrix/server.
//
// It returns the m.server value and how long the answer may be cached
// according to the response: > 0 for a lifetime from the headers, 0 if the
// headers say nothing (the Resolver's defaults apply), < 0 if they forbid
// caching. An error that wraps ErrInvalidWellKnown means a response came
// back but is not a valid delegation (non-200, bad JSON, bad m.server); any
// other error means no response (connection refused, timeout, TLS failure).
// The Resolver caches the two kinds differently.
//
// A fetch must bound its own duration: the Resolver shares one fetch among
// concurrent callers and does not cancel it when one of them gives up.
type WellKnownFetcher interface {
	FetchWellKnown(ctx context.Context, host string) (delegated string, cacheFor time.Duration, err error)
}

// Result is one place to send requests for a server name.
type Result struct {
	// Addrs are "ip:port" pairs to try, in order.
	Addrs []string
	// Host is the value of the HTTP Host header.
	Host string
	// TLSServerName is the name the server's certificate must be valid for.
	// For an IP literal it is the bare IP: crypto/tls then checks the IP SAN
	// and sends no SNI, as "TLS" in the spec asks.
	TLSServerName string
}

// Resolver resolves server names. The zero value uses net.DefaultResolver,
// an HTTPWellKnown with default settings, the wall clock and math/rand/v2.
// Well-known answers are cached per hostname (DefaultWellKnownCache and the
// constants next to it); DNS answers are not, as the system resolver or a
// DNS implementation that knows the TTLs does that better.
// A Resolver is safe for concurrent use and must not be copied after use.
type Resolver struct {
	DNS       DNS
	WellKnown WellKnownFetcher
	Now       func() time.Time
	// RandIntN returns a number in [0, n); it drives the weighted choice
	// among SRV records of equal priority (RFC 2782).
	RandIntN func(n int) int

	mu       sync.Mutex
	cache    map[string]*wellKnownEntry
	inflight map[string]*wellKnownCall
}

// defaultWellKnown is shared by every Resolver without its own fetcher, so
// that they share one connection pool.
var defaultWellKnown = &HTTPWellKnown{}

func (r *Resolver) dns() DNS {
	if r.DNS != nil {
		return r.DNS
	}
	return net.DefaultResolver
}

func (r *Resolver) fetcher() WellKnownFetcher {
	if r.WellKnown != nil {
		return r.WellKnown
	}
	return defaultWellKnown
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) randIntN(n int) int {
	if r.RandIntN != nil {
		return r.RandIntN(n)
	}
	return rand.IntN(n)
}

// Resolve returns where to send requests for name, best first. Callers try
// the results in order and, within each, the addresses in order.
//
// Resolve fails if name is not a valid server name, if a DNS lookup fails
// with anything other than "not found" (so a DNS outage does not silently
// send traffic to the 8448 fallback), or if no address is found.
func (r *Resolver) Resolve(ctx context.Context, name matrix.ServerName) ([]Result, error) {
	if _, err := matrix.ParseServerName(string(name)); err != nil {
		return nil, fmt.Errorf("resolve server name: %w", err)
	}
	host, port, hasPort := name.HostPort()
	if hasPort && (port < 1 || port > 65535) {
		return nil, fmt.Errorf("resolve %s: port %d out of range", name, port)
	}

	// Step 1: an IP literal, with the given port or 8448.
	if ip, ok := ipLiteral(host); ok {
		return []Result{ipResult(ip, port, hasPort, string(name))}, nil
	}
	// Step 2: a hostname with an explicit port.
	if hasPort {
		res, err := r.hostResult(ctx, host, port, string(name), host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", name, err)
		}
		return []Result{res}, nil
	}

	// Step 3: /.well-known delegation.
	delegated, ok, err := r.wellKnown(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	if ok {
		res, err := r.resolveDelegated(ctx, delegated)
		if err != nil {
			return nil, fmt.Errorf("resolve %s delegated to %s: %w", name, delegated, err)
		}
		return res, nil
	}

	// Steps 4 to 6: no valid well-known, SRV records or 8448 on hostname.
	res, err := r.srvOrDefault(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	return res, nil
}

// resolveDelegated applies steps 3.1 to 3.5 to the m.server value.
func (r *Resolver) resolveDelegated(ctx context.Context, delegated matrix.ServerName) ([]Result, error) {
	host, port, hasPort := delegated.HostPort() // port range checked by parseDelegation
	// 3.1: an IP literal; the Host header is the IP, with the port if given.
	if ip, ok := ipLiteral(host); ok {
		return []Result{ipResult(ip, port, hasPort, string(delegated))}, nil
	}
	// 3.2: a hostname with a port; Host is "<delegated_hostname>:<port>".
	if hasPort {
		res, err := r.hostResult(ctx, host, port, string(delegated), host)
		if err != nil {
			return nil, err
		}
		return []Result{res}, nil
	}
	// 3.3 to 3.5: SRV records for the delegated hostname, then 8448.
	return r.srvOrDefault(ctx, host)
}

// srvOrDefault applies steps 4 to 6 (and 3.3 to 3.5, which are the same with
// the delegated hostname): _matrix-fed._tcp, then the deprecated
// _matrix._tcp, then host:8448. Host header and certificate name are host in
// every case, never an SRV target, because only the TLS certificate proves
// that the target may speak for host (the spec's note on SRV delegation).
func (r *Resolver) srvOrDefault(ctx context.Context, host string) ([]Result, error) {
	for _, service := range []string{"matrix-fed", "matrix"} {
		res, found, err := r.srv(ctx, service, host)
		if err != nil {
			return nil, err
		}
		if found {
			return res, nil
		}
	}
	res, err := r.hostResult(ctx, host, DefaultPort, host, host)
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// srv looks up _service._tcp.host and resolves each target, in RFC 2782
// order. found is false if there is no usable record, so the next step
// applies. Targets that do not resolve are skipped; if none resolves the
// record still exists, so this is an error rather than a fallback.
func (r *Resolver) srv(ctx context.Context, service, host string) (res []Result, found bool, err error) {
	_, records, err := r.dns().LookupSRV(ctx, service, "tcp", host)
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("look up SRV _%s._tcp.%s: %w", service, host, err)
	}
	records = usableSRV(records)
	if len(records) == 0 {
		return nil, false, nil
	}
	var errs []error
	for _, rec := range orderSRV(records, r.randIntN) {
		addrs, err := r.lookupHost(ctx, rec.Target, int(rec.Port))
		if err != nil {
			if ctx.Err() != nil {
				return nil, true, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		res = append(res, Result{Addrs: addrs, Host: host, TLSServerName: host})
	}
	if len(res) == 0 {
		return nil, true, fmt.Errorf("SRV _%s._tcp.%s: no target resolves: %w", service, host, errors.Join(errs...))
	}
	return res, true, nil
}

// hostResult resolves host and pairs every address with port.
func (r *Resolver) hostResult(ctx context.Context, host string, port int, hostHeader, tlsName string) (Result, error) {
	addrs, err := r.lookupHost(ctx, host, port)
	if err != nil {
		return Result{}, err
	}
	return Result{Addrs: addrs, Host: hostHeader, TLSServerName: tlsName}, nil
}

func (r *Resolver) lookupHost(ctx context.Context, host string, port int) ([]string, error) {
	ips, err := r.dns().LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("look up host %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("look up host %s: no addresses", host)
	}
	p := strconv.Itoa(port)
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = net.JoinHostPort(ip, p)
	}
	return addrs, nil
}

// ipLiteral reports whether host (IPv6 in brackets, as in server names) is
// an IP literal. "1.2.3.999" is a DNS name by the grammar, and is one here.
func ipLiteral(host string) (netip.Addr, bool) {
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		ip, err := netip.ParseAddr(host[1 : len(host)-1])
		return ip, err == nil && ip.Is6()
	}
	ip, err := netip.ParseAddr(host)
	return ip, err == nil && ip.Is4()
}

// ipResult is steps 1 and 3.1: connect to the IP itself, port or 8448.
func ipResult(ip netip.Addr, port int, hasPort bool, hostHeader string) Result {
	if !hasPort {
		port = DefaultPort
	}
	return Result{
		Addrs:         []string{netip.AddrPortFrom(ip, uint16(port)).String()},
		Host:          hostHeader,
		TLSServerName: ip.String(),
	}
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
