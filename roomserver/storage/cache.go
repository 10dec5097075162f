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
// Only rows read outside a transaction are cached. A row read inside one
// may be that transaction's own uncommitted write, and SQLite hands the
// same rowid out again after a rollback, so caching it could pair a number
// with another row later. A row read from a reader pool or in autocommit
// mode is committed, and committed rows here are never updated or deleted,
// so every process may cache them without telling the others.

// committed reports whether q reads only committed rows.
func committed(q sqlutil.Querier) bool {
	_, inTx := q.(*sql.Tx)
	return !inTx
}

// Cache bounds: a snapshot costs its entries, a tuple one. When a cache is
// full, arbitrary entries are dropped until it is three quarters full: cheap,
// and what is used all the time comes back at once.
const (
	maxCachedStateEntries = 200_000
	maxCachedTuples       = 100_000
)

type caches struct {
	snapshots boundedCache[int64, State]
	tuples    boundedCache[Tuple, int64]
}

func newCaches() *caches {
	return &caches{
		snapshots: boundedCache[int64, State]{max: maxCachedStateEntries, cost: func(s State) int { return len(s) + 1 }},
		tuples:    boundedCache[Tuple, int64]{max: maxCachedTuples, cost: func(int64) int { return 1 }},
	}
}

// boundedCache is a map with a total cost bound. The zero value (without
// cost) is not usable; a nil *boundedCache caches nothing.
type boundedCache[K comparable, V any] struct {
	mu   sync.Mutex
	m    map[K]V
	used int
	max  int
	cost func(V) int
}

func (c *boundedCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *boundedCache[K, V]) put(k K, v V) {
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
