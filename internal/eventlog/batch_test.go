package eventlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// txStore stands for a database that a batch handler writes in one
// transaction: a batch applies wholly or not at all.
type txStore struct {
	mu      sync.Mutex
	applied map[string][]int // key → N in the order applied
	seen    map[uint64]int   // seq → times applied
	calls   []int            // messages per successful call
	running map[string]bool  // keys in a running call
	errs    []string
}

func newTxStore() *txStore {
	return &txStore{applied: map[string][]int{}, seen: map[uint64]int{}, running: map[string]bool{}}
}

// begin marks the keys of msgs as running, reporting a key in two calls.
func (s *txStore) begin(msgs []Msg[event]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keysOf(msgs) {
		if s.running[k] {
			s.errs = append(s.errs, fmt.Sprintf("key %s in two running batches", k))
		}
		s.running[k] = true
	}
}

func (s *txStore) end(msgs []Msg[event]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keysOf(msgs) {
		s.running[k] = false
	}
}

// commit applies msgs, checking each key's order within the batch.
func (s *txStore) commit(msgs []Msg[event]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]uint64{}
	for _, m := range msgs {
		if m.Seq <= last[m.Key] {
			s.errs = append(s.errs, fmt.Sprintf("key %s: %d after %d in one batch", m.Key, m.Seq, last[m.Key]))
		}
		last[m.Key] = m.Seq
		s.applied[m.Key] = append(s.applied[m.Key], m.Value.N)
		s.seen[m.Seq]++
	}
	s.calls = append(s.calls, len(msgs))
}

func (s *txStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ns := range s.applied {
		n += len(ns)
	}
	return n
}

func (s *txStore) waitTotal(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		if got := s.total(); got < n {
			return fmt.Errorf("applied %d, want %d", got, n)
		}
		return nil
	})
}

// check reports the errors seen and that every key got want[key] in order,
// each message once.
func (s *txStore) check(t *testing.T, want map[string][]int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Error(e)
	}
	for k, w := range want {
		if got := s.applied[k]; !slices.Equal(got, w) {
			t.Errorf("key %q applied %v, want %v", k, got, w)
		}
	}
	for seq, n := range s.seen {
		if n != 1 {
			t.Errorf("message %d applied %d times", seq, n)
		}
	}
}

func keysOf(msgs []Msg[event]) []string {
	var ks []string
	for _, m := range msgs {
		if !slices.Contains(ks, m.Key) {
			ks = append(ks, m.Key)
		}
	}
	return ks
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestBatchOrderPerKey: many keys, batches that fail now and then (and
// apply nothing when they do), and every key still applied once, in order.
func TestBatchOrderPerKey(t *testing.T) {
	const keys, perKey = 32, 30
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		var wg sync.WaitGroup
		want := map[string][]int{}
		for k := range keys {
			key := fmt.Sprintf("!r%d:x", k)
			want[key] = upTo(perKey)
			wg.Go(func() { publishN(t, l, testTopic, []string{key}, perKey) })
		}
		wg.Wait()

		st := newTxStore()
		var failedMu sync.Mutex
		failed := map[uint64]bool{}
		h := func(_ context.Context, msgs []Msg[event]) error {
			st.begin(msgs)
			defer st.end(msgs)
			// Every 11th message fails the call it is in, once.
			failedMu.Lock()
			for _, m := range msgs {
				if m.Seq%11 == 0 && !failed[m.Seq] {
					failed[m.Seq] = true
					failedMu.Unlock()
					return errors.New("transient")
				}
			}
			failedMu.Unlock()
			st.commit(msgs)
			return nil
		}
		_, err := ConsumeBatch(t.Context(), l, testTopic, "batch", ConsumeOptions{Ordered: true, Parallelism: 4, HandlerBatch: 50}, h)
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		st.waitTotal(t, keys*perKey)
		st.check(t, want)
		st.mu.Lock()
		defer st.mu.Unlock()
		if most := slices.Max(st.calls); most < 2 || most > 50 {
			t.Errorf("largest batch %d messages, want 2..50", most)
		}
	})
}

// TestBatchFailureInTheMiddle: a message that fails a few times fails the
// batches holding it; nothing is acked until applied, nothing is lost or
// reordered, and the others of its batch are not held back for good.
func TestBatchFailureInTheMiddle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		keys := []string{"a", "b", "c"}
		seqs := publishN(t, l, testTopic, keys, 5)
		bad := seqs[7] // in the middle of key b's messages
		st := newTxStore()
		var attempts atomic.Int32 // calls holding the bad message
		h := func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				if m.Seq == bad && attempts.Add(1) <= 3 {
					return errors.New("not yet")
				}
			}
			st.commit(msgs)
			return nil
		}
		_, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 2}, h)
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		st.waitTotal(t, len(seqs))
		st.check(t, map[string][]int{"a": upTo(5), "b": upTo(5), "c": upTo(5)})
		if got := attempts.Load(); got != 4 {
			t.Errorf("the failing message was in %d calls, want 4 (3 failures, then applied and acked)", got)
		}
	})
}

// TestBatchPermanent: a poison message and one that does not decode are
// dropped alone; the rest of their batches is applied and acked.
func TestBatchPermanent(t *testing.T) {
	const poison = 99
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		reg := prometheus.NewRegistry()
		publishN(t, l, testTopic, []string{"k", "j"}, 2)
		if _, err := Publish(t.Context(), l, testTopic, "k", event{Key: "k", N: poison}); err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		if _, err := l.Publish(t.Context(), testTopic.Name, "j", []byte("{not json")); err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		// Later messages of the same keys, published before the consumer
		// starts, so that the poison lands in batches with others.
		for n := 2; n < 4; n++ {
			for _, k := range []string{"k", "j"} {
				if _, err := Publish(t.Context(), l, testTopic, k, event{Key: k, N: n}); err != nil {
					t.Fatalf("Publish() = %v", err)
				}
			}
		}
		st := newTxStore()
		h := func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				if m.Value.N == poison {
					return Permanent(errors.New("poison"))
				}
			}
			st.commit(msgs)
			return nil
		}
		opts := ConsumeOptions{Ordered: true, Metrics: NewMetrics(reg), LagInterval: 20 * time.Millisecond}
		sub, err := ConsumeBatch(t.Context(), l, testTopic, "g", opts, h)
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		st.waitTotal(t, 8)
		waitFor(t, 10*time.Second, lagIs(t, reg, 0))
		sub.Stop()
		st.check(t, map[string][]int{"k": upTo(4), "j": upTo(4)})
		if got := counterValue(t, reg, "axon_eventlog_processed_total", map[string]string{"result": resultPermanent}); got != 2 {
			t.Errorf("processed{result=permanent} = %v, want 2", got)
		}
		if got := counterValue(t, reg, "axon_eventlog_processed_total", map[string]string{"result": resultOK}); got != 8 {
			t.Errorf("processed{result=ok} = %v, want 8", got)
		}
	})
}

// TestBatchAckOnlyAfterSuccess: a key whose batches keep failing keeps its
// messages un-acked; Stop hands them back and the next subscription gets
// them, and only them.
func TestBatchAckOnlyAfterSuccess(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		// The good key first: the rewind at the next start replays what
		// lies above the ack floor, and the floor must be able to pass it.
		publishN(t, l, testTopic, []string{"good"}, 4)
		badSeqs := publishN(t, l, testTopic, []string{"bad"}, 4)
		st := newTxStore()
		h := func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				if m.Key == "bad" {
					return errors.New("down")
				}
			}
			st.commit(msgs)
			return nil
		}
		sub, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, h)
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		st.waitTotal(t, 4)
		sub.Stop()
		st.check(t, map[string][]int{"good": upTo(4), "bad": nil})

		after := newTxStore()
		if _, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, msgs []Msg[event]) error {
			after.commit(msgs)
			return nil
		}); err != nil {
			t.Fatalf("ConsumeBatch() again = %v", err)
		}
		after.waitTotal(t, 4)
		after.check(t, map[string][]int{"good": nil, "bad": upTo(4)})
		after.mu.Lock()
		defer after.mu.Unlock()
		if got := slices.Sorted(maps.Keys(after.seen)); !slices.Equal(got, badSeqs) {
			t.Errorf("after Stop got %v, want %v", got, badSeqs)
		}
	})
}

// TestBatchStop: Stop waits for a running batch and acks it; what was not
// handled comes to the next subscription, in order.
func TestBatchStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b"}, 10)
		entered := make(chan struct{})
		release := make(chan struct{})
		var (
			once  sync.Once
			first []uint64
		)
		sub, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 1}, func(_ context.Context, msgs []Msg[event]) error {
			handled := false
			once.Do(func() {
				for _, m := range msgs {
					first = append(first, m.Seq)
				}
				close(entered)
				<-release
				handled = true
			})
			if !handled {
				return errors.New("only the first batch is acked here")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
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
		select {
		case <-stopped:
			t.Fatal("Stop returned while a batch was running")
		default:
		}
		close(release)
		<-stopped

		rest := slices.DeleteFunc(slices.Clone(seqs), func(s uint64) bool { return slices.Contains(first, s) })
		var rec recorder[event]
		if _, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				rec.add(m)
			}
			return nil
		}); err != nil {
			t.Fatalf("ConsumeBatch() again = %v", err)
		}
		rec.waitLen(t, len(rest))
		if got := slices.Sorted(maps.Keys(rec.seqs())); !slices.Equal(got, rest) {
			t.Errorf("after Stop got %v, want %v (the first batch was %v)", got, rest, first)
		}
		checkKeyOrder(t, rec.snapshot())
	})
}

// TestBatchRedeliveryAfterCrash: a process dies holding a batch; the group
// gets everything again, each key in order.
func TestBatchRedeliveryAfterCrash(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b", "c"}, 5)
		opts := ConsumeOptions{Ordered: true, AckWait: time.Second}
		entered := make(chan struct{})
		var once sync.Once
		release := make(chan struct{})
		crashed, err := ConsumeBatch(t.Context(), l, testTopic, "g", opts, func(ctx context.Context, msgs []Msg[event]) error {
			once.Do(func() { close(entered) })
			<-release // stuck in the handler when the process dies
			return errors.New("dead")
		})
		if err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		<-entered
		jl := l.(*jsLog)
		jl.nc.Close()
		if b.embedded() {
			jl.shutdownServer()
		}
		close(release)
		crashed.Stop()

		l = b.open(t)
		var rec recorder[event]
		if _, err := ConsumeBatch(t.Context(), l, testTopic, "g", opts, func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				rec.add(m)
			}
			return nil
		}); err != nil {
			t.Fatalf("ConsumeBatch() after crash = %v", err)
		}
		rec.waitLen(t, len(seqs))
		if got := slices.Sorted(maps.Keys(rec.seqs())); !slices.Equal(got, seqs) {
			t.Errorf("after the crash got %v, want %v", got, seqs)
		}
		checkKeyOrder(t, rec.snapshot())
	})
}

// TestBatchUnordered: without Ordered, batches take any messages, and a
// failed batch's messages are retried alone (through the server's
// redelivery) until applied.
func TestBatchUnordered(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"a", "b", "c"}, 10)
		st := newTxStore()
		var failedOnce atomic.Bool
		h := func(_ context.Context, msgs []Msg[event]) error {
			for _, m := range msgs {
				if m.Seq == seqs[4] && !failedOnce.Swap(true) {
					return errors.New("transient")
				}
			}
			st.commit(msgs)
			return nil
		}
		if _, err := ConsumeBatch(t.Context(), l, testTopic, "g", ConsumeOptions{Parallelism: 2}, h); err != nil {
			t.Fatalf("ConsumeBatch() = %v", err)
		}
		st.waitTotal(t, len(seqs))
		st.mu.Lock()
		defer st.mu.Unlock()
		if got := slices.Sorted(maps.Keys(st.seen)); !slices.Equal(got, seqs) {
			t.Errorf("applied %v, want %v", got, seqs)
		}
		for seq, n := range st.seen {
			if n != 1 {
				t.Errorf("message %d applied %d times", seq, n)
			}
		}
	})
}

// lingering subscribes a batch consumer with opts (one worker, an hour's
// Linger) and hands it one message while it is idle, which it must handle
// at once: were that lingered over, the test would time out. The busy
// period starts when it returns.
func lingering(t *testing.T, l Log, group string, opts ConsumeOptions) (*txStore, Subscription) {
	t.Helper()
	st := newTxStore()
	firstDone := make(chan struct{})
	var once sync.Once
	h := func(_ context.Context, msgs []Msg[event]) error {
		st.commit(msgs)
		once.Do(func() { close(firstDone) })
		return nil
	}
	opts.Ordered, opts.Parallelism, opts.Linger = true, 1, time.Hour
	sub, err := ConsumeBatch(t.Context(), l, testTopic, group, opts, h)
	if err != nil {
		t.Fatalf("ConsumeBatch() = %v", err)
	}
	publishN(t, l, testTopic, []string{"a"}, 1)
	select {
	case <-firstDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the first message, sent while idle, was not handled")
	}
	return st, sub
}

// TestBatchLinger: a message arriving while the handler is idle is handled
// at once, however long Linger is; messages arriving in a busy period are
// gathered into one batch; and Stop does not wait out a linger.
func TestBatchLinger(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		st, sub := lingering(t, l, "linger", ConsumeOptions{})
		// Busy period: each message alone would be a batch of one without
		// Linger; with it they wait together until Stop.
		for i := range 5 {
			if _, err := Publish(t.Context(), l, testTopic, "b", event{Key: "b", N: i}); err != nil {
				t.Fatalf("Publish() = %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		stopped := make(chan struct{})
		go func() { sub.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("Stop waited for the linger")
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.calls) != 1 || st.calls[0] != 1 {
			t.Errorf("calls %v: want only the first message handled before Stop", st.calls)
		}
	})
}

// TestBatchLingerGathers: in a busy period the messages arriving while a
// worker lingers are handled in one call, which starts as soon as a whole
// batch (HandlerBatch) is ready, however long Linger is.
func TestBatchLingerGathers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		st, _ := lingering(t, l, "gather", ConsumeOptions{HandlerBatch: 5})
		for i := range 5 {
			if _, err := Publish(t.Context(), l, testTopic, "b", event{Key: "b", N: i}); err != nil {
				t.Fatalf("Publish() = %v", err)
			}
		}
		st.waitTotal(t, 6)
		st.check(t, map[string][]int{"a": upTo(1), "b": upTo(5)})
		st.mu.Lock()
		defer st.mu.Unlock()
		if !slices.Equal(st.calls, []int{1, 5}) {
			t.Errorf("calls %v, want [1 5]", st.calls)
		}
	})
}
