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

// StartInput consumes room input in order per room (the key is the room
// id), in parallel across rooms, with handle doing the work.
func StartInput(ctx context.Context, log eventlog.Log, logger *slog.Logger, m *eventlog.Metrics,
	handle func(context.Context, eventlog.Msg[api.InputMessage]) error) (eventlog.Subscription, error) {
	return eventlog.Consume(ctx, log, api.InputTopic, InputGroup, eventlog.ConsumeOptions{
		Ordered: true, Logger: logger, Metrics: m,
	}, handle)
}
