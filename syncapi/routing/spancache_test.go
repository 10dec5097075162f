package routing

import (
	"fmt"
	"testing"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func TestSpanCache(t *testing.T) {
	c := newSpanCache(10, func(v string) int { return len(v) })
	c.put("@u:x", 5, 10, "abc") // no change in (5, 10]
	tests := []struct {
		name   string
		lo, hi streams.Position
		ok     bool
	}{
		{name: "inside", lo: 6, hi: 8, ok: true},
		{name: "touching the end", lo: 10, hi: 12, ok: true},
		{name: "touching the start", lo: 3, hi: 5, ok: true},
		{name: "after", lo: 20, hi: 25, ok: false},
		{name: "before", lo: 1, hi: 2, ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.put("@u:x", 5, 10, "abc")
			v, ok := c.get("@u:x", tc.lo, tc.hi)
			if ok != tc.ok || (ok && v != "abc") {
				t.Fatalf("get(%d, %d) = %q, %v; want %v", tc.lo, tc.hi, v, ok, tc.ok)
			}
		})
	}

	// A hit extends the span by the caller's quiet positions.
	c.put("@u:x", 5, 10, "abc")
	if _, ok := c.get("@u:x", 10, 15); !ok {
		t.Fatal("get(10, 15) missed")
	}
	if _, ok := c.get("@u:x", 15, 15); !ok {
		t.Fatal("get(15, 15) missed after the span was extended to 15")
	}
	if _, ok := c.get("@v:x", 5, 10); ok {
		t.Fatal("get of another user hit")
	}
	// A value read after its latest change is not cached (from > to).
	c.put("@w:x", 12, 10, "x")
	if _, ok := c.get("@w:x", 0, 20); ok {
		t.Fatal("a value changed after the position it was asked at was cached")
	}

	// The total size stays within the limit, whatever is put.
	for i := range 20 {
		c.put(fmt.Sprintf("@u%d:x", i), 0, 1, "abcd")
		if c.total > c.limit {
			t.Fatalf("total %d over the limit %d", c.total, c.limit)
		}
	}
	c.put("@big:x", 0, 1, "0123456789a")
	if _, ok := c.get("@big:x", 0, 1); ok || c.total > c.limit {
		t.Fatalf("a value over the limit was cached (total %d)", c.total)
	}
}
