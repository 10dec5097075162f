package notifier

import (
	"slices"
	"testing"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func woken(l *Listener) bool {
	select {
	case <-l.C():
		return true
	default:
		return false
	}
}

func TestOnRoomEventWakes(t *testing.T) {
	const room = "!r:x"
	tests := []struct {
		name    string
		joined  []string
		changes []MembershipChange
		wake    []string
		notWake []string
		after   []string // joined users afterwards
	}{
		{name: "message wakes members", joined: []string{"@a:x", "@b:x"}, wake: []string{"@a:x", "@b:x"}, notWake: []string{"@c:x"}, after: []string{"@a:x", "@b:x"}},
		{name: "invite wakes invitee", joined: []string{"@a:x"}, changes: []MembershipChange{{"@c:x", "invite"}}, wake: []string{"@a:x", "@c:x"}, after: []string{"@a:x"}},
		{name: "join adds member", joined: []string{"@a:x"}, changes: []MembershipChange{{"@c:x", "join"}}, wake: []string{"@a:x", "@c:x"}, after: []string{"@a:x", "@c:x"}},
		{name: "leave wakes leaver and removes", joined: []string{"@a:x", "@b:x"}, changes: []MembershipChange{{"@b:x", "leave"}}, wake: []string{"@a:x", "@b:x"}, after: []string{"@a:x"}},
		{name: "first join of a new room", changes: []MembershipChange{{"@a:x", "join"}}, wake: []string{"@a:x"}, notWake: []string{"@b:x"}, after: []string{"@a:x"}},
		{name: "last leave forgets room", joined: []string{"@a:x"}, changes: []MembershipChange{{"@a:x", "leave"}}, wake: []string{"@a:x"}, after: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := New(streams.Token{}, map[string][]string{room: tc.joined})
			ls := map[string]*Listener{}
			for _, u := range append(slices.Clone(tc.wake), tc.notWake...) {
				ls[u] = n.Listen(u)
				defer ls[u].Close()
			}
			n.OnRoomEvent(room, 7, tc.changes)
			for _, u := range tc.wake {
				if !woken(ls[u]) {
					t.Errorf("%s not woken", u)
				}
			}
			for _, u := range tc.notWake {
				if woken(ls[u]) {
					t.Errorf("%s woken, want not", u)
				}
			}
			got := n.JoinedUsers(room)
			slices.Sort(got)
			if !slices.Equal(got, tc.after) {
				t.Errorf("JoinedUsers = %v, want %v", got, tc.after)
			}
			if p := n.Current().Get(streams.PDU); p != 7 {
				t.Errorf("Current PDU = %d, want 7", p)
			}
		})
	}
}

func TestPositionsOnlyAdvance(t *testing.T) {
	n := New(streams.Token{}.With(streams.PDU, 3), nil)
	n.OnRoomEvent("!r:x", 9, nil)
	n.OnRoomEvent("!s:x", 8, nil) // a parallel room committing earlier, notified later
	if p := n.Current().Get(streams.PDU); p != 9 {
		t.Fatalf("Current PDU = %d, want 9", p)
	}
	n.OnUsers(streams.PDU, 10, "@a:x")
	if p := n.Current().Get(streams.PDU); p != 10 {
		t.Fatalf("Current PDU = %d, want 10", p)
	}
}

func TestListenerLifecycle(t *testing.T) {
	n := New(streams.Token{}, nil)
	l1, l2 := n.Listen("@a:x"), n.Listen("@a:x")
	if n.Waiting() != 1 {
		t.Fatalf("Waiting = %d, want 1", n.Waiting())
	}
	l1.Close()
	l1.Close() // idempotent
	if n.Waiting() != 1 {
		t.Fatalf("after one Close: Waiting = %d, want 1", n.Waiting())
	}
	n.OnUsers(streams.PDU, 1, "@a:x")
	if !woken(l2) {
		t.Fatal("l2 not woken")
	}
	l3 := n.Listen("@a:x")
	if woken(l3) {
		t.Fatal("a listener made after the wake is already woken")
	}
	l2.Close() // belongs to the woken list: must not drop l3's list
	if n.Waiting() != 1 {
		t.Fatalf("Waiting = %d, want 1", n.Waiting())
	}
	l3.Close()
	if n.Waiting() != 0 {
		t.Fatalf("Waiting = %d, want 0", n.Waiting())
	}
	n.Close()
	n.Close()
	select {
	case <-n.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}
