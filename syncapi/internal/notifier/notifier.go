// Package notifier wakes the /sync requests that wait for news.
//
// The syncapi's consumers call the notifier after their transaction commits,
// with the stream position they wrote and the users it concerns; a waiting
// request is woken only when something for its user arrives. For room
// events the notifier keeps, in memory, the joined users of every room, so
// waking the members of a room costs no query. It is loaded from storage at
// start-up and kept current by the membership changes the consumer reports,
// in the order the consumer commits them for each room.
//
// A request must call Listen before it reads storage: anything committed
// after that wakes the listener, and anything committed before is visible
// to the read, so no event falls between the two.
package notifier

import (
	"sync"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// Membership values the notifier cares about.
const joined = "join"

// MembershipChange is a user's new membership in a room ("" when the
// membership left the room state altogether).
type MembershipChange struct {
	UserID     string
	Membership string
}

// Notifier tracks the latest notified position of every stream and wakes
// the listeners of users. It is safe for concurrent use.
type Notifier struct {
	mu      sync.Mutex
	current streams.Token
	rooms   map[string]map[string]struct{} // room id → joined user ids
	users   map[string]*waitList           // user id → its listeners
	done    chan struct{}
	closed  bool
}

// waitList is the listeners of one user: ch is closed to wake them all.
type waitList struct {
	ch   chan struct{}
	refs int
}

// New returns a notifier at position current, with the given joined users
// per room (as loaded from storage).
func New(current streams.Token, joinedUsers map[string][]string) *Notifier {
	n := &Notifier{
		current: current,
		rooms:   make(map[string]map[string]struct{}, len(joinedUsers)),
		users:   map[string]*waitList{},
		done:    make(chan struct{}),
	}
	for room, users := range joinedUsers {
		set := make(map[string]struct{}, len(users))
		for _, u := range users {
			set[u] = struct{}{}
		}
		n.rooms[room] = set
	}
	return n
}

// Current returns the latest position notified in every stream. Everything
// at or before it is committed.
func (n *Notifier) Current() streams.Token {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current
}

// OnRoomEvent records a room event committed at pos in the PDU stream, with
// the membership changes it made, and wakes the room's joined users before
// and after the changes, and every user whose membership changed (an
// invitee is not joined but must hear of its invite; a user who left must
// hear of it).
func (n *Notifier) OnRoomEvent(roomID string, pos streams.Position, changes []MembershipChange) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.advance(streams.PDU, pos)
	members := n.rooms[roomID]
	for u := range members {
		n.wake(u)
	}
	for _, c := range changes {
		n.wake(c.UserID)
		if c.Membership == joined {
			if members == nil {
				members = map[string]struct{}{}
				n.rooms[roomID] = members
			}
			members[c.UserID] = struct{}{}
		} else if members != nil {
			delete(members, c.UserID)
		}
	}
	if members != nil && len(members) == 0 {
		delete(n.rooms, roomID)
	}
}

// OnUsers records an item committed at pos in stream k that concerns the
// given users, and wakes them. (For streams other than room events: to-device
// messages, account data and the like.)
func (n *Notifier) OnUsers(k streams.Kind, pos streams.Position, userIDs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.advance(k, pos)
	for _, u := range userIDs {
		n.wake(u)
	}
}

// OnRoom records an item committed at pos in stream k that concerns a
// room's joined users (typing, receipts), plus extra users, and wakes them.
func (n *Notifier) OnRoom(k streams.Kind, pos streams.Position, roomID string, extra ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.advance(k, pos)
	for u := range n.rooms[roomID] {
		n.wake(u)
	}
	for _, u := range extra {
		n.wake(u)
	}
}

// OnPresence records a presence change of userID at pos and wakes the user
// and everyone joined to a room with them.
func (n *Notifier) OnPresence(pos streams.Position, userID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.advance(streams.Presence, pos)
	n.wake(userID)
	for _, members := range n.rooms {
		if _, ok := members[userID]; ok {
			for u := range members {
				n.wake(u)
			}
		}
	}
}

// SharesRoom reports whether two users are joined to a common room (who
// sees whose presence).
func (n *Notifier) SharesRoom(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, members := range n.rooms {
		_, okA := members[a]
		_, okB := members[b]
		if okA && okB {
			return true
		}
	}
	return false
}

// RoomsOf returns the rooms a user is joined to, as the notifier knows.
func (n *Notifier) RoomsOf(userID string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for room, members := range n.rooms {
		if _, ok := members[userID]; ok {
			out = append(out, room)
		}
	}
	return out
}

// JoinedUsers returns the users the notifier believes are joined to room.
func (n *Notifier) JoinedUsers(roomID string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.rooms[roomID]))
	for u := range n.rooms[roomID] {
		out = append(out, u)
	}
	return out
}

// advance moves stream k to pos; positions of one stream can be notified out
// of order (rooms are consumed in parallel), and the notifier keeps the
// highest. Callers hold n.mu.
func (n *Notifier) advance(k streams.Kind, pos streams.Position) {
	if pos > n.current.Get(k) {
		n.current = n.current.With(k, pos)
	}
}

// wake closes the user's wait channel; the next Listen gets a fresh one.
// Callers hold n.mu.
func (n *Notifier) wake(userID string) {
	if wl, ok := n.users[userID]; ok {
		close(wl.ch)
		delete(n.users, userID)
	}
}

// Listener is one waiting request.
type Listener struct {
	n      *Notifier
	userID string
	wl     *waitList
	once   sync.Once
}

// Listen registers interest in news for userID. C is closed at the first
// notification for the user after this call. Close the listener when done.
func (n *Notifier) Listen(userID string) *Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	wl, ok := n.users[userID]
	if !ok {
		wl = &waitList{ch: make(chan struct{})}
		n.users[userID] = wl
	}
	wl.refs++
	return &Listener{n: n, userID: userID, wl: wl}
}

// C is closed when there is news for the user.
func (l *Listener) C() <-chan struct{} { return l.wl.ch }

// Close releases the listener. It may be called more than once.
func (l *Listener) Close() {
	l.once.Do(func() {
		l.n.mu.Lock()
		defer l.n.mu.Unlock()
		l.wl.refs--
		// A woken list has already left the map; only a still-waiting one is removed
		// when its last listener goes, so idle users cost nothing.
		if l.wl.refs == 0 && l.n.users[l.userID] == l.wl {
			delete(l.n.users, l.userID)
		}
	})
}

// Waiting returns how many users have a listener (for metrics and tests).
func (n *Notifier) Waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.users)
}

// Done is closed by Close: waiting requests return what they have.
func (n *Notifier) Done() <-chan struct{} { return n.done }

// Close ends every wait (the component is shutting down).
func (n *Notifier) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		close(n.done)
	}
}
