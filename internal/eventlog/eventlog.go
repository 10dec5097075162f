package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Topic names a stream of T, keyed (partitioned) by a string key.
type Topic[T any] struct {
	// Name is e.g. "roomserver.output": dot-separated tokens of [A-Za-z0-9_-].
	// It becomes the stream's subject prefix.
	Name string
	// Key documents which field of T the publisher uses as the key (e.g.
	// "room_id"). It is informational only: the key is passed to Publish.
	Key string
}

// Msg is one delivered message.
type Msg[T any] struct {
	Stream string // topic name (for idempotency bookkeeping together with Seq)
	// Seq is the position in the stream, strictly increasing per topic (the
	// stream sequence). A redelivery keeps Seq.
	Seq   uint64
	Key   string
	Value T
	Time  time.Time // when the broker stored the message
	// Redelivered is set when this message was handed out before: by the
	// server (after a nak or a crash) or by an in-process retry.
	Redelivered bool
}

// RawMsg is one delivered message before decoding.
type RawMsg struct {
	Stream      string // topic name
	Seq         uint64
	Key         string
	Data        []byte
	Time        time.Time
	Redelivered bool
}

// Log is the broker connection. Implementations: JetStream ([OpenJetStream]);
// Kafka later. It is safe for concurrent use.
type Log interface {
	// Publish appends a message and returns once it is durable, with its
	// sequence. Messages of one key are ordered by sequence: a caller that
	// needs its messages in a causal order publishes them one after the other.
	Publish(ctx context.Context, topic string, key string, data []byte) (uint64, error)
	// Subscribe starts a durable consumer group on topic. handler gets raw
	// messages; see [Consume]. The subscription runs until Stop is called or
	// ctx is cancelled.
	Subscribe(ctx context.Context, topic, group string, opts ConsumeOptions, handler func(ctx context.Context, m RawMsg) error) (Subscription, error)
	// Close stops every subscription (as Stop does) and closes the
	// connection; for an embedded server it then shuts the server down.
	Close() error
}

// BatchLog is a Log that can hand a handler every message it has ready at
// once; see [ConsumeBatch]. The JetStream Log is one.
type BatchLog interface {
	Log
	// SubscribeBatch is Subscribe with a handler of several messages: up to
	// ConsumeOptions.HandlerBatch, of any keys, each key's in stream order.
	// A nil return acks them all; an error acks none (the handler must have
	// applied none of them: one transaction), and the messages are then
	// handled one per call until each succeeded or was dropped, so that the
	// one at fault is found and retried or dropped on its own.
	SubscribeBatch(ctx context.Context, topic, group string, opts ConsumeOptions, handler func(ctx context.Context, msgs []RawMsg) error) (Subscription, error)
}

// Subscription is a running consumer.
type Subscription interface {
	// Stop stops fetching, waits for in-flight handlers to finish (acking
	// those that succeed) and releases the messages it still holds un-acked,
	// so they are redelivered. It must not be called from a handler. Calling
	// it again waits for the first call to complete.
	Stop()
}

// ConsumeOptions tune a subscription. The zero value is valid.
type ConsumeOptions struct {
	// Ordered: messages with the same key are handled one at a time, in
	// publish order; different keys in parallel (up to Parallelism). When
	// false, messages may be handled concurrently regardless of key.
	Ordered     bool
	Parallelism int           // default 16: handlers running at once
	MaxBatch    int           // default 256: how many are fetched at once
	AckWait     time.Duration // default 30s: redelivered if not acked by then (crash)
	Metrics     *Metrics      // optional
	Logger      *slog.Logger  // optional; defaults to the Log's logger
	// StartAtNew: a new group starts at messages published after it is
	// created (default: from the beginning). An existing group keeps its
	// position whatever this says.
	StartAtNew bool

	// MaxPending bounds the messages delivered to this group and not yet
	// acked (the consumer's MaxAckPending); default 4096, at least MaxBatch.
	MaxPending int
	// Partitions and Partition split an ordered group between processes:
	// with Partitions = n > 1, this subscription only gets the keys of
	// partition Partition (0 <= Partition < n <= 64). See the package doc.
	Partitions int
	Partition  int
	// LagInterval is how often the lag gauge is refreshed; default 10s.
	LagInterval time.Duration
	// HandlerBatch bounds the messages given to one call of a batch handler
	// ([ConsumeBatch]); default 256. Per-message handlers ignore it.
	HandlerBatch int
	// Linger, for a batch handler in a busy period (its last call ended
	// less than Linger ago), is how long a worker waits for more messages
	// before handling fewer than HandlerBatch. A batch costs about one
	// commit whatever its size, so a consumer whose latency matters less
	// than its cost (push, counts) trades a few milliseconds for far fewer
	// commits. A message arriving while idle is handled at once. Zero: no
	// waiting.
	Linger time.Duration
	// AckAfter, when set, delays the ack of a message whose handler
	// succeeded until a call of AckAfter that began after the handler
	// returned has returned nil. It is for handlers whose commits return
	// before they are durable (PostgreSQL with synchronous_commit off):
	// AckAfter returns nil once everything committed before it was called
	// is durable (e.g. after flushing the WAL), so a database crash cannot
	// lose the effect of an acked message.
	//
	// One call covers every message that succeeded before it began, so a
	// busy group calls it far less often than it commits. Calls never
	// overlap. Lanes do not wait for it: the next messages of a key are
	// handled meanwhile, while the waiting ones are kept from redelivery as
	// if still in their handler. Messages dropped as Permanent applied
	// nothing and are acked at once.
	//
	// An error means the messages' effects may be lost, so they are not
	// acked. An ordered group then rewinds to its ack floor and handles
	// everything after it again, in order per key; nothing handled before
	// the rewind is acked meanwhile, even after a later call succeeds
	// (what it wrote may rest on what was lost). AckAfter is meant for
	// ordered groups. An unordered group leaves them to the server, which
	// redelivers them after AckWait. A call has 30s; one that takes
	// longer failed. Stop waits for a call in progress, then makes one
	// last call (of at most 10s) for the messages still waiting and
	// releases them for redelivery if it fails; after a failed call it
	// acks none of them. ctx is not cancelled with the subscription's
	// context. A group that cannot be rewound (nats-server before 2.14)
	// fails to open rather than let later messages overtake.
	AckAfter func(ctx context.Context) error
	// AckAfterEvery is the least time from the start of one AckAfter call
	// to the start of the next (default 0): a call costs a flush, and
	// what is handled meanwhile shares the next one, acked that much later.
	AckAfterEvery time.Duration
}

// Defaults for ConsumeOptions.
const (
	DefaultParallelism = 16
	DefaultMaxBatch    = 256
	DefaultAckWait     = 30 * time.Second
	DefaultMaxPending  = 4096
	DefaultLagInterval = 10 * time.Second
	// DefaultHandlerBatch is the default of ConsumeOptions.HandlerBatch.
	DefaultHandlerBatch = 256
)

// withDefaults fills in zero fields and checks the rest.
func (o ConsumeOptions) withDefaults() (ConsumeOptions, error) {
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	// The consumer could never hand out a full batch otherwise.
	o.MaxPending = max(o.MaxPending, o.MaxBatch)
	if o.LagInterval <= 0 {
		o.LagInterval = DefaultLagInterval
	}
	if o.HandlerBatch <= 0 {
		o.HandlerBatch = DefaultHandlerBatch
	}
	if o.Partitions > 1 {
		if o.Partitions > buckets {
			return o, fmt.Errorf("partitions %d: at most %d", o.Partitions, buckets)
		}
		if o.Partition < 0 || o.Partition >= o.Partitions {
			return o, fmt.Errorf("partition %d out of range [0, %d)", o.Partition, o.Partitions)
		}
	} else {
		o.Partitions, o.Partition = 0, 0
	}
	return o, nil
}

// Publish JSON-encodes v and appends it to topic t under key.
func Publish[T any](ctx context.Context, l Log, t Topic[T], key string, v T) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode message for %s: %w", t.Name, err)
	}
	return l.Publish(ctx, t.Name, key, data)
}

// AllPublisher is a Log that can publish several messages with one wait
// for all of them. The JetStream Log is one.
type AllPublisher interface {
	// PublishAll appends messages to topic (data[i] with keys[i]) and
	// returns once all are durable. Messages of one key are sent in their
	// order, and appended in it unless the broker asks for a retry (a
	// leader election), which may put a later one first: callers that
	// need the order give one key one message. After an error any of them
	// may have been appended, so the caller publishes them all again
	// (consumers ignore repeats).
	PublishAll(ctx context.Context, topic string, keys []string, data [][]byte) error
}

// PublishAll publishes vs (vs[i] with keys[i]) to t: on an AllPublisher
// with one wait for all, on another Log one after the other. Each Publish
// waits for a round trip to the broker, so a caller with several messages
// ready saves all but one; see AllPublisher for what an error leaves.
func PublishAll[T any](ctx context.Context, l Log, t Topic[T], keys []string, vs []T) error {
	if len(keys) != len(vs) {
		return fmt.Errorf("publish to %s: %d keys for %d messages", t.Name, len(keys), len(vs))
	}
	ap, ok := l.(AllPublisher)
	if !ok {
		for i, v := range vs {
			if _, err := Publish(ctx, l, t, keys[i], v); err != nil {
				return err
			}
		}
		return nil
	}
	data := make([][]byte, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode message for %s: %w", t.Name, err)
		}
		data[i] = b
	}
	return ap.PublishAll(ctx, t.Name, keys, data)
}

// Consume subscribes group to topic t and hands h the decoded messages. A
// message that does not decode into T is dropped as a Permanent error.
func Consume[T any](ctx context.Context, l Log, t Topic[T], group string, opts ConsumeOptions, h func(ctx context.Context, m Msg[T]) error) (Subscription, error) {
	return l.Subscribe(ctx, t.Name, group, opts, func(ctx context.Context, raw RawMsg) error {
		m, err := decode[T](raw)
		if err != nil {
			return Permanent(err)
		}
		return h(ctx, m)
	})
}

// ConsumeBatch is [Consume] with a handler of several messages, for handlers
// that do per transaction what they would do per message (see
// [BatchLog.SubscribeBatch]). msgs is never empty; a key's messages are in
// stream order and no key is in two calls at once (with Ordered). A message
// that does not decode fails the batch, and is dropped as Permanent when
// tried alone. On a Log that is not a BatchLog, each call gets one message.
func ConsumeBatch[T any](ctx context.Context, l Log, t Topic[T], group string, opts ConsumeOptions, h func(ctx context.Context, msgs []Msg[T]) error) (Subscription, error) {
	handler := func(ctx context.Context, raws []RawMsg) error {
		msgs := make([]Msg[T], len(raws))
		for i, raw := range raws {
			m, err := decode[T](raw)
			if err != nil {
				if len(raws) > 1 {
					return err // found and dropped when tried alone
				}
				return Permanent(err)
			}
			msgs[i] = m
		}
		return h(ctx, msgs)
	}
	if bl, ok := l.(BatchLog); ok {
		return bl.SubscribeBatch(ctx, t.Name, group, opts, handler)
	}
	return l.Subscribe(ctx, t.Name, group, opts, func(ctx context.Context, raw RawMsg) error {
		return handler(ctx, []RawMsg{raw})
	})
}

func decode[T any](raw RawMsg) (Msg[T], error) {
	m := Msg[T]{
		Stream:      raw.Stream,
		Seq:         raw.Seq,
		Key:         raw.Key,
		Time:        raw.Time,
		Redelivered: raw.Redelivered,
	}
	if err := json.Unmarshal(raw.Data, &m.Value); err != nil {
		return m, fmt.Errorf("decode %s message %d: %w", raw.Stream, raw.Seq, err)
	}
	return m, nil
}

// rewindError marks an error after which an ordered group must start over
// from its ack floor.
type rewindError struct{ err error }

func (e rewindError) Error() string { return "rewind: " + e.err.Error() }
func (e rewindError) Unwrap() error { return e.err }

// Rewind marks a handler's error as needing everything not acked handled
// again, in order: the writes of messages handled before may be lost
// (sqlutil.ErrCommitsLost), and retrying the failed message alone would
// build on that loss. An ordered group then holds its workers, drops what
// it holds and rewinds to its ack floor, as when AckAfter fails; an
// unordered group retries as for any error. Rewind(nil) is nil.
func Rewind(err error) error {
	if err == nil || IsRewind(err) {
		return err
	}
	return rewindError{err}
}

// IsRewind reports whether err, or an error it wraps, was marked by
// [Rewind].
func IsRewind(err error) bool {
	var r rewindError
	return errors.As(err, &r)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error as not worth retrying: the message is acked
// (dropped) and logged. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// [Permanent].
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
