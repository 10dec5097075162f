package storage

import (
	"database/sql"
	"sync"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Snapshots and state-key tuples never change once committed, and every
// send reads the same few of them twice (building the event, then checking
// it): under load those reads were a fifth of the roomserver's statements.
// They are kept in memory here, shared by every copy of the table values.
//
// Rows read outside a transaction are cached, and those a transaction read
// or wrote once it has committed (the tables' Committed). A row read inside
// one may be that transaction's own uncommitted write, and SQLite hands the
// same rowid out again after a rollback, so caching it could pair a number
// with another row later. A row read from a reader pool or in autocommit
// mode is committed, and committed rows here are never updated or deleted,
// so every process may cache them without telling the others. One
// exception: a crash of PostgreSQL can take back the last input commits,
// which do not wait for their WAL flush (sqlutil.DeferredCommits), and
// their numbers may then go to other rows. The process that notices empties
// the caches (Storage.ForgetCached); every roomserver process defers its
// input commits, so each notices at its next input write or flush, before
// it writes anything built on what it cached.

// committed reports whether q reads only committed rows.
func committed(q sqlutil.Querier) bool {
	_, inTx := q.(*sql.Tx)
	return !inTx
}

// Cache bounds (BoundedCache): a snapshot costs its entries, a tuple one.
const (
	maxCachedStateEntries = 200_000
	maxCachedTuples       = 100_000
)

type caches struct {
	snapshots *BoundedCache[int64, State]
	tuples    *BoundedCache[Tuple, int64]
}

func newCaches() *caches {
	return &caches{
		snapshots: NewBoundedCache[int64](maxCachedStateEntries, func(s State) int { return len(s) + 1 }),
		tuples:    NewBoundedCache[Tuple](maxCachedTuples, func(int64) int { return 1 }),
	}
}

// BoundedCache is a map with a total cost bound, safe for concurrent use.
// When a value would pass the bound, arbitrary entries are dropped until it
// is three quarters full: cheap, and what is used all the time comes back
// at once. The zero value (without cost) is not usable.
type BoundedCache[K comparable, V any] struct {
	mu   sync.Mutex
	m    map[K]V
	used int
	max  int
	cost func(V) int
}

// NewBoundedCache returns a cache of at most max cost.
func NewBoundedCache[K comparable, V any](max int, cost func(V) int) *BoundedCache[K, V] {
	return &BoundedCache[K, V]{max: max, cost: cost}
}

// Get returns the value of k.
func (c *BoundedCache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// Put sets the value of k; a value costing more than a quarter of the bound
// is not kept.
func (c *BoundedCache[K, V]) Put(k K, v V) {
	n := c.cost(v)
	if n > c.max/4 {
		return // one value would push out most of the others
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[K]V{}
	}
	if old, ok := c.m[k]; ok {
		c.used -= c.cost(old)
	}
	if c.used+n > c.max {
		for k2, v2 := range c.m {
			if c.used <= c.max*3/4 {
				break
			}
			delete(c.m, k2)
			c.used -= c.cost(v2)
		}
	}
	c.m[k] = v
	c.used += n
}

// Clear drops every entry.
func (c *BoundedCache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.used = 0
}

// Entries returns a copy of the entries (for checks).
func (c *BoundedCache[K, V]) Entries() map[K]V {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[K]V, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
