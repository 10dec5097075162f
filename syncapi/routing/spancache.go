package routing

import (
	"sync"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// spanCache remembers, per user, a value derived from one stream (the
// user's memberships from the PDU stream, the ignore list from account
// data) together with a span [from, to] of that stream's positions in
// which it did not change.
//
// Nothing ever invalidates an entry, and nothing needs to: a value is put
// only from committed reads (the reader pool) at a position up to the
// notifier's current one, together with the position of its latest change,
// and what is at or before such a position never changes afterwards
// (positions commit in order; membership deltas are history, never
// deleted; an account data entry moves to a later position when it
// changes). A caller takes an entry only for positions it has just shown,
// by a read of its own, to be quiet for the user (get's [lo, hi]). That
// check is made against the database on every request, never against what
// this process's consumer wrote, so it holds for every reader process of a
// polylith, and trivially across restarts (the cache starts empty).
type spanCache[V any] struct {
	mu      sync.Mutex
	entries map[string]span[V]
	// size weighs an entry; total is the sum over entries, kept at most
	// limit by dropping entries.
	size  func(V) int
	total int
	limit int
}

// span is a value and the positions [from, to] in which it held: nothing
// it depends on changed in (from, to].
type span[V any] struct {
	from, to streams.Position
	v        V
}

func newSpanCache[V any](limit int, size func(V) int) *spanCache[V] {
	return &spanCache[V]{entries: map[string]span[V]{}, size: size, limit: limit}
}

// get returns the user's value when its span meets [lo, hi], positions the
// caller knows the value did not change between (no change in (lo, hi]);
// the value holds at every position of both spans, and the entry now
// covers them. Callers must not modify the value.
func (c *spanCache[V]) get(userID string, lo, hi streams.Position) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[userID]
	if !ok || e.from > hi || lo > e.to {
		var zero V
		return zero, false
	}
	e.from, e.to = min(e.from, lo), max(e.to, hi)
	c.entries[userID] = e
	return e.v, true
}

// put records v as the user's value at every position of [from, to]: the
// caller read it at to, and from is the position of its latest change at
// or before to. The value must not be modified afterwards.
func (c *spanCache[V]) put(userID string, from, to streams.Position, v V) {
	if from > to {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[userID]; ok {
		c.total -= c.size(old.v)
	}
	n := c.size(v)
	if n > c.limit {
		delete(c.entries, userID)
		return
	}
	// Over the limit, drop other entries (map order: arbitrary, which is
	// as good as anything for a cache refilled by one read).
	for u, e := range c.entries {
		if c.total+n <= c.limit {
			break
		}
		if u != userID {
			c.total -= c.size(e.v)
			delete(c.entries, u)
		}
	}
	c.entries[userID] = span[V]{from: from, to: to, v: v}
	c.total += n
}
