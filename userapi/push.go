package userapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/userapi/consumers"
	"github.com/axon-hs/axon/userapi/storage"
)

// PushConsumerGroup is the durable group push evaluation consumes the
// roomserver output with.
const PushConsumerGroup = "userapi_push"

// ReceiptsConsumerGroup is the durable group read receipts (which clear
// notification counts) are consumed with.
const ReceiptsConsumerGroup = "userapi_receipts"

// PushDeps are what push evaluation and delivery need. It is started apart
// from New because it needs the roomserver, which is built after the
// userapi (the roomserver does not need the userapi, the reverse is not
// true for push only).
type PushDeps struct {
	Log        *slog.Logger
	DB         *sqlutil.DB
	EventLog   eventlog.Log
	RoomServer rsapi.API
	ServerName string
	// AllowPrivateAddresses lets pushes reach push gateways on loopback and
	// private networks (config federation.allow_private_addresses).
	AllowPrivateAddresses bool
	Gateway               consumers.GatewayOptions
	// LogMetrics counts the consumed messages and exports the groups' lag;
	// nil leaves them out.
	LogMetrics *eventlog.Metrics
}

// Push is running push evaluation: a consumer of the roomserver output and
// the delivery to push gateways.
type Push struct {
	sub      eventlog.Subscription
	receipts eventlog.Subscription
	gateway  *consumers.Gateway
}

// NewPush starts consuming the roomserver output for push. It runs until
// Close, whatever becomes of ctx.
func NewPush(ctx context.Context, d PushDeps) (*Push, error) {
	if d.DB == nil || d.EventLog == nil || d.RoomServer == nil || d.ServerName == "" {
		return nil, errors.New("userapi push: DB, EventLog, RoomServer and ServerName are required")
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "userapi_push")
	st, err := storage.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("userapi push storage: %w", err)
	}
	o := d.Gateway
	o.AllowPrivateAddresses = o.AllowPrivateAddresses || d.AllowPrivateAddresses
	gw := consumers.NewGateway(st, log, o)
	h := consumers.NewRoomServerOutput(st, d.RoomServer, d.EventLog, gw, d.ServerName, log)
	// Ordered per room: the cached room state follows the room's events.
	// In batches: one commit for every message ready, rather than one each.
	// One worker, lingering in busy periods: every message notifies most
	// of a room's members, each in their own part of the notification
	// index, so a commit writes a page per member whether it holds one
	// message or fifty. Counts and pushes wait up to pushLinger for it.
	sub, err := eventlog.ConsumeBatch(context.WithoutCancel(ctx), d.EventLog, rsapi.OutputTopic, PushConsumerGroup,
		eventlog.ConsumeOptions{Ordered: true, Logger: log, Metrics: d.LogMetrics, Parallelism: 1, Linger: pushLinger}, h.HandleBatch)
	if err != nil {
		gw.Close()
		return nil, fmt.Errorf("userapi push: consume %s: %w", rsapi.OutputTopic.Name, err)
	}
	// Ordered per room like the counts it rewrites.
	rc := consumers.NewReceipts(st, h.PublishCounts, d.ServerName, log)
	receipts, err := eventlog.Consume(context.WithoutCancel(ctx), d.EventLog, syncapi.ReceiptTopic, ReceiptsConsumerGroup,
		eventlog.ConsumeOptions{Ordered: true, Logger: log, Metrics: d.LogMetrics}, rc.Handle)
	if err != nil {
		sub.Stop()
		gw.Close()
		return nil, fmt.Errorf("userapi push: consume %s: %w", syncapi.ReceiptTopic.Name, err)
	}
	return &Push{sub: sub, receipts: receipts, gateway: gw}, nil
}

// pushLinger is how long the push consumer waits to gather a batch while
// events keep coming (eventlog.ConsumeOptions.Linger).
const pushLinger = 20 * time.Millisecond

// Close stops the consumer (letting an in-flight event commit) and the
// deliveries.
func (p *Push) Close() {
	p.receipts.Stop()
	p.sub.Stop()
	p.gateway.Close()
}
