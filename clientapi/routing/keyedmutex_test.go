package routing

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestKeyedMutex: one holder per key at a time, other keys free; a waiter
// whose context ends gives up with its error and leaves nothing behind.
func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	ctx := t.Context()
	unlock, err := k.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	other()

	waitCtx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		u, err := k.Lock(waitCtx, "a")
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a second holder got the lock (%v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter whose context ended = %v, want context.Canceled", err)
	}

	next := make(chan func(), 1)
	go func() {
		u, err := k.Lock(ctx, "a")
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		next <- u
	}()
	unlock()
	(<-next)()
	k.mu.Lock()
	left := len(k.m)
	k.mu.Unlock()
	if left != 0 {
		t.Errorf("%d keys left after every holder unlocked", left)
	}
}
