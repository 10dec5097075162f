package eventlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPublishConsume(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		for _, ordered := range []bool{true, false} {
			t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
				l := b.open(t)
				topic := Topic[event]{Name: fmt.Sprintf("pc.ordered%v", ordered)}
				keys := []string{"!room:example.org", "", "a.b*c>d e", "ünïcödé"}
				seqs := publishN(t, l, topic, keys, 5)
				if !slices.IsSorted(seqs) || seqs[0] != 1 {
					t.Fatalf("sequences %v, want increasing from 1", seqs)
				}
				var rec recorder[event]
				_, err := Consume(t.Context(), l, topic, "g", ConsumeOptions{Ordered: ordered}, func(_ context.Context, m Msg[event]) error {
					rec.add(m)
					return nil
				})
				if err != nil {
					t.Fatalf("Consume() = %v", err)
				}
				rec.waitLen(t, len(seqs))
				for _, m := range rec.snapshot() {
					if m.Key != m.Value.Key {
						t.Errorf("message %d: Key = %q, want %q", m.Seq, m.Key, m.Value.Key)
					}
					if m.Stream != topic.Name {
						t.Errorf("message %d: Stream = %q, want %q", m.Seq, m.Stream, topic.Name)
					}
					if m.Time.IsZero() || m.Redelivered {
						t.Errorf("message %d: Time = %v, Redelivered = %v", m.Seq, m.Time, m.Redelivered)
					}
				}
				if got := rec.seqs(); len(got) != len(seqs) {
					t.Errorf("handled %d distinct messages, want %d", len(got), len(seqs))
				}
			})
		}
	})
}

// TestOrderPerKey is the correctness core: many keys, many messages, random
// transient failures, and every key must still be handled in publish order.
func TestOrderPerKey(t *testing.T) {
	const keys, perKey = 64, 40
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		var wg sync.WaitGroup
		for k := range keys {
			wg.Go(func() {
				// Concurrent publishers, one per key, so keys interleave.
				publishN(t, l, testTopic, []string{fmt.Sprintf("!r%d:x", k)}, perKey)
			})
		}
		wg.Wait()

		var (
			mu       sync.Mutex
			next     = map[string]int{}  // key → next N expected
			failed   = map[uint64]bool{} // failed once already
			inFlight = map[string]bool{} // key → a handler runs
			maxPar   atomic.Int32        // most handlers at once
			running  atomic.Int32        // handlers now
			errs     []string
			done     atomic.Int32
		)
		h := func(_ context.Context, m Msg[event]) error {
			n := running.Add(1)
			defer running.Add(-1)
			for cur := maxPar.Load(); n > cur && !maxPar.CompareAndSwap(cur, n); cur = maxPar.Load() {
			}
			mu.Lock()
			if inFlight[m.Key] {
				errs = append(errs, fmt.Sprintf("key %s handled concurrently", m.Key))
			}
			inFlight[m.Key] = true
			mu.Unlock()
			runtime.Gosched() // give another handler of the same key a chance to show up

			mu.Lock()
			defer mu.Unlock()
			inFlight[m.Key] = false
			// Fail every 7th message once, to exercise in-lane retries.
			if m.Seq%7 == 0 && !failed[m.Seq] {
				failed[m.Seq] = true
				return errors.New("transient")
			}
			if m.Value.N != next[m.Key] {
				errs = append(errs, fmt.Sprintf("key %s: got N=%d, want %d", m.Key, m.Value.N, next[m.Key]))
			}
			next[m.Key] = m.Value.N + 1
			done.Add(1)
			return nil
		}
		_, err := Consume(t.Context(), l, testTopic, "order", ConsumeOptions{Ordered: true, Parallelism: 8, MaxBatch: 64}, h)
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		waitFor(t, 30*time.Second, func() error {
			if got := done.Load(); got < keys*perKey {
				return fmt.Errorf("handled %d, want %d", got, keys*perKey)
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Error(e)
		}
		t.Logf("most handlers at once: %d", maxPar.Load())
	})
}

func TestFailingKeyDoesNotBlockOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		publishN(t, l, testTopic, []string{"bad", "good1", "good2"}, 10)
		var (
			fixed atomic.Bool
			rec   recorder[event]
		)
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 1}, func(_ context.Context, m Msg[event]) error {
			if m.Key == "bad" && !fixed.Load() {
				return errors.New("not yet")
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		// With one worker, the good keys can only get through if the
		// failing key does not hold the worker while it backs off.
		rec.waitLen(t, 20)
		for _, m := range rec.snapshot() {
			if m.Key == "bad" {
				t.Fatalf("message %d of the failing key was handled", m.Seq)
			}
		}
		fixed.Store(true)
		rec.waitLen(t, 30)
		var bad []int
		for _, m := range rec.snapshot() {
			if m.Key == "bad" {
				bad = append(bad, m.Value.N)
			}
		}
		if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(bad, want) {
			t.Errorf("failing key handled as %v, want %v", bad, want)
		}
	})
}

func TestKeysRunInParallel(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		publishN(t, l, testTopic, []string{"a", "b"}, 1)
		var started sync.WaitGroup
		started.Add(2)
		all := make(chan struct{})
		go func() { started.Wait(); close(all) }()
		var rec recorder[event]
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 2}, func(ctx context.Context, m Msg[event]) error {
			started.Done()
			// Each handler waits for the other: this only finishes if the
			// two keys are handled at the same time.
			select {
			case <-all:
			case <-ctx.Done():
				return ctx.Err()
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, 2)
	})
}

func TestRetryAfterError(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		for _, ordered := range []bool{true, false} {
			t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
				l := b.open(t)
				topic := Topic[event]{Name: fmt.Sprintf("retry.ordered%v", ordered)}
				publishN(t, l, topic, []string{"k"}, 3)
				var (
					attempts atomic.Int32
					rec      recorder[event]
				)
				_, err := Consume(t.Context(), l, topic, "g", ConsumeOptions{Ordered: ordered}, func(_ context.Context, m Msg[event]) error {
					if m.Value.N == 0 && attempts.Add(1) < 3 {
						return fmt.Errorf("attempt %d fails", attempts.Load())
					}
					rec.add(m)
					return nil
				})
				if err != nil {
					t.Fatalf("Consume() = %v", err)
				}
				rec.waitLen(t, 3)
				got := rec.snapshot()
				first := slices.IndexFunc(got, func(m Msg[event]) bool { return m.Value.N == 0 })
				if first < 0 || !got[first].Redelivered {
					t.Fatalf("message 0 after two failures: %+v, want it handled with Redelivered", got)
				}
				if ordered {
					var ns []int
					for _, m := range got {
						ns = append(ns, m.Value.N)
					}
					if !slices.Equal(ns, []int{0, 1, 2}) {
						t.Errorf("handled %v, want [0 1 2]", ns)
					}
				}
			})
		}
	})
}

func TestPermanentErrorsAck(t *testing.T) {
	const poison = 99
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		reg := prometheus.NewRegistry()
		metrics := NewMetrics(reg)
		if _, err := Publish(t.Context(), l, testTopic, "k", event{Key: "k", N: poison}); err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		if _, err := l.Publish(t.Context(), testTopic.Name, "k", []byte("{not json")); err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		publishN(t, l, testTopic, []string{"k"}, 2)

		var (
			rec   recorder[event]
			calls atomic.Int32
		)
		h := func(_ context.Context, m Msg[event]) error {
			calls.Add(1)
			if m.Value.N == poison {
				return Permanent(errors.New("poison"))
			}
			rec.add(m)
			return nil
		}
		opts := ConsumeOptions{Ordered: true, Metrics: metrics, LagInterval: 20 * time.Millisecond}
		sub, err := Consume(t.Context(), l, testTopic, "g", opts, h)
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, 2)
		sub.Stop()
		if got := calls.Load(); got != 3 {
			t.Errorf("handler called %d times, want 3 (the bad JSON never reaches it)", got)
		}
		for _, tc := range []struct {
			result string
			want   float64
		}{{resultOK, 2}, {resultPermanent, 2}, {resultError, 0}} {
			if got := counterValue(t, reg, "axon_eventlog_processed_total", map[string]string{"result": tc.result}); got != tc.want {
				t.Errorf("processed{result=%q} = %v, want %v", tc.result, got, tc.want)
			}
		}

		// Everything was acked: the group has nothing left.
		published := publishN(t, l, testTopic, []string{"k"}, 2)
		var again recorder[event]
		_, err = Consume(t.Context(), l, testTopic, "g", opts, func(_ context.Context, m Msg[event]) error {
			again.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		again.waitLen(t, 2)
		waitFor(t, 10*time.Second, lagIs(t, reg, 0))
		for _, m := range again.snapshot() {
			if m.Seq < published[0] {
				t.Errorf("message %d redelivered after a permanent error", m.Seq)
			}
		}
	})
}

func TestTwoGroupsGetEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b", "c"}, 10)
		var recs [2]recorder[event]
		for i := range recs {
			_, err := Consume(t.Context(), l, testTopic, fmt.Sprintf("group%d", i), ConsumeOptions{Ordered: i == 0}, func(_ context.Context, m Msg[event]) error {
				recs[i].add(m)
				return nil
			})
			if err != nil {
				t.Fatalf("Consume(group%d) = %v", i, err)
			}
		}
		for i := range recs {
			recs[i].waitLen(t, len(seqs))
			if got := slices.Sorted(maps.Keys(recs[i].seqs())); !slices.Equal(got, seqs) {
				t.Errorf("group%d got %v, want %v", i, got, seqs)
			}
		}
	})
}

func TestStartAtNew(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		publishN(t, l, testTopic, []string{"a"}, 3)
		var rec recorder[event]
		h := func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}
		sub, err := Consume(t.Context(), l, testTopic, "late", ConsumeOptions{StartAtNew: true}, h)
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		seqs := publishN(t, l, testTopic, []string{"a"}, 2)
		rec.waitLen(t, 2)
		sub.Stop()
		// The group keeps its position when it comes back without the option.
		more := publishN(t, l, testTopic, []string{"a"}, 1)
		if _, err := Consume(t.Context(), l, testTopic, "late", ConsumeOptions{}, h); err != nil {
			t.Fatalf("Consume() again = %v", err)
		}
		rec.waitLen(t, 3)
		if got, want := slices.Sorted(maps.Keys(rec.seqs())), append(seqs, more...); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

// TestDurablePosition: a group that stops and comes back (here through a new
// connection, as another process would) gets only what it did not ack.
func TestDurablePosition(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		first := publishN(t, l, testTopic, []string{"a", "b"}, 5)
		var rec recorder[event]
		h := func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, h); err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, len(first))
		if err := l.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}

		l = b.open(t)
		second := publishN(t, l, testTopic, []string{"a", "b"}, 5)
		var after recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			after.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() after reopen = %v", err)
		}
		after.waitLen(t, len(second))
		if got := slices.Sorted(maps.Keys(after.seqs())); !slices.Equal(got, second) {
			t.Errorf("after reopening got %v, want only %v", got, second)
		}
	})
}

// TestRedeliveryAfterStop: messages whose handler failed when the Log closed
// come back, all of them, when the group is opened again.
func TestRedeliveryAfterStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b", "c", "d"}, 10)
		cut := seqs[len(seqs)/2]
		var rec recorder[event]
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			if m.Seq > cut {
				return errors.New("crash before commit")
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, int(cut))
		if err := l.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}

		l = b.open(t)
		var after recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			after.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() after reopen = %v", err)
		}
		after.waitLen(t, len(seqs)-int(cut))
		if got, want := slices.Sorted(maps.Keys(after.seqs())), seqs[cut:]; !slices.Equal(got, want) {
			t.Errorf("after reopening got %v, want %v", got, want)
		}
		checkKeyOrder(t, after.snapshot())
	})
}

// TestRedeliveryAfterCrash: a process takes messages and dies without acking
// or releasing them; the group gets them again after AckWait.
func TestRedeliveryAfterCrash(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b", "c"}, 5)
		opts := ConsumeOptions{Ordered: true, AckWait: time.Second}
		var (
			rec     recorder[event]
			release = make(chan struct{})
		)
		crashed, err := Consume(t.Context(), l, testTopic, "g", opts, func(ctx context.Context, m Msg[event]) error {
			rec.add(m)
			<-release // stuck in the handler when the process dies
			return errors.New("dead")
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, 3) // one handler per key is running

		// Die: the connection goes away mid-handler, and with an embedded
		// server the server goes with it.
		jl := l.(*jsLog)
		jl.nc.Close()
		if b.embedded() {
			jl.shutdownServer()
		}
		close(release)
		crashed.Stop()

		l = b.open(t)
		var after recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", opts, func(_ context.Context, m Msg[event]) error {
			after.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() after crash = %v", err)
		}
		after.waitLen(t, len(seqs))
		got := after.snapshot()
		if gotSeqs := slices.Sorted(maps.Keys(after.seqs())); !slices.Equal(gotSeqs, seqs) {
			t.Errorf("after the crash got %v, want %v", gotSeqs, seqs)
		}
		checkKeyOrder(t, got)
		redelivered := 0
		for _, m := range got {
			if m.Redelivered {
				redelivered++
			}
		}
		if redelivered == 0 {
			t.Errorf("no message marked Redelivered after the crash")
		}
	})
}

// TestHeldMessagesKeepTheirDeadline: messages waiting behind a failing one
// for longer than AckWait are not redelivered by the server.
func TestHeldMessagesKeepTheirDeadline(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		publishN(t, l, testTopic, []string{"k"}, 5)
		var (
			failures atomic.Int32
			fixed    atomic.Bool
			rec      recorder[event]
		)
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, AckWait: 2 * time.Second}, func(_ context.Context, m Msg[event]) error {
			if m.Value.N == 0 && !fixed.Load() {
				failures.Add(1)
				return errors.New("not yet")
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		// Six failures take 100+200+400+800+1600ms (±20%) of backoff: past AckWait.
		waitFor(t, 20*time.Second, func() error {
			if n := failures.Load(); n < 6 {
				return fmt.Errorf("%d failures so far", n)
			}
			return nil
		})
		cons, err := l.(*jsLog).js.Consumer(t.Context(), l.(*jsLog).names.stream(testTopic.Name), "g")
		if err != nil {
			t.Fatalf("Consumer() = %v", err)
		}
		info, err := cons.Info(t.Context())
		if err != nil {
			t.Fatalf("Info() = %v", err)
		}
		if info.NumRedelivered != 0 || info.NumAckPending != 5 {
			t.Errorf("while held: NumRedelivered = %d, NumAckPending = %d, want 0 and 5", info.NumRedelivered, info.NumAckPending)
		}
		fixed.Store(true)
		rec.waitLen(t, 5)
		checkKeyOrder(t, rec.snapshot())
		if got := len(rec.seqs()); got != 5 || rec.len() != 5 {
			t.Errorf("handled %d messages (%d distinct), want 5 once each", rec.len(), got)
		}
	})
}

func TestPartitions(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		var keys []string
		for i := range 40 {
			keys = append(keys, fmt.Sprintf("!room%d:example.org", i))
		}
		seqs := publishN(t, l, testTopic, keys, 3)
		const n = 3
		var recs [n]recorder[event]
		for p := range n {
			// Each partition as its own process would be, with its own
			// connection (an embedded server has only the one).
			lp := l
			if !b.embedded() {
				lp = b.open(t)
			}
			opts := ConsumeOptions{Ordered: true, Partitions: n, Partition: p}
			if _, err := Consume(t.Context(), lp, testTopic, "g", opts, func(_ context.Context, m Msg[event]) error {
				recs[p].add(m)
				return nil
			}); err != nil {
				t.Fatalf("Consume(partition %d) = %v", p, err)
			}
		}
		waitFor(t, 20*time.Second, func() error {
			total := 0
			for p := range recs {
				total += recs[p].len()
			}
			if total < len(seqs) {
				return fmt.Errorf("handled %d, want %d", total, len(seqs))
			}
			return nil
		})
		owner := map[string]int{}
		all := map[uint64]bool{}
		for p := range recs {
			if recs[p].len() == 0 {
				t.Errorf("partition %d got nothing", p)
			}
			for _, m := range recs[p].snapshot() {
				if o, ok := owner[m.Key]; ok && o != p {
					t.Errorf("key %s in partitions %d and %d", m.Key, o, p)
				}
				owner[m.Key] = p
				all[m.Seq] = true
			}
			checkKeyOrder(t, recs[p].snapshot())
		}
		if len(all) != len(seqs) {
			t.Errorf("partitions got %d distinct messages, want %d", len(all), len(seqs))
		}
	})
}

func TestLagMetric(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		reg := prometheus.NewRegistry()
		publishN(t, l, testTopic, []string{"a", "b"}, 5)
		release := make(chan struct{})
		var rec recorder[event]
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Metrics: NewMetrics(reg), LagInterval: 20 * time.Millisecond}, func(ctx context.Context, m Msg[event]) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		waitFor(t, 10*time.Second, lagIs(t, reg, 10))
		close(release)
		rec.waitLen(t, 10)
		waitFor(t, 10*time.Second, lagIs(t, reg, 0))
		if got := histogramCount(t, reg, "axon_eventlog_handler_seconds"); got != 10 {
			t.Errorf("handler_seconds count = %d, want 10", got)
		}
	})
}

// TestStopWaitsForHandlers: a handler running when Stop is called finishes
// and its message is acked; the rest is released.
func TestStopWaitsForHandlers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"k"}, 3)
		entered := make(chan struct{})
		release := make(chan struct{})
		var finished atomic.Bool
		sub, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(ctx context.Context, m Msg[event]) error {
			if m.Value.N > 0 {
				return errors.New("never acked here")
			}
			close(entered)
			<-release
			finished.Store(true)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		<-entered
		stopped := make(chan struct{})
		go func() { sub.Stop(); close(stopped) }()
		waitFor(t, 10*time.Second, func() error {
			if !sub.(*subscription).isStopping() {
				return errors.New("not stopping yet")
			}
			return nil
		})
		close(release)
		<-stopped
		if !finished.Load() {
			t.Fatal("Stop returned before the handler finished")
		}
		sub.Stop() // idempotent
		// Acks made while stopping are confirmed by the server before Stop
		// returns: a group opened now does not get message 1 again.

		var rec recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() again = %v", err)
		}
		rec.waitLen(t, 2)
		if got := slices.Sorted(maps.Keys(rec.seqs())); !slices.Equal(got, seqs[1:]) {
			t.Errorf("after Stop got %v, want %v", got, seqs[1:])
		}
	})
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	b := &backend{name: "embedded", dataDir: dir}
	l := b.open(t)
	first := publishN(t, l, testTopic, []string{"a"}, 3)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	l = b.open(t)
	second := publishN(t, l, testTopic, []string{"a"}, 3)
	if second[0] != first[len(first)-1]+1 {
		t.Errorf("after restart sequences continue at %d, want %d", second[0], first[len(first)-1]+1)
	}
	var rec recorder[event]
	if _, err := Consume(t.Context(), l, testTopic, "fresh", ConsumeOptions{}, func(_ context.Context, m Msg[event]) error {
		rec.add(m)
		return nil
	}); err != nil {
		t.Fatalf("Consume() = %v", err)
	}
	rec.waitLen(t, 6)
	if got, want := slices.Sorted(maps.Keys(rec.seqs())), append(first, second...); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestOpenAndSubscribeErrors(t *testing.T) {
	l := (&backend{dataDir: t.TempDir()}).open(t)
	h := func(context.Context, RawMsg) error { return nil }
	tests := []struct {
		name  string
		topic string
		group string
		opts  ConsumeOptions
	}{
		{"empty topic", "", "g", ConsumeOptions{}},
		{"bad topic", "a b", "g", ConsumeOptions{}},
		{"empty token", "a..b", "g", ConsumeOptions{}},
		{"wildcard", "a.*", "g", ConsumeOptions{}},
		{"empty group", "ok", "", ConsumeOptions{}},
		{"too many partitions", "ok", "g", ConsumeOptions{Partitions: 65}},
		{"partition out of range", "ok", "g", ConsumeOptions{Partitions: 4, Partition: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if sub, err := l.Subscribe(t.Context(), tc.topic, tc.group, tc.opts, h); err == nil {
				sub.Stop()
				t.Errorf("Subscribe(%q, %q, %+v) succeeded, want an error", tc.topic, tc.group, tc.opts)
			}
		})
	}
	if _, err := l.Publish(t.Context(), "a b", "k", nil); err == nil {
		t.Errorf("Publish to a bad topic succeeded")
	}
	// "x.y" and "x_y" would share a stream name.
	if _, err := l.Publish(t.Context(), "x.y", "k", nil); err != nil {
		t.Fatalf("Publish(x.y) = %v", err)
	}
	if _, err := l.Publish(t.Context(), "x_y", "k", nil); err == nil || !strings.Contains(err.Error(), "collision") {
		t.Errorf("Publish(x_y) = %v, want a collision error", err)
	}
	if _, err := OpenJetStream(t.Context(), JetStreamConfig{}, nil); err == nil {
		t.Errorf("OpenJetStream without URL or DataDir succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := l.Publish(t.Context(), "ok", "k", nil); err == nil {
		t.Errorf("Publish after Close succeeded")
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"permanent", Permanent(base), true},
		{"wrapped", fmt.Errorf("handle: %w", Permanent(base)), true},
		{"twice", Permanent(Permanent(base)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if tc.err != nil && !errors.Is(tc.err, base) {
				t.Errorf("errors.Is(%v, base) = false", tc.err)
			}
		})
	}
	if Permanent(nil) != nil {
		t.Errorf("Permanent(nil) != nil")
	}
}

// checkKeyOrder fails if, within a key, a message was first handled after a
// later one.
func checkKeyOrder(t *testing.T, msgs []Msg[event]) {
	t.Helper()
	last := map[string]uint64{}
	seen := map[uint64]bool{}
	for _, m := range msgs {
		if seen[m.Seq] {
			continue // a redelivery; idempotent handlers skip it
		}
		seen[m.Seq] = true
		if m.Seq < last[m.Key] {
			t.Errorf("key %s: message %d handled after %d", m.Key, m.Seq, last[m.Key])
		}
		last[m.Key] = m.Seq
	}
}

// lagIs checks the lag gauge (all groups summed).
func lagIs(t *testing.T, reg *prometheus.Registry, want float64) func() error {
	return func() error {
		mfs, err := reg.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if mf.GetName() == "axon_eventlog_consumer_lag" {
				var sum float64
				for _, m := range mf.GetMetric() {
					sum += m.GetGauge().GetValue()
				}
				if sum != want {
					return fmt.Errorf("lag = %v, want %v", sum, want)
				}
				return nil
			}
		}
		return errors.New("no lag gauge yet")
	}
}

// counterValue sums a counter over the series matching labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestRewindAfterLeftovers: another process of the group took the first
// messages and died. Without a rewind they would come back after AckWait,
// behind the later messages of their key.
func TestRewindAfterLeftovers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		opts := ConsumeOptions{Ordered: true} // AckWait 30s: longer than the test may wait
		// Create the group, then steal two deliveries as a dying process would.
		sub, err := Consume(t.Context(), l, testTopic, "g", opts, func(context.Context, Msg[event]) error { return nil })
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		sub.Stop()
		seqs := publishN(t, l, testTopic, []string{"k"}, 6)
		jl := l.(*jsLog)
		stream := jl.names.stream(testTopic.Name)
		cons, err := jl.js.Consumer(t.Context(), stream, "g")
		if err != nil {
			t.Fatalf("Consumer() = %v", err)
		}
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("Fetch() = %v", err)
		}
		stolen := 0
		for range batch.Messages() {
			stolen++
		}
		if stolen != 2 {
			t.Fatalf("stole %d messages, want 2", stolen)
		}

		var rec recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", opts, func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, len(seqs))
		var got []uint64
		for _, m := range rec.snapshot() {
			got = append(got, m.Seq)
			if (m.Seq <= seqs[1]) != m.Redelivered {
				t.Errorf("message %d: Redelivered = %v", m.Seq, m.Redelivered)
			}
		}
		if !slices.Equal(got, seqs) {
			t.Errorf("handled %v, want %v", got, seqs)
		}
	})
}

// TestRewindAfterDeliveryGap: deliveries lost on the way (here: pretended
// lost by moving the expected delivery sequence) make the subscription drop
// what it holds and rewind; every key stays in order, nothing is lost, and a
// key that was backing off does not run twice.
func TestRewindAfterDeliveryGap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		keys := []string{"a", "b", "c"}
		publishN(t, l, testTopic, keys, 4)
		var (
			rec      recorder[event]
			failures atomic.Int32
			release  = make(chan struct{})
		)
		sub, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(ctx context.Context, m Msg[event]) error {
			if m.Key == "a" && m.Value.N == 1 {
				select {
				case <-release:
				default:
					failures.Add(1)
					return errors.New("not yet")
				}
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, 9) // all but a1..a3
		waitFor(t, 10*time.Second, func() error {
			if failures.Load() == 0 {
				return errors.New("a1 not tried yet")
			}
			return nil
		})
		s := sub.(*subscription)
		s.mu.Lock()
		s.lastDelivery-- // the next delivery will look like one went missing
		s.mu.Unlock()
		close(release)
		more := publishN(t, l, testTopic, keys, 1)
		waitFor(t, 20*time.Second, func() error {
			got := rec.seqs()
			for _, seq := range more {
				if got[seq] == 0 {
					return fmt.Errorf("message %d not handled yet", seq)
				}
			}
			if len(got) != 15 {
				return fmt.Errorf("handled %d distinct messages, want 15", len(got))
			}
			return nil
		})
		checkKeyOrder(t, rec.snapshot())
		s.mu.Lock()
		reset := !s.lastReset.IsZero()
		s.mu.Unlock()
		if !reset {
			t.Errorf("no rewind after the gap")
		}
	})
}

// TestReopenAfterConsumerDeleted: when the consumer disappears under a
// running subscription (an operator deleted it), the subscription makes a new
// one and carries on; the group starts over, which idempotent handlers absorb.
func TestReopenAfterConsumerDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		first := publishN(t, l, testTopic, []string{"a", "b"}, 3)
		var rec recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, len(first))
		jl := l.(*jsLog)
		if err := jl.js.DeleteConsumer(t.Context(), jl.names.stream(testTopic.Name), "g"); err != nil {
			t.Fatalf("DeleteConsumer() = %v", err)
		}
		second := publishN(t, l, testTopic, []string{"a", "b"}, 3)
		waitFor(t, 20*time.Second, func() error {
			if got := rec.seqs(); got[second[len(second)-1]] == 0 || len(got) != len(first)+len(second) {
				return fmt.Errorf("handled %d distinct messages, want %d", len(got), len(first)+len(second))
			}
			return nil
		})
		checkKeyOrder(t, rec.snapshot())
	})
}

// TestBrokerRestart: the server a Log connects to by URL goes away in the
// middle of a run and comes back on the same store. Deliveries in flight
// are lost on the way; nothing may be lost for good and every key must
// stay in order.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func(port int) *server.Server {
		srv, err := server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
		})
		if err != nil {
			t.Fatalf("NewServer() = %v", err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		return srv
	}
	srv := start(-1)
	port := srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { srv.Shutdown() })

	b := &backend{name: "restarted", url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	l := b.open(t)
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("!r%d:x", i))
	}
	seqs := publishN(t, l, testTopic, keys, 30)
	var rec recorder[event]
	gate := make(chan struct{}, 1)
	if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, MaxBatch: 32, AckWait: 2 * time.Second}, func(ctx context.Context, m Msg[event]) error {
		select {
		case gate <- struct{}{}: // one handler at a time, slowly enough to be cut off
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-gate }()
		rec.add(m)
		return nil
	}); err != nil {
		t.Fatalf("Consume() = %v", err)
	}
	rec.waitLen(t, 50)
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = start(port)

	waitFor(t, 60*time.Second, func() error {
		if got := len(rec.seqs()); got < len(seqs) {
			return fmt.Errorf("handled %d distinct messages, want %d", got, len(seqs))
		}
		return nil
	})
	checkKeyOrder(t, rec.snapshot())
}

// TestForcedReconnects: the connection drops again and again while messages
// flow (deliveries in flight are lost on the way); nothing is lost for good
// and every key stays in order.
func TestForcedReconnects(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		var keys []string
		for i := range 20 {
			keys = append(keys, fmt.Sprintf("!r%d:x", i))
		}
		seqs := publishN(t, l, testTopic, keys, 50)
		var rec recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, MaxBatch: 16, AckWait: 2 * time.Second}, func(ctx context.Context, m Msg[event]) error {
			rec.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		nc := l.(*jsLog).nc
		for i := 1; i <= 5; i++ {
			rec.waitLen(t, i*100)
			if err := nc.ForceReconnect(); err != nil {
				t.Fatalf("ForceReconnect() = %v", err)
			}
		}
		waitFor(t, 60*time.Second, func() error {
			if got := len(rec.seqs()); got < len(seqs) {
				return fmt.Errorf("handled %d distinct messages, want %d", got, len(seqs))
			}
			return nil
		})
		checkKeyOrder(t, rec.snapshot())
	})
}
