package resolve

import (
	"context"
	"errors"
	"time"

	"github.com/axon-hs/axon/matrix"
)

// Cache lifetimes for well-known answers ("Resolving server names" step 3).
const (
	// DefaultWellKnownCache applies to a valid answer without cache
	// headers: "The recommended sensible default is 24 hours."
	DefaultWellKnownCache = 24 * time.Hour
	// MaxWellKnownCache caps any answer: "48 hours is recommended."
	MaxWellKnownCache = 48 * time.Hour
	// MinWellKnownCache is our floor, even for "no-store": resolution runs
	// before every connection, and a peer must not make us fetch its
	// well-known that often. NOTSPEC: the spec names no minimum.
	MinWellKnownCache = 5 * time.Minute
	// InvalidWellKnownCache applies to a response that is not a valid
	// delegation (404, bad JSON, ...): "Errors are recommended to be cached
	// for up to an hour." It is also the cap on the backoff below.
	InvalidWellKnownCache = time.Hour
	// FailedWellKnownBackoff is how long the first failure to get any
	// response is cached; it doubles with each consecutive failure up to
	// InvalidWellKnownCache ("exponentially back off for repeated
	// failures"). A short first period matters because an outage of a few
	// seconds would otherwise send a delegated server's traffic to the
	// wrong place for an hour.
	FailedWellKnownBackoff = 2 * time.Minute
	// StaleDelegationGrace is how long past its expiry a valid delegation
	// is still used while fetching a fresh answer fails without a response:
	// a brief outage of the web server on 443 should not redirect traffic
	// to hostname:8448, where the homeserver usually is not.
	StaleDelegationGrace = time.Hour
	// maxCacheEntries bounds the cache; beyond it expired entries are
	// dropped, then arbitrary ones.
	maxCacheEntries = 50000
)

// ErrInvalidWellKnown is wrapped by fetcher errors that mean "a response came
// back, and it is not a valid delegation".
var ErrInvalidWellKnown = errors.New("invalid .well-known/matrix/server response")

type wellKnownEntry struct {
	delegated matrix.ServerName // empty: no valid delegation
	expires   time.Time
	// lastGood and lastGoodExpires keep the last valid delegation through
	// transient failures (StaleDelegationGrace).
	lastGood        matrix.ServerName
	lastGoodExpires time.Time
	failures        int // consecutive failures without a response
}

type wellKnownCall struct {
	done    chan struct{}
	entry   wellKnownEntry
	waiters int // for tests: callers sharing this fetch
}

// wellKnown returns the delegated server name for host, or ok == false if
// there is no valid delegation and steps 4 to 6 apply. err is only set if
// ctx ends first. Concurrent calls for one host share one fetch.
func (r *Resolver) wellKnown(ctx context.Context, host string) (delegated matrix.ServerName, ok bool, err error) {
	r.mu.Lock()
	if e, found := r.cache[host]; found && r.now().Before(e.expires) {
		r.mu.Unlock()
		return e.delegated, e.delegated != "", nil
	}
	call, running := r.inflight[host]
	if !running {
		call = &wellKnownCall{done: make(chan struct{})}
		if r.inflight == nil {
			r.inflight = map[string]*wellKnownCall{}
		}
		r.inflight[host] = call
		var prev wellKnownEntry
		if e := r.cache[host]; e != nil {
			prev = *e
		}
		// The fetch is shared, so it must not end because the first
		// caller gives up; the fetcher's own timeout bounds it.
		go r.fetch(context.WithoutCancel(ctx), host, prev, call)
	}
	call.waiters++
	r.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	return call.entry.delegated, call.entry.delegated != "", nil
}

// fetch runs one well-known request, stores the outcome and releases the
// callers waiting on call.
func (r *Resolver) fetch(ctx context.Context, host string, prev wellKnownEntry, call *wellKnownCall) {
	raw, cacheFor, err := r.fetcher().FetchWellKnown(ctx, host)
	now := r.now()
	e := wellKnownEntry{lastGood: prev.lastGood, lastGoodExpires: prev.lastGoodExpires}

	var delegated matrix.ServerName
	if err == nil {
		// Fetchers other than HTTPWellKnown may not check m.server.
		delegated, err = parseDelegation(raw)
	}
	switch {
	case err == nil:
		e.delegated = delegated
		e.expires = now.Add(lifetime(cacheFor, DefaultWellKnownCache, MaxWellKnownCache))
		e.lastGood, e.lastGoodExpires = delegated, e.expires
	case errors.Is(err, ErrInvalidWellKnown):
		e.expires = now.Add(lifetime(cacheFor, InvalidWellKnownCache, InvalidWellKnownCache))
	default:
		e.failures = prev.failures + 1
		backoff := FailedWellKnownBackoff
		for i := 1; i < e.failures && backoff < InvalidWellKnownCache; i++ {
			backoff *= 2
		}
		e.expires = now.Add(min(backoff, InvalidWellKnownCache))
		if e.lastGood != "" && now.Before(e.lastGoodExpires.Add(StaleDelegationGrace)) {
			e.delegated = e.lastGood
		}
	}

	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]*wellKnownEntry{}
	}
	if len(r.cache) >= maxCacheEntries {
		r.evict(now)
	}
	r.cache[host] = &e
	delete(r.inflight, host)
	call.entry = e
	r.mu.Unlock()
	close(call.done)
}

// lifetime bounds the fetcher's cacheFor: 0 means "use def", negative means
// the response asked not to be cached.
func lifetime(cacheFor, def, maxAge time.Duration) time.Duration {
	switch {
	case cacheFor == 0:
		return def
	case cacheFor < MinWellKnownCache:
		return MinWellKnownCache
	case cacheFor > maxAge:
		return maxAge
	}
	return cacheFor
}

// evict makes room in the cache; r.mu is held.
func (r *Resolver) evict(now time.Time) {
	for host, e := range r.cache {
		if !now.Before(e.expires) && !now.Before(e.lastGoodExpires.Add(StaleDelegationGrace)) {
			delete(r.cache, host)
		}
	}
	for host := range r.cache {
		if len(r.cache) < maxCacheEntries {
			return
		}
		delete(r.cache, host)
	}
}
