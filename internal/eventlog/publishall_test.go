package eventlog

import (
	"context"
	"slices"
	"testing"
)

// TestPublishAll: every message arrives, once, each key's in the order
// given, whether the Log publishes them together (JetStream) or one after
// the other (a Log that cannot).
func TestPublishAll(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		check := func(t *testing.T, pub Log, group string) {
			var keys []string
			var vs []event
			for i := range 12 {
				k := []string{"a", "b", "c"}[i%3]
				keys, vs = append(keys, k), append(vs, event{Key: k, N: i})
			}
			var rec recorder[event]
			if _, err := Consume(t.Context(), l, testTopic, group, ConsumeOptions{Ordered: true, StartAtNew: true}, func(_ context.Context, m Msg[event]) error {
				rec.add(m)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			before := len(rec.snapshot())
			if err := PublishAll(t.Context(), pub, testTopic, keys, vs); err != nil {
				t.Fatalf("PublishAll() = %v", err)
			}
			rec.waitLen(t, before+len(vs))
			if n := len(rec.snapshot()); n != before+len(vs) {
				t.Errorf("%d messages handled, want %d", n-before, len(vs))
			}
			got := map[string][]int{}
			for _, m := range rec.snapshot()[before:] {
				got[m.Key] = append(got[m.Key], m.Value.N)
			}
			for _, k := range []string{"a", "b", "c"} {
				var want []int
				for i, v := range vs {
					if keys[i] == k {
						want = append(want, v.N)
					}
				}
				if !slices.Equal(got[k], want) {
					t.Errorf("key %s: got %v, want %v", k, got[k], want)
				}
			}
		}
		t.Run("together", func(t *testing.T) {
			if _, ok := l.(AllPublisher); !ok {
				t.Fatal("the JetStream Log is not an AllPublisher")
			}
			check(t, l, "together")
		})
		t.Run("one by one", func(t *testing.T) { check(t, publishOnly{l}, "onebyone") })
		if err := PublishAll(t.Context(), l, testTopic, []string{"a"}, nil); err == nil {
			t.Error("PublishAll with more keys than messages succeeded")
		}
	})
}

// publishOnly hides a Log's AllPublisher.
type publishOnly struct{ Log }
