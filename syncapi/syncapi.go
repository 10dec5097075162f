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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/internal/sqlutil"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/routing"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// ConsumerGroup is the durable group the syncapi consumes the roomserver
// output with.
const ConsumerGroup = "syncapi"

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
	sync     *routing.Sync
	sub      eventlog.Subscription
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
	handler := consumers.NewRoomServerOutput(db, n, log)
	// Ordered per room: the state a message changes depends on the ones
	// before it in the room, and the notifier's membership view too.
	// WithoutCancel: the subscription belongs to the component, which ends it
	// in Close, not to the start-up context.
	sub, err := eventlog.Consume(context.WithoutCancel(ctx), d.EventLog, rsapi.OutputTopic, ConsumerGroup,
		eventlog.ConsumeOptions{Ordered: true, Metrics: evMetrics, Logger: log}, handler.Handle)
	if err != nil {
		return nil, fmt.Errorf("syncapi: consume %s: %w", rsapi.OutputTopic.Name, err)
	}
	return &Component{
		log:      log,
		db:       db,
		notifier: n,
		sync:     routing.NewSync(db, n, d.UserAPI, log, routing.NewMetrics(d.Registry)),
		sub:      sub,
	}, nil
}

// Routes registers the client endpoints: GET /sync on v3 and its r0 alias.
func (c *Component) Routes(mux *http.ServeMux, a httputil.Adapter) {
	h := a.H(c.sync.ServeSync)
	mux.Handle("GET /_matrix/client/v3/sync", h)
	mux.Handle("GET /_matrix/client/r0/sync", h)
}

// Close stops the consumer (letting an in-flight message commit) and ends
// the long-polls, which answer with what they have. The database and the
// log belong to the caller and stay open.
func (c *Component) Close() {
	c.sub.Stop()
	c.notifier.Close()
}
