package eventlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// handlerModes runs f with a per-message handler and with a batch handler.
// subscribe starts a group that records every message its handler gets.
func handlerModes(t *testing.T, f func(t *testing.T, subscribe subscribeFunc)) {
	t.Run("Consume", func(t *testing.T) {
		f(t, func(t *testing.T, l Log, group string, opts ConsumeOptions, rec *recorder[event]) Subscription {
			t.Helper()
			sub, err := Consume(t.Context(), l, testTopic, group, opts, func(_ context.Context, m Msg[event]) error {
				rec.add(m)
				return nil
			})
			if err != nil {
				t.Fatalf("Consume() = %v", err)
			}
			return sub
		})
	})
	t.Run("ConsumeBatch", func(t *testing.T) {
		f(t, func(t *testing.T, l Log, group string, opts ConsumeOptions, rec *recorder[event]) Subscription {
			t.Helper()
			opts.HandlerBatch = 4
			sub, err := ConsumeBatch(t.Context(), l, testTopic, group, opts, func(_ context.Context, msgs []Msg[event]) error {
				for _, m := range msgs {
					rec.add(m)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ConsumeBatch() = %v", err)
			}
			return sub
		})
	})
}

type subscribeFunc func(t *testing.T, l Log, group string, opts ConsumeOptions, rec *recorder[event]) Subscription

// groupInfo fetches the consumer state of group on testTopic.
func groupInfo(ctx context.Context, l Log, group string) (*jetstream.ConsumerInfo, error) {
	jl := l.(*jsLog)
	cons, err := jl.js.Consumer(ctx, jl.names.stream(testTopic.Name), group)
	if err != nil {
		return nil, fmt.Errorf("look up consumer %s: %w", group, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer %s info: %w", group, err)
	}
	return info, nil
}

// allAcked checks that group has acked everything up to last.
func allAcked(t *testing.T, l Log, group string, last uint64) func() error {
	return func() error {
		info, err := groupInfo(t.Context(), l, group)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != last {
			return fmt.Errorf("ack pending %d, pending %d, ack floor %d; want 0, 0, %d",
				info.NumAckPending, info.NumPending, info.AckFloor.Stream, last)
		}
		return nil
	}
}

// checkReplayOrder fails unless each key's messages were handled in publish
// order, where a rewind may take a key back to an earlier message but never
// skips one: after m, the next message of its key handled is the one
// published after m, or one at or before m.
func checkReplayOrder(t *testing.T, msgs []Msg[event], keys []string, seqs []uint64) {
	t.Helper()
	pos := map[uint64]int{} // seq → index among its key's messages
	for i, seq := range seqs {
		pos[seq] = i / len(keys) // publishN publishes key by key
	}
	last := map[string]int{}
	for _, m := range msgs {
		p, ok := pos[m.Seq]
		if !ok {
			t.Errorf("handled message %d, which was not published", m.Seq)
			continue
		}
		prev, seen := last[m.Key]
		if !seen {
			prev = -1
		}
		if p > prev+1 {
			t.Errorf("key %s: message %d (#%d) handled after #%d: skipped one", m.Key, m.Seq, p, prev)
		}
		last[m.Key] = p
	}
}

// failFirst is an AckAfter whose first call fails; calls counts them.
func failFirst(calls *atomic.Int32) func(context.Context) error {
	return func(context.Context) error {
		if calls.Add(1) == 1 {
			return errors.New("wal flush failed")
		}
		return nil
	}
}

// TestAckAfterWaitsForDurability: while AckAfter blocks, a key's messages
// are all handled, in order, and none is acked, except a message dropped as
// permanent; once it returns nil they are all acked, with far fewer calls
// than messages.
func TestAckAfterWaitsForDurability(t *testing.T) {
	const n = 10
	handlerModes(t, func(t *testing.T, subscribe subscribeFunc) {
		eachBackend(t, func(t *testing.T, b *backend) {
			l := b.open(t)
			badSeq, err := l.Publish(t.Context(), testTopic.Name, "k", []byte("{not json"))
			if err != nil {
				t.Fatalf("Publish() = %v", err)
			}
			seqs := publishN(t, l, testTopic, []string{"k"}, n)
			var calls atomic.Int32
			release := make(chan struct{})
			var releaseOnce sync.Once
			// Before Close stops the subscription, should the test fail early.
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			var rec recorder[event]
			subscribe(t, l, "g", ConsumeOptions{Ordered: true, AckAfter: func(ctx context.Context) error {
				calls.Add(1)
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}, &rec)

			rec.waitLen(t, n)
			if err := l.(*jsLog).nc.Flush(); err != nil {
				t.Fatalf("Flush() = %v", err)
			}
			// The permanent failure's ack was sent before the later messages
			// were handled; the others must not be acked at all.
			waitFor(t, 10*time.Second, func() error {
				info, err := groupInfo(t.Context(), l, "g")
				if err != nil {
					return err
				}
				if info.NumAckPending != n || info.AckFloor.Stream != badSeq {
					return fmt.Errorf("while AckAfter blocks: ack pending %d, ack floor %d; want %d, %d",
						info.NumAckPending, info.AckFloor.Stream, n, badSeq)
				}
				return nil
			})
			if got := calls.Load(); got != 1 {
				t.Errorf("AckAfter called %d times while the first call blocks, want 1", got)
			}
			checkReplayOrder(t, rec.snapshot(), []string{"k"}, seqs)

			releaseOnce.Do(func() { close(release) })
			waitFor(t, 20*time.Second, allAcked(t, l, "g", seqs[n-1]))
			if got := calls.Load(); got >= n {
				t.Errorf("AckAfter called %d times for a burst of %d messages, want fewer", got, n)
			}
			if got := rec.len(); got != n {
				t.Errorf("handled %d messages, want %d (each once)", got, n)
			}
		})
	})
}

// TestAckAfterFailureRewinds: when AckAfter fails, the messages it covered
// are handled again, marked Redelivered, each key in publish order, and are
// acked after a later call succeeds; nothing is lost.
func TestAckAfterFailureRewinds(t *testing.T) {
	keys := []string{"a", "b", "c"}
	handlerModes(t, func(t *testing.T, subscribe subscribeFunc) {
		eachBackend(t, func(t *testing.T, b *backend) {
			l := b.open(t)
			seqs := publishN(t, l, testTopic, keys, 4)
			var calls atomic.Int32
			var rec recorder[event]
			// One worker: the first message handled is in the first call.
			opts := ConsumeOptions{Ordered: true, Parallelism: 1, AckAfter: failFirst(&calls)}
			subscribe(t, l, "g", opts, &rec)

			waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
			msgs := rec.snapshot()
			handled := rec.seqs()
			for _, seq := range seqs {
				if handled[seq] == 0 {
					t.Errorf("message %d never handled", seq)
				}
			}
			first := msgs[0]
			again := false
			for _, m := range msgs[1:] {
				if m.Seq == first.Seq {
					again = true
					if !m.Redelivered {
						t.Errorf("message %d handled again with Redelivered false", m.Seq)
					}
				}
			}
			if !again {
				t.Errorf("message %d, whose AckAfter failed, was not handled again", first.Seq)
			}
			if got := calls.Load(); got < 2 {
				t.Errorf("AckAfter called %d times, want a failed call and a later one", got)
			}
			checkReplayOrder(t, msgs, keys, seqs)
		})
	})
}

// TestAckAfterOnStop: messages waiting for AckAfter when Stop is called are
// covered by a call Stop makes, with a deadline, and acked: the group's
// next subscription gets none of them again.
func TestAckAfterOnStop(t *testing.T) {
	handlerModes(t, func(t *testing.T, subscribe subscribeFunc) {
		eachBackend(t, func(t *testing.T, b *backend) {
			l := b.open(t)
			var (
				current   atomic.Pointer[subscription]
				mu        sync.Mutex
				deadlines []bool // per call: whether its ctx had Stop's (at most ackAfterStopTimeout)
			)
			entered := make(chan struct{})
			opts := ConsumeOptions{Ordered: true, AckAfter: func(ctx context.Context) error {
				d, ok := ctx.Deadline()
				mu.Lock()
				deadlines = append(deadlines, ok && time.Until(d) <= ackAfterStopTimeout)
				n := len(deadlines)
				mu.Unlock()
				if n == 1 {
					close(entered)
					// Until the workers are done: the rest then waits for Stop.
					<-current.Load().stopBg
				}
				return nil
			}}
			var rec recorder[event]
			sub := subscribe(t, l, "g", opts, &rec)
			current.Store(sub.(*subscription))

			seqs := publishN(t, l, testTopic, []string{"k"}, 1)
			select {
			case <-entered:
			case <-time.After(30 * time.Second):
				t.Fatal("AckAfter was not called for the first message")
			}
			seqs = append(seqs, publishN(t, l, testTopic, []string{"k"}, 5)...)
			rec.waitLen(t, len(seqs))
			waitFor(t, 10*time.Second, func() error {
				info, err := groupInfo(t.Context(), l, "g")
				if err != nil {
					return err
				}
				if info.NumAckPending != len(seqs) {
					return fmt.Errorf("before Stop: ack pending %d, want %d", info.NumAckPending, len(seqs))
				}
				return nil
			})
			sub.Stop()

			mu.Lock()
			got := append([]bool(nil), deadlines...)
			mu.Unlock()
			if len(got) != 2 || got[0] || !got[1] {
				t.Errorf("AckAfter calls had Stop's deadline %v, want [false true]: the second one made by Stop", got)
			}
			if err := allAcked(t, l, "g", seqs[len(seqs)-1])(); err != nil {
				t.Errorf("after Stop: %v", err)
			}

			after := publishN(t, l, testTopic, []string{"k"}, 1)
			var again recorder[event]
			subscribe(t, l, "g", ConsumeOptions{Ordered: true}, &again)
			waitFor(t, 20*time.Second, allAcked(t, l, "g", after[0]))
			if got := again.seqs(); len(got) != 1 || got[after[0]] != 1 {
				t.Errorf("the next subscription got %v, want only %d", got, after[0])
			}
		})
	})
}

// TestAckAfterUnordered: without Ordered, the messages of a failed AckAfter
// call come back from the server after AckWait and are acked then.
func TestAckAfterUnordered(t *testing.T) {
	handlerModes(t, func(t *testing.T, subscribe subscribeFunc) {
		eachBackend(t, func(t *testing.T, b *backend) {
			l := b.open(t)
			seqs := publishN(t, l, testTopic, []string{"a", "b"}, 3)
			var calls atomic.Int32
			var rec recorder[event]
			opts := ConsumeOptions{Parallelism: 1, AckWait: time.Second, AckAfter: failFirst(&calls)}
			subscribe(t, l, "g", opts, &rec)

			waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
			msgs := rec.snapshot()
			first := msgs[0]
			again := false
			for _, m := range msgs[1:] {
				again = again || (m.Seq == first.Seq && m.Redelivered)
			}
			if !again {
				t.Errorf("message %d, whose AckAfter failed, was not redelivered", first.Seq)
			}
			for _, seq := range seqs {
				if rec.seqs()[seq] == 0 {
					t.Errorf("message %d never handled", seq)
				}
			}
		})
	})
}

// TestAckAfterFailureAcksNothingBeforeRewind: a message handled while a
// failing AckAfter call was in progress may rest on the writes it found
// lost, so a later call that succeeds before the rewind must not ack it.
// Here that message has the lowest sequence of all (its key's handler was
// slow): acked, it would sit below the ack floor the rewind goes back to,
// and never be handled again.
func TestAckAfterFailureAcksNothingBeforeRewind(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"slow", "fast"}, 1)
		slow := seqs[0]
		failing := make(chan struct{}) // the first AckAfter call began
		var rec recorder[event]
		var calls atomic.Int32
		opts := ConsumeOptions{Ordered: true, Parallelism: 2, AckAfter: func(ctx context.Context) error {
			if calls.Add(1) > 1 {
				return nil
			}
			close(failing)
			// Fail once the slow message is handled (and waits for a call).
			deadline := time.Now().Add(10 * time.Second)
			for rec.seqs()[slow] == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond) // its handler returned
			return errors.New("commits lost")
		}}
		var once sync.Once
		_, err := Consume(t.Context(), l, testTopic, "g", opts, func(ctx context.Context, m Msg[event]) error {
			if m.Seq == slow {
				once.Do(func() {
					select {
					case <-failing:
					case <-time.After(10 * time.Second):
					}
				})
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
		handled := rec.seqs()
		if handled[slow] < 2 {
			t.Errorf("message %d handled %d times: acked though handled before the rewind", slow, handled[slow])
		}
		if handled[seqs[1]] < 2 {
			t.Errorf("message %d, whose AckAfter failed, handled %d times", seqs[1], handled[seqs[1]])
		}
	})
}

// TestHandlerRewind: a handler's Rewind error holds the group at once (no
// message is handled for the first time until the rewind) and delivers
// everything not acked again, in order; nothing is lost.
func TestHandlerRewind(t *testing.T) {
	keys := []string{"a", "b"}
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, keys, 4)
		var rec recorder[event]
		var rewound atomic.Bool
		var fresh atomic.Int32 // first-time handlings after the Rewind error
		_, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 1},
			func(_ context.Context, m Msg[event]) error {
				if rewound.Load() && !m.Redelivered {
					fresh.Add(1)
				}
				rec.add(m)
				if m.Seq == seqs[2] && !rewound.Swap(true) {
					return Rewind(errors.New("commits lost"))
				}
				return nil
			})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
		if n := fresh.Load(); n != 0 {
			t.Errorf("%d messages handled for the first time between the Rewind error and the rewind", n)
		}
		if got := rec.seqs()[seqs[2]]; got < 2 {
			t.Errorf("the message that asked for the rewind was handled %d times", got)
		}
		checkReplayOrder(t, rec.snapshot(), keys, seqs)
	})
}

// TestAckAfterFailsDuringStop: when Stop's wait for a call in progress ends
// with its failure, nothing waiting is acked (the last call is not made):
// the group's next subscription gets every message again. The message
// waiting has the lowest sequence (its key's handler was slow): acked, it
// would sit below the ack floor and never come again.
func TestAckAfterFailsDuringStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		seqs := publishN(t, l, testTopic, []string{"slow", "fast"}, 1)
		slow := seqs[0]
		release, entered := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		var rec recorder[event]
		sub, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true, Parallelism: 2,
			AckAfter: func(context.Context) error {
				if calls.Add(1) > 1 {
					return nil
				}
				close(entered)
				<-release
				return errors.New("commits lost")
			}}, func(_ context.Context, m Msg[event]) error {
			if m.Seq == slow {
				select {
				case <-entered: // the fast message's call began
				case <-time.After(10 * time.Second):
				}
			}
			rec.add(m)
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		rec.waitLen(t, len(seqs))
		stopped := make(chan struct{})
		go func() {
			sub.Stop()
			close(stopped)
		}()
		time.Sleep(200 * time.Millisecond) // Stop waits for the call
		close(release)
		<-stopped

		var again recorder[event]
		if _, err := Consume(t.Context(), l, testTopic, "g", ConsumeOptions{Ordered: true}, func(_ context.Context, m Msg[event]) error {
			again.add(m)
			return nil
		}); err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
		for _, seq := range seqs {
			if again.seqs()[seq] != 1 {
				t.Errorf("message %d handled %d times by the next subscription, want 1 (nothing acked after the failure)", seq, again.seqs()[seq])
			}
		}
	})
}

// TestRewindAskedWhileReopening: a failed AckAfter call that asks for a
// rewind while the group is being reopened (for another rewind) must not
// be lost with the iterator it drains: the group would hold its workers,
// and drop every delivery, for ever.
func TestRewindAskedWhileReopening(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		l := b.open(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		var rec recorder[event]
		var sub *subscription
		opts := ConsumeOptions{Ordered: true, Parallelism: 2, AckAfter: func(context.Context) error {
			if calls.Add(1) > 1 {
				return nil
			}
			close(entered)
			<-release
			return errors.New("commits lost")
		}}
		var asked atomic.Bool
		s, err := Consume(t.Context(), l, testTopic, "g", opts, func(_ context.Context, m Msg[event]) error {
			rec.add(m)
			if m.Key == "b" && !asked.Swap(true) {
				return Rewind(errors.New("loss found by a write"))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Consume() = %v", err)
		}
		sub = s.(*subscription)
		// Armed once b is published: the open of the rewind b asks for.
		var armed atomic.Bool
		hook := func() {
			if !armed.CompareAndSwap(true, false) {
				return
			}
			// The blocked call fails now, while this open runs, and asks
			// for a rewind of its own.
			close(release)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				sub.mu.Lock()
				wanted := sub.rewindWanted
				sub.mu.Unlock()
				if wanted {
					return
				}
			}
		}
		openHooks.Store(sub, hook)
		t.Cleanup(func() { openHooks.Delete(sub) })

		seqs := publishN(t, l, testTopic, []string{"a"}, 1)
		<-entered // a waits for the blocked call
		armed.Store(true)
		seqs = append(seqs, publishN(t, l, testTopic, []string{"b"}, 1)...)
		waitFor(t, 30*time.Second, allAcked(t, l, "g", seqs[len(seqs)-1]))
		for _, seq := range seqs {
			if rec.seqs()[seq] < 2 {
				t.Errorf("message %d handled %d times, want again after the rewinds", seq, rec.seqs()[seq])
			}
		}
	})
}
