package internal

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"

	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// Every send asks QueryLatestEventsAndState for the room's head (its row,
// the latest events' ids, a few current state events), and under load those
// reads were about 4% of the server's CPU. headCache keeps the answer per
// room and is kept exactly in step with the commits that move a head:
//
//   - This process is the only writer of its rooms: the roomserver alone
//     writes its database, and the input of a room is handled by the process
//     that serves its queries (one process, or one per room partition; see
//     README.md). A head changes only in HandleInput's transaction or
//     pipelined statement (events, forward extremities, state, redactions).
//   - After that transaction commits, and before any caller is answered,
//     HandleInput moves the cached head of each room it stored events in
//     (advance); when it fails or may not have committed, it drops the
//     rooms it touched (forget). Nothing read inside the transaction is
//     cached before the commit: SQLite reuses rolled-back rowids.
//   - A read that fills the cache reads committed rows outside any
//     transaction and stores its result only into the entry it started from,
//     if that entry is still the room's entry. advance and forget always
//     replace or remove the entry (never change its head in place), so a
//     read that raced a commit is dropped instead of cached.
//
// Between a commit and its advance a query may still get the previous head,
// exactly as a query reading the database just before the commit would: no
// caller has been told of the commit yet.
//
// On PostgreSQL input commits do not wait for their WAL flush, and a crash
// of the database can take the last of them back (sqlutil.DeferredCommits):
// the first write or flush that notices empties the whole cache (clear),
// and no advance of a write made before that runs after it (Fenced).
type headCache struct {
	mu    sync.Mutex
	rooms map[string]*headEntry
	used  int // total cost of the entries
	max   int
}

// Cache bounds: about this many bytes of event ids and JSON in all, and at
// most this many state tuples per room (a busy room's senders each add their
// member event; past the bound the room's state starts over).
const (
	maxHeadCacheBytes = 32 << 20
	maxHeadTuples     = 256
)

// headEntry is one room's head. An entry is either a placeholder (filled
// false) that a reader is filling, or a committed head: room and latestIDs
// never change once filled; state grows as queries ask for more tuples.
// Every field is guarded by headCache.mu.
type headEntry struct {
	filled    bool
	room      storage.Room
	latestIDs []string // the ids of room.LatestEvents, in order
	// latestSnaps are the snapshots after each of latestIDs (the states
	// an event building on them starts from); nil when not known.
	latestSnaps []int64
	hashes      map[string][]byte // reference hashes of latestIDs (room versions 1 and 2)
	// state holds current state events (of room.SnapshotNID) by tuple, a
	// zero stateEvent for a tuple the state does not have.
	state     map[storage.Tuple]stateEvent
	stateCost int
}

// stateEvent is one state event as the query returns it; the JSON is shared
// with every caller and must not be modified.
type stateEvent struct {
	id   string
	json json.RawMessage
}

func (s stateEvent) cost() int { return 64 + len(s.id) + len(s.json) }

func (e *headEntry) cost() int {
	n := 128 + e.stateCost
	for _, id := range e.latestIDs {
		n += 16 + len(id)
	}
	return n
}

// sameHead reports whether two room rows name the same head.
func sameHead(a, b storage.Room) bool {
	return a.NID == b.NID && a.Version == b.Version && a.SnapshotNID == b.SnapshotNID && a.Depth == b.Depth &&
		slices.Equal(a.LatestEvents, b.LatestEvents)
}

func newHeadCache() *headCache {
	return &headCache{rooms: map[string]*headEntry{}, max: maxHeadCacheBytes}
}

// headMiss is what a read must fill when the cache cannot answer.
type headMiss struct {
	e *headEntry // the room's entry when the lookup was made
	// head is a copy of e's head (without state), nil when e is a
	// placeholder and the head must be read; have is the state it has of
	// the wanted tuples, missing the tuples it lacks.
	head    *headEntry
	have    map[storage.Tuple]stateEvent
	missing []storage.Tuple
}

// lookup answers from the cache when it holds the room's head and every
// tuple of want, and says what to read otherwise.
func (c *headCache) lookup(roomID string, want []storage.Tuple) (api.QueryLatestEventsAndStateResponse, bool, headMiss) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.rooms[roomID]
	if e == nil {
		e = &headEntry{}
		c.set(roomID, e)
	}
	if !e.filled {
		return api.QueryLatestEventsAndStateResponse{}, false, headMiss{e: e}
	}
	var missing []storage.Tuple
	for _, t := range want {
		if _, ok := e.state[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return e.response(want, e.state), true, headMiss{}
	}
	have := make(map[storage.Tuple]stateEvent, len(want))
	for _, t := range want {
		if s, ok := e.state[t]; ok {
			have[t] = s
		}
	}
	head := &headEntry{filled: true, room: e.room, latestIDs: e.latestIDs, hashes: e.hashes}
	return api.QueryLatestEventsAndStateResponse{}, false, headMiss{e: e, head: head, have: have, missing: missing}
}

// response answers a query for want from the head of e and state.
func (e *headEntry) response(want []storage.Tuple, state map[storage.Tuple]stateEvent) api.QueryLatestEventsAndStateResponse {
	resp := api.QueryLatestEventsAndStateResponse{RoomExists: true, RoomVersion: e.room.Version, Depth: e.room.Depth,
		LatestEvents: slices.Clone(e.latestIDs)}
	if e.hashes != nil {
		resp.LatestEventHashes = maps.Clone(e.hashes)
	}
	for i, t := range want {
		s := state[t]
		if s.id == "" || slices.Contains(want[:i], t) {
			continue // not in the state, or asked for twice
		}
		resp.StateEvents = append(resp.StateEvents, s.json)
		resp.StateEventIDs = append(resp.StateEventIDs, api.StateEventID{Type: t.Type, StateKey: t.StateKey, EventID: s.id})
	}
	return resp
}

// fill stores a head read from committed rows into the placeholder e, if e
// is still the room's entry. A reader that filled e first with the same
// head gets the state merged; one with another head wins (a commit came in
// between, and its advance replaces e anyway).
func (c *headCache) fill(roomID string, e *headEntry, read *headEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms[roomID] != e {
		return
	}
	if !e.filled {
		c.used -= e.cost()
		e.filled, e.room, e.latestIDs, e.latestSnaps, e.hashes = true, read.room, read.latestIDs, read.latestSnaps, read.hashes
		c.used += e.cost()
	} else if !sameHead(e.room, read.room) {
		return
	}
	c.addStateLocked(e, read.state)
}

// addState stores state events of e's head read from committed rows, if e
// is still the room's entry.
func (c *headCache) addState(roomID string, e *headEntry, state map[storage.Tuple]stateEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms[roomID] == e {
		c.addStateLocked(e, state)
	}
}

func (c *headCache) addStateLocked(e *headEntry, state map[storage.Tuple]stateEvent) {
	before := e.cost()
	if len(e.state)+len(state) > maxHeadTuples {
		e.state, e.stateCost = nil, 0
	}
	if e.state == nil {
		e.state = make(map[storage.Tuple]stateEvent, len(state))
	}
	for t, s := range state {
		if old, ok := e.state[t]; ok {
			e.stateCost -= old.cost()
		}
		e.state[t] = s
		e.stateCost += s.cost()
	}
	c.used += e.cost() - before
	c.evictLocked(e)
}

// headMove is how storing one event moved its room's head.
type headMove struct {
	roomID        string
	before, after storage.Room
	latestIDs     []string // the ids of after.LatestEvents, in order
	latestSnaps   []int64  // the snapshots after each of them
	// reread: after may not be the row as stored (a create event keeps an
	// existing room's row); the head is read again.
	reread bool
	// stateKept: the current state after is the one before, but for tuple
	// (when set) now holding ev. Otherwise it is not known here.
	stateKept bool
	tuple     *storage.Tuple
	ev        stateEvent
	// snapshots are the states the event's processing read or wrote, by
	// snapshot number, for the snapshot cache once the transaction
	// committed (storage.SnapshotsTable.Committed).
	snapshots map[int64]storage.State
	// tuples are the tuple numbers it looked up or assigned, likewise
	// (storage.StateKeysTable.Committed).
	tuples map[storage.Tuple]int64
	// cached: the event was processed on the cached head (cachedHead).
	cached bool
	// authEvents are the state events, parsed, that the event's auth check
	// read from the database, and the event itself when it may be an auth
	// event of later ones, by event number (authEventCache).
	authEvents map[int64]*event.PDU
}

// advance applies the head moves of a committed transaction, in order. A
// cached state survives a move that keeps it; the room's entry is replaced
// in any case, so that reads begun before the commit are not cached.
func (c *headCache) advance(moves []headMove) {
	if len(moves) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range moves {
		if m.reread {
			c.deleteLocked(m.roomID)
			continue
		}
		old := c.rooms[m.roomID]
		if old != nil && old.filled && sameHead(old.room, m.after) {
			continue // read after the commit: already this head
		}
		if v, ok := event.Version(m.after.Version); !ok || v.EventIDInJSON() {
			// Room versions 1 and 2 also need the reference hashes of the
			// latest events: those rooms are filled by reads alone.
			c.deleteLocked(m.roomID)
			continue
		}
		e := &headEntry{filled: true, room: m.after, latestIDs: m.latestIDs, latestSnaps: m.latestSnaps}
		if old != nil && old.filled && m.stateKept && sameHead(old.room, m.before) {
			// Once replaced, old is nobody's entry: its state moves over.
			c.deleteLocked(m.roomID)
			e.state, e.stateCost = old.state, old.stateCost
			old.state, old.stateCost = nil, 0
			if m.tuple != nil {
				if s, ok := e.state[*m.tuple]; ok {
					e.stateCost -= s.cost()
				}
				if e.state == nil {
					e.state = map[storage.Tuple]stateEvent{}
				}
				e.state[*m.tuple] = m.ev
				e.stateCost += m.ev.cost()
			}
		}
		c.set(m.roomID, e)
	}
}

// committed returns a room's cached head: its row, and the ids of its
// latest events and the snapshots after them, as last committed. Only
// HandleInput moves a head, one call per room at a time, and it advances
// or forgets the entry before it returns: at the start of its next call
// for the room, a filled entry is the row as stored (processEvent reads it
// instead of the database).
func (c *headCache) committed(roomID string) (storage.Room, []string, []int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.rooms[roomID]
	if e == nil || !e.filled {
		return storage.Room{}, nil, nil, false
	}
	return e.room, e.latestIDs, e.latestSnaps, true
}

// forget drops the heads of rooms: their transaction failed, or may have
// committed without this process knowing what it wrote.
func (c *headCache) forget(roomIDs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range roomIDs {
		c.deleteLocked(id)
	}
}

// clear drops every head: commits they were read from may have been lost
// (sqlutil.ErrCommitsLost). A read filling an entry then finds it gone.
func (c *headCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rooms, c.used = map[string]*headEntry{}, 0
}

// drop removes e if it is still the room's entry (a room that does not
// exist, or a read that failed).
func (c *headCache) drop(roomID string, e *headEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms[roomID] == e {
		c.deleteLocked(roomID)
	}
}

func (c *headCache) set(roomID string, e *headEntry) {
	c.deleteLocked(roomID)
	c.rooms[roomID] = e
	c.used += e.cost()
	c.evictLocked(e)
}

func (c *headCache) deleteLocked(roomID string) {
	if old, ok := c.rooms[roomID]; ok {
		c.used -= old.cost()
		delete(c.rooms, roomID)
	}
}

// evictLocked drops arbitrary entries but keep, until the cache is three
// quarters full, once it is over its bound: cheap, and busy rooms come
// back with their next send.
func (c *headCache) evictLocked(keep *headEntry) {
	if c.used <= c.max {
		return
	}
	for id, e := range c.rooms {
		if c.used <= c.max*3/4 {
			break
		}
		if e != keep {
			c.deleteLocked(id)
		}
	}
}
