// Package consumers holds the roomserver's log consumers.
package consumers

import (
	"context"
	"log/slog"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/roomserver/api"
)

// InputGroup is the consumer group of room input.
const InputGroup = "roomserver"

// inputBatch bounds the messages handled in one transaction: every caller
// in a batch waits for its commit.
const inputBatch = 64

// inputWorkers is how many batches are handled at once. A batch costs
// about the same whatever its size (one commit; on PostgreSQL two round
// trips when pipelined), so a few workers that each take every message
// ready beat one batch per room: with 8 senders in 10 rooms, 16 workers
// took 1.3 messages a batch.
const inputWorkers = 4

// StartInput consumes room input in order per room (the key is the room
// id), in parallel across rooms, with handle doing the work on every
// message ready at once.
func StartInput(ctx context.Context, log eventlog.Log, logger *slog.Logger, m *eventlog.Metrics,
	handle func(context.Context, []eventlog.Msg[api.InputMessage]) error) (eventlog.Subscription, error) {
	return eventlog.ConsumeBatch(ctx, log, api.InputTopic, InputGroup, eventlog.ConsumeOptions{
		Ordered: true, Logger: logger, Metrics: m, HandlerBatch: inputBatch, Parallelism: inputWorkers,
	}, handle)
}
