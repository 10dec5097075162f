// Package consumers holds the roomserver's log consumers.
package consumers

import (
	"context"
	"log/slog"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/roomserver/api"
)

// InputGroup is the consumer group of room input.
const InputGroup = "roomserver"

// inputBatch bounds the messages handled in one transaction: every caller
// in a batch waits for its commit.
const inputBatch = 64

// InputWorkers is how many input batches are handled at once on engine e.
// A batch costs about the same whatever its size, so a few workers that
// each take every message ready beat one batch per room: with 8 senders in
// 10 rooms, 16 workers took 1.3 messages a batch. On SQLite the group
// committer commits what the workers store at the same moment together,
// and 4 workers did best. On PostgreSQL each batch is a transaction of its
// own, one statement when pipelined, so every batch costs a round trip
// whatever its size: one worker, taking whatever came in while the last
// batch was stored, used 11% less CPU per message (server and PostgreSQL)
// than two over eight alternating load runs, and sent 6% more. (That was
// with a WAL flush per batch; with commits deferred, two workers sent no
// more over seven pairs.)
// The price: a slow batch (a large state resolution) holds up every room's
// input on PostgreSQL meanwhile, where two workers kept half of them going.
func InputWorkers(e sqlutil.Engine) int {
	if e == sqlutil.Postgres {
		return 1
	}
	return 4
}

// inputAckEvery paces the flushes that input waits for before it is acked
// (sqlutil.DeferredCommits): each may cost an fsync, and everything handled
// meanwhile shares the next one. Nobody waits for the acks.
const inputAckEvery = 10 * time.Millisecond

// StartInput consumes room input in order per room (the key is the room
// id), in parallel across rooms on up to workers batches, with handle
// doing the work on every message ready at once. ackAfter, if not nil,
// makes handled input wait for it to return nil before it is acked
// (eventlog.ConsumeOptions.AckAfter).
func StartInput(ctx context.Context, log eventlog.Log, logger *slog.Logger, m *eventlog.Metrics, workers int,
	handle func(context.Context, []eventlog.Msg[api.InputMessage]) error, ackAfter func(context.Context) error) (eventlog.Subscription, error) {
	return eventlog.ConsumeBatch(ctx, log, api.InputTopic, InputGroup, eventlog.ConsumeOptions{
		Ordered: true, Logger: logger, Metrics: m, HandlerBatch: inputBatch, Parallelism: workers,
		AckAfter: ackAfter, AckAfterEvery: inputAckEvery,
	}, handle)
}
