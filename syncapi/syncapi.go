// Package syncapi is the syncapi component: the per-user view of rooms that
// GET /sync serves.
//
// It consumes the roomserver's output log into its own storage, where every
// event gets a position in the PDU stream, and answers /sync from there:
// initial syncs, incremental syncs from a since token, and long-polls that
// the notifier wakes as soon as the consumer commits something for the
// user. See README.md for its topics, tables and limits.
package syncapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/internal/sqlutil"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/internal/typing"
	"github.com/axon-hs/axon/syncapi/routing"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// ConsumerGroup is the durable group the syncapi consumes the roomserver
// output with.
const ConsumerGroup = "syncapi"

// How long the batch consumers wait for more messages while busy
// (eventlog.ConsumeOptions.Linger). A commit costs about the same for one
// message as for many, since it writes whole pages: the room events are on
// every syncing client's path, so they wait little; counts, which only
// change a number, wait longer. On PostgreSQL a batch of room events costs
// more (a statement, a WAL flush, and the reads of every /sync it wakes):
// 10 ms there used 9% less CPU per message (server and PostgreSQL) than
// 5 ms over six alternating load runs, for 1–7 ms more send-to-sync p99;
// on SQLite it saved nothing measurable.
const (
	outputLinger         = 5 * time.Millisecond
	outputLingerPostgres = 10 * time.Millisecond
	countsLinger         = 20 * time.Millisecond
)

// Deps are what the syncapi needs.
type Deps struct {
	Log *slog.Logger
	// Registry receives the metrics; nil means no metrics.
	Registry prometheus.Registerer
	DB       *sqlutil.DB
	EventLog eventlog.Log
	UserAPI  userapi.API
}

// Component is a running syncapi.
type Component struct {
	log      *slog.Logger
	db       *storage.Storage
	notifier *notifier.Notifier
	typing   *typing.Typing
	sync     *routing.Sync
	subs     []eventlog.Subscription
}

// New migrates the database, loads the notifier's view of room membership
// and starts consuming the roomserver output. The consumer runs until Close,
// whatever becomes of ctx.
func New(ctx context.Context, d Deps) (*Component, error) {
	if d.DB == nil || d.EventLog == nil || d.UserAPI == nil {
		return nil, errors.New("syncapi: DB, EventLog and UserAPI are required")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "syncapi")
	db, err := storage.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("syncapi storage: %w", err)
	}
	// The notifier starts where storage is, before the consumer can add to it.
	cur, err := db.Positions.Token(ctx, db.DB.Reader())
	if err != nil {
		return nil, fmt.Errorf("syncapi positions: %w", err)
	}
	joined, err := db.CurrentState.JoinedUsers(ctx, db.DB.Reader())
	if err != nil {
		return nil, fmt.Errorf("syncapi joined users: %w", err)
	}
	n := notifier.New(cur, joined)
	var evMetrics *eventlog.Metrics
	if d.Registry != nil {
		evMetrics = eventlog.NewMetrics(d.Registry)
	}
	c := &Component{log: log, db: db, notifier: n}
	c.typing = typing.New(func(roomID string, pos streams.Position) { n.OnRoom(streams.Typing, pos, roomID) })
	// WithoutCancel: the subscriptions belong to the component, which ends
	// them in Close, not to the start-up context.
	cctx := context.WithoutCancel(ctx)
	opts := eventlog.ConsumeOptions{Ordered: true, Metrics: evMetrics, Logger: log}
	// A batch consumer runs one batch at a time: its transactions take the
	// same counter row's lock, so a second one would only wait for it, with
	// a smaller batch, while the messages arriving meanwhile make the next
	// batch of a single worker larger.
	batchOpts := opts
	batchOpts.Parallelism = 1
	// Ordered per room: the state a message changes depends on the ones
	// before it in the room, and the notifier's membership view too. In
	// batches: every stream write locks its counter row until the commit,
	// so one transaction per message would serialise the stream on commits.
	outOpts := batchOpts
	outOpts.Linger = outputLinger
	if db.DB.Dialect.Engine == sqlutil.Postgres {
		outOpts.Linger = outputLingerPostgres
	}
	sub, err := eventlog.ConsumeBatch(cctx, d.EventLog, rsapi.OutputTopic, ConsumerGroup, outOpts,
		consumers.NewRoomServerOutput(db, n, log).HandleBatch)
	if err != nil {
		return nil, fmt.Errorf("syncapi: consume %s: %w", rsapi.OutputTopic.Name, err)
	}
	c.subs = append(c.subs, sub)
	// Ordered per user: versions make repeats harmless, order keeps the
	// account data stream from jumping back.
	sub, err = eventlog.Consume(cctx, d.EventLog, userapi.AccountDataTopic, ConsumerGroup, opts,
		consumers.NewAccountData(db, n, log).Handle)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("syncapi: consume %s: %w", userapi.AccountDataTopic.Name, err)
	}
	c.subs = append(c.subs, sub)
	// Ordered per room: the latest counts of a (user, room) win.
	countOpts := batchOpts
	countOpts.Linger = countsLinger
	sub, err = eventlog.ConsumeBatch(cctx, d.EventLog, userapi.NotificationCountsTopic, ConsumerGroup, countOpts,
		consumers.NewNotificationCounts(db, n, log).HandleBatch)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("syncapi: consume %s: %w", userapi.NotificationCountsTopic.Name, err)
	}
	c.subs = append(c.subs, sub)
	c.sync = routing.NewSync(routing.Deps{DB: db, Notifier: n, Typing: c.typing, UserAPI: d.UserAPI, EventLog: d.EventLog,
		Log: log, Metrics: routing.NewMetrics(d.Registry)})
	return c, nil
}

// Routes registers the client endpoints the syncapi serves (on v3 and the
// r0 alias): /sync, typing, receipts, read markers and presence.
func (c *Component) Routes(mux *http.ServeMux, a httputil.Adapter) {
	routes := []struct {
		pattern string
		h       httputil.Handler
	}{
		{"GET /sync", c.sync.ServeSync},
		{"PUT /rooms/{roomId}/typing/{userId}", c.sync.ServeTyping},
		{"POST /rooms/{roomId}/receipt/{receiptType}/{eventId}", c.sync.ServeReceipt},
		{"POST /rooms/{roomId}/read_markers", c.sync.ServeReadMarkers},
		{"GET /presence/{userId}/status", c.sync.ServeGetPresence},
		{"PUT /presence/{userId}/status", c.sync.ServePutPresence},
		{"GET /rooms/{roomId}/messages", c.sync.ServeMessages},
		{"GET /rooms/{roomId}/context/{eventId}", c.sync.ServeContext},
		{"GET /rooms/{roomId}/event/{eventId}", c.sync.ServeEvent},
		{"POST /search", c.sync.ServeSearch},
	}
	for _, r := range routes {
		method, path, _ := strings.Cut(r.pattern, " ")
		h := a.H(r.h)
		mux.Handle(method+" /_matrix/client/v3"+path, h)
		mux.Handle(method+" /_matrix/client/r0"+path, h)
	}
	// timestamp_to_event exists on v1 only (spec v1.6).
	mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event", a.H(c.sync.ServeTimestampToEvent))
	// Relations and threads exist on v1 only (spec v1.3, v1.4).
	relations := a.H(c.sync.ServeRelations)
	mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}", relations)
	mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}", relations)
	mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", relations)
	mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/threads", a.H(c.sync.ServeThreads))
}

// Close stops the consumer (letting an in-flight message commit) and ends
// the long-polls, which answer with what they have. The database and the
// log belong to the caller and stay open.
func (c *Component) Close() {
	for _, s := range c.subs {
		s.Stop()
	}
	c.typing.Close()
	c.notifier.Close()
}
