// Package typing keeps who is typing in which room, in memory.
//
// Typing notifications are ephemeral: they live for the timeout the client
// gave (capped) and are not stored. Every change of a room's typing users
// takes the next position of the typing stream, so /sync can tell which
// rooms changed since a token. Positions restart at 0 with the process; a
// token from before a restart is clamped to the current position like any
// token from the future, which at worst repeats one typing event.
package typing

import (
	"slices"
	"sync"
	"time"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// MaxTimeout caps how long one notification keeps a user typing.
const MaxTimeout = 2 * time.Minute

// Typing is the typing state of every room. It is safe for concurrent use.
type Typing struct {
	mu    sync.Mutex
	pos   streams.Position
	rooms map[string]*room
	// onChange is called, without the lock, after every change with the
	// room and the change's position.
	onChange func(roomID string, pos streams.Position)
	now      func() time.Time
	timers   map[key]*time.Timer
	closed   bool
}

type key struct{ room, user string }

type room struct {
	users map[string]time.Time // user → typing until
	pos   streams.Position     // the last change
}

// New returns an empty typing state; onChange hears of every change.
func New(onChange func(roomID string, pos streams.Position)) *Typing {
	return &Typing{rooms: map[string]*room{}, onChange: onChange, now: time.Now, timers: map[key]*time.Timer{}}
}

// Set marks user as typing in roomID for timeout (capped at MaxTimeout),
// or as no longer typing. A change of the room's typing users takes a new
// position; renewing a user already typing does not.
func (t *Typing) Set(roomID, userID string, typing bool, timeout time.Duration) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	r := t.rooms[roomID]
	if r == nil {
		r = &room{users: map[string]time.Time{}}
		t.rooms[roomID] = r
	}
	k := key{roomID, userID}
	if tm := t.timers[k]; tm != nil {
		tm.Stop()
		delete(t.timers, k)
	}
	_, was := r.users[userID]
	var changed bool
	if typing {
		timeout = min(max(timeout, 0), MaxTimeout)
		r.users[userID] = t.now().Add(timeout)
		changed = !was
		t.timers[k] = time.AfterFunc(timeout, func() { t.expire(roomID, userID) })
	} else {
		delete(r.users, userID)
		changed = was
	}
	pos := t.change(r, changed)
	t.mu.Unlock()
	if pos > 0 {
		t.onChange(roomID, pos)
	}
}

// expire ends a notification whose timeout passed.
func (t *Typing) expire(roomID, userID string) {
	t.mu.Lock()
	r := t.rooms[roomID]
	until, ok := time.Time{}, false
	if r != nil {
		until, ok = r.users[userID]
	}
	if !ok || t.now().Before(until) {
		// Renewed meanwhile: the renewal's own timer ends it.
		t.mu.Unlock()
		return
	}
	delete(r.users, userID)
	delete(t.timers, key{roomID, userID})
	pos := t.change(r, true)
	t.mu.Unlock()
	t.onChange(roomID, pos)
}

// change takes the next position for a changed room; 0 when unchanged.
// Callers hold t.mu.
func (t *Typing) change(r *room, changed bool) streams.Position {
	if !changed {
		return 0
	}
	t.pos++
	r.pos = t.pos
	return t.pos
}

// Users returns the users typing in a room, sorted, and the position of the
// room's last change (0 if it never changed).
func (t *Typing) Users(roomID string) ([]string, streams.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rooms[roomID]
	if r == nil {
		return nil, 0
	}
	out := make([]string, 0, len(r.users))
	for u := range r.users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, r.pos
}

// Current is the typing stream's latest position.
func (t *Typing) Current() streams.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// Close stops the expiry timers.
func (t *Typing) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for k, tm := range t.timers {
		tm.Stop()
		delete(t.timers, k)
	}
}
