package consumers

import (
	"context"
	"sync"
	"time"

	"github.com/axon-hs/axon/userapi/storage"
)

// pusherCacheTTL bounds how long a pusher change made by another userapi
// process (which this one's generation does not see) can go unnoticed.
const pusherCacheTTL = 10 * time.Second

// pusherCache answers "which pushers does this user have" from memory. The
// gateway asks it for every notification, and most users have none: a
// database read each time was 15% of the server's CPU under load. Any
// change in this process (storage.PushersTable.Generation) empties it.
type pusherCache struct {
	st  *storage.Storage
	now func() time.Time

	mu      sync.Mutex
	gen     uint64
	entries map[string]pusherEntry
}

type pusherEntry struct {
	rows []storage.PusherRow
	at   time.Time
}

func newPusherCache(st *storage.Storage) *pusherCache {
	return &pusherCache{st: st, now: time.Now, entries: map[string]pusherEntry{}}
}

// get returns localpart's pushers.
func (c *pusherCache) get(ctx context.Context, localpart string) ([]storage.PusherRow, error) {
	gen := c.st.Push.Pushers.Generation()
	now := c.now()
	c.mu.Lock()
	if gen != c.gen {
		clear(c.entries)
		c.gen = gen
	}
	e, ok := c.entries[localpart]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < pusherCacheTTL {
		return e.rows, nil
	}
	rows, err := c.st.Push.Pushers.Select(ctx, c.st.DB.Reader(), []string{localpart})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Stored only if nothing changed while reading.
	if c.st.Push.Pushers.Generation() == gen && c.gen == gen {
		if len(c.entries) >= 100_000 {
			clear(c.entries)
		}
		c.entries[localpart] = pusherEntry{rows: rows, at: now}
	}
	return rows, nil
}
