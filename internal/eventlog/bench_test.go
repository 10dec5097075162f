package eventlog

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchBackends are the embedded server and, when AXON_TEST_NATS_URL is set,
// the external one.
func benchBackends(b *testing.B, f func(b *testing.B, be *backend)) {
	b.Run("embedded", func(b *testing.B) { f(b, &backend{name: "embedded", dataDir: b.TempDir()}) })
	if url := os.Getenv("AXON_TEST_NATS_URL"); url != "" {
		b.Run("external", func(b *testing.B) {
			be := &backend{name: "external", url: url, prefix: "bench" + randomHex(b)}
			b.Cleanup(func() { deleteStreams(b, be) })
			f(b, be)
		})
	}
}

var benchPayload = []byte(`{"room_id":"!abcdefghijklmnop:example.org","event":"` + strings.Repeat("x", 200) + `"}`)

// BenchmarkPublish measures durable publishes: one publisher waiting for each
// ack, and 16 publishers at once.
func BenchmarkPublish(b *testing.B) {
	benchBackends(b, func(b *testing.B, be *backend) {
		for _, publishers := range []int{1, 16} {
			b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
				l := be.open(b)
				topic := fmt.Sprintf("bench.publish%d", publishers)
				if _, err := l.Publish(b.Context(), topic, "warm", benchPayload); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(benchPayload)))
				var next atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for range publishers {
					wg.Go(func() {
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							if _, err := l.Publish(b.Context(), topic, fmt.Sprintf("!room%d:x", i%100), benchPayload); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	})
}

// BenchmarkRoundTrip measures publish to handled-and-acked through a group:
// 16 publishers over 100 keys, 16 handlers of one message or 1 of batches.
func BenchmarkRoundTrip(b *testing.B) {
	benchBackends(b, func(b *testing.B, be *backend) {
		for _, tc := range []struct{ ordered, batch bool }{{true, false}, {false, false}, {true, true}} {
			b.Run(fmt.Sprintf("ordered=%v/batch=%v", tc.ordered, tc.batch), func(b *testing.B) {
				l := be.open(b)
				topic := fmt.Sprintf("bench.roundtrip.%v.%v", tc.ordered, tc.batch)
				var handled, calls atomic.Int64
				done := make(chan struct{})
				h := func(_ context.Context, msgs []RawMsg) error {
					calls.Add(1)
					if handled.Add(int64(len(msgs))) == int64(b.N) {
						close(done)
					}
					return nil
				}
				opts := ConsumeOptions{Ordered: tc.ordered, StartAtNew: true}
				var sub Subscription
				var err error
				if tc.batch {
					opts.Parallelism = 1
					sub, err = l.(BatchLog).SubscribeBatch(b.Context(), topic, "bench", opts, h)
				} else {
					sub, err = l.Subscribe(b.Context(), topic, "bench", opts, func(ctx context.Context, m RawMsg) error {
						return h(ctx, []RawMsg{m})
					})
				}
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Stop()
				b.SetBytes(int64(len(benchPayload)))
				b.ResetTimer()
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 16 {
					wg.Go(func() {
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							if _, err := l.Publish(b.Context(), topic, fmt.Sprintf("!room%d:x", i%100), benchPayload); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				select {
				case <-done:
				case <-time.After(time.Minute):
					b.Fatalf("handled %d of %d", handled.Load(), b.N)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(b.N)/float64(calls.Load()), "msgs/call")
			})
		}
	})
}
