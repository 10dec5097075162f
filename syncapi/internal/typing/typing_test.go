package typing

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func TestTyping(t *testing.T) {
	var mu sync.Mutex
	var changes []streams.Position
	ty := New(func(_ string, pos streams.Position) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, pos)
	})
	defer ty.Close()
	steps := []struct {
		name    string
		user    string
		typing  bool
		want    []string
		wantPos streams.Position
	}{
		{name: "alice starts", user: "@a:x", typing: true, want: []string{"@a:x"}, wantPos: 1},
		{name: "alice renews: no change", user: "@a:x", typing: true, want: []string{"@a:x"}, wantPos: 1},
		{name: "bob starts", user: "@b:x", typing: true, want: []string{"@a:x", "@b:x"}, wantPos: 2},
		{name: "alice stops", user: "@a:x", typing: false, want: []string{"@b:x"}, wantPos: 3},
		{name: "alice stops again: no change", user: "@a:x", typing: false, want: []string{"@b:x"}, wantPos: 3},
	}
	for _, st := range steps {
		ty.Set("!r:x", st.user, st.typing, time.Minute)
		got, pos := ty.Users("!r:x")
		if !slices.Equal(got, st.want) || pos != st.wantPos {
			t.Fatalf("%s: Users = %v, %d; want %v, %d", st.name, got, pos, st.want, st.wantPos)
		}
	}
	if got, pos := ty.Users("!other:x"); len(got) != 0 || pos != 0 {
		t.Fatalf("Users(other room) = %v, %d; want none, 0", got, pos)
	}
}

func TestTypingExpires(t *testing.T) {
	changed := make(chan streams.Position, 4)
	ty := New(func(_ string, pos streams.Position) { changed <- pos })
	defer ty.Close()
	ty.Set("!r:x", "@a:x", true, time.Millisecond)
	if p := <-changed; p != 1 {
		t.Fatalf("first change at %d, want 1", p)
	}
	select {
	case p := <-changed:
		if users, _ := ty.Users("!r:x"); len(users) != 0 || p != 2 {
			t.Fatalf("after expiry: users %v at %d, want none at 2", users, p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("typing notification did not expire")
	}
}
