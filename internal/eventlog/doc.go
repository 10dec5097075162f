// Package eventlog is the log between Axon's components: durable topics of
// keyed messages, consumed by durable groups, at least once.
//
// It is the only package that knows about the broker. Components declare a
// [Topic] next to the type it carries, publish with [Publish] and consume with
// [Consume]; the handler is a function from one message to an error, and this
// package owns fetching, acking, retrying with backoff, redelivery and
// shutdown. [ConsumeBatch] gives a handler many messages at once (see
// Batches). [OpenJetStream] gives the NATS JetStream implementation of [Log],
// either on a server embedded in the process (the monolith) or on an external
// server or cluster (the polylith). A Kafka implementation must fit the same
// [Log] interface.
//
// # Contract for consumers
//
// Delivery is at least once. A message is acked only after its handler
// returned nil (or a [Permanent] error), so a crash between the handler's
// commit and the ack delivers it again: handlers record (Msg.Stream, Msg.Seq)
// in the same transaction as their effect and skip what they have seen. Seq is
// the stream sequence: unique and increasing per topic, and a redelivery keeps
// it.
//
// A handler error that is not [Permanent] is retried with exponential backoff
// (from 100ms, doubling, capped at 30s, with jitter) forever; a Permanent
// error acks and logs the message (a poison message must not stop the
// consumer). A message that does not decode as JSON in [Consume] is Permanent.
//
// With ConsumeOptions.Ordered, messages with the same key are handled one at
// a time in stream order, and different keys run in parallel (up to
// Parallelism handlers at once). A failing message for key K blocks the later
// messages for K, and only those: other keys keep flowing.
//
// # Batches
//
// [ConsumeBatch] hands the handler every message a worker can take at once
// (up to ConsumeOptions.HandlerBatch), for handlers that pay per
// transaction: one commit for many messages. The batch holds the first
// ready key and every other ready key (with Ordered, each key's queued
// messages in stream order, and a key is never in two batches at once).
// The contract is all or nothing: nil acks every message of the batch; an
// error means none was applied (the handler rolled its one transaction
// back). Then the messages of the batch are handled one per call, each as
// a per-message handler would be (backoff, Permanent), until each has
// succeeded or been dropped; then the keys batch again. So a poison
// message costs one failed batch and is dropped alone, and a key's order
// holds across the failure. Everything else (heartbeats, redelivery,
// rewinds, Stop) treats the messages of a batch as it treats one. Metrics
// count messages; the latency histogram observes handler calls.
//
// # How the JetStream implementation works
//
// Each topic is one stream (retention by limits, so every group sees every
// message; MaxAge 7 days by default; file storage). Its subjects are
//
//	<prefix>.<topic>.<bucket>.<key>
//
// where <key> is the key in unpadded base64url (room IDs such as "!a:b.c" hold
// characters that subjects cannot), or "_" for the empty key, which no
// base64url text can be, and <bucket> is fnv32a(key) mod 64. The key is read
// back from the subject, so no header is needed. Topic names are dot-separated
// tokens of [A-Za-z0-9_-]; one topic must not be a dot-prefix of another, and
// "a.b" and "a_b" cannot coexist (both map to the stream "a_b"; this is
// detected and reported when the stream is opened). Stream settings are
// chosen by whoever creates the stream first and are not changed afterwards.
//
// A group is one durable pull consumer with explicit acks, unlimited
// deliveries and MaxAckPending = ConsumeOptions.MaxPending. One goroutine
// pulls batches of up to MaxBatch and dispatches them: in ordered mode into a
// FIFO per key, and a pool of Parallelism workers takes whichever key is ready.
// A key is handed to one worker at a time, so per-key order holds. When a
// handler fails, its key goes into backoff without holding a worker; the
// message and everything queued behind it for that key stay un-acked in memory
// and a heartbeat keeps their ack deadlines alive (InProgress every
// AckWait/5 or 2*AckWait/5), so the server does not redeliver them
// behind our back and later messages for the key cannot overtake the failing
// one. A redelivery of a sequence we already hold (after a lost heartbeat) is
// merged with the held copy instead of being handled twice; a lower sequence
// arriving late for a key is queued before the higher ones still waiting.
// Memory is bounded by MaxPending: once that many messages are un-acked the
// server stops delivering, so a key that fails for a long time eventually
// stalls the whole group (visible in the lag gauge) rather than growing
// without bound.
//
// The server redelivers a message it gave out and never heard back about
// only when its ack deadline passes, while it hands out later messages at
// once; left alone, that breaks the order of a key whenever deliveries get
// lost: a process of the group crashed holding some, a reconnect dropped
// some in flight (the nats.go pull iterator can also drop a burst as a
// "slow consumer"). So an ordered subscription rewinds its consumer to the
// ack floor (JetStream's consumer reset, nats-server 2.14+) whenever the
// order can no longer be trusted, and the server delivers everything after
// the floor again, in stream order:
//   - at start, if the consumer has messages pending from an earlier run;
//   - when the deliveries it sees skip a number (each delivery carries the
//     consumer's delivery sequence), after letting the running handlers
//     finish and forgetting the messages it held;
//   - when pulling fails and a new pull iterator is opened;
//   - when AckAfter fails, or a handler returns a [Rewind] error (below).
//
// Messages acked above the floor come again (idempotent handlers skip them);
// messages at or below the highest sequence delivered before a rewind are
// marked Redelivered. Rewinds in quick succession back off, since they mean
// another process pulls from the same ordered group (see below). On a server
// without the reset API the subscription logs an error and carries on:
// nothing is lost, but the pending messages come back after AckWait, possibly
// behind later messages of their keys.
//
// Without Ordered, messages are handled as they come by up to Parallelism
// workers, and a failure is nak'ed with a delay (the same backoff computed
// from the delivery count), so the server redelivers it later.
//
// With ConsumeOptions.AckAfter, a handler's success is not yet an ack: the
// message waits, its key going on meanwhile, until a call of AckAfter made
// after it returns nil (the handler's writes are durable). One call covers
// everything waiting; its failure rewinds an ordered group, and nothing
// handled before that rewind is acked. A handler that finds such a loss
// first returns a [Rewind] error: the workers are held at once (nothing is
// built on the loss) until the rewind delivers everything not acked again.
//
// Stop stops pulling, lets in-flight handlers finish and acks those that
// succeed (after one last AckAfter call, if set), then naks every message
// it still holds, in sequence order, so the
// next process of the group (or this one after a restart) gets them at once.
// A crash acks nothing: the next ordered subscription rewinds, an unordered
// one gets the un-acked messages after AckWait. Handlers get a context with
// the values of the Subscribe context but not its cancellation, so shutting
// down lets an in-flight transaction commit and ack instead of aborting it
// half-way; handlers must bound their own I/O.
//
// # Several processes in one group
//
// Processes that subscribe to the same group with the same options share one
// consumer and split its messages between them. That is fine for unordered
// groups. For ordered ones it breaks per-key order (two processes may hold
// messages of the same key at once) and each process sees the other's
// deliveries as gaps and rewinds (with backoff, logging a warning). For
// ordered consumption across processes, give each process a partition:
// ConsumeOptions.Partitions = n and Partition = i (0 <= i < n <= 64) make a
// separate durable consumer "<group>_p<i>of<n>" filtered to the buckets b
// with b mod n == i, so each key belongs to exactly one process.
// Changing n creates new consumers that start per StartAtNew (replaying from
// the beginning by default, which idempotent handlers absorb); the old ones
// remain until deleted by an operator.
//
// # Durability
//
// Publish returns after JetStream stored the message (on a cluster, after a
// quorum of replicas did). The embedded server writes to the page cache and
// fsyncs every two minutes (NATS' default): a process crash loses nothing, a
// power loss may lose the last moments. Acks are sent without waiting for the
// server's confirmation; a lost ack only means a redelivery.
//
// # Metrics
//
// With ConsumeOptions.Metrics set (see [NewMetrics]), a subscription counts
// handled messages by topic, group and result (ok, error, permanent), observes
// handler latency, and polls the consumer's lag (messages not yet delivered
// plus delivered but not acked) every LagInterval.
package eventlog
