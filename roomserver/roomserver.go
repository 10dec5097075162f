// Package roomserver is the component that owns the room DAG: events, state
// snapshots, forward extremities. See README.md.
package roomserver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix/authrules"

	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/consumers"
	"github.com/axon-hs/axon/roomserver/internal"
	"github.com/axon-hs/axon/roomserver/storage"
)

// Deps are what the roomserver needs.
type Deps struct {
	Log      *slog.Logger
	DB       *sqlutil.DB
	EventLog eventlog.Log
	// LogMetrics is optional.
	LogMetrics *eventlog.Metrics
}

// Component is a running roomserver.
type Component struct {
	impl     *internal.Roomserver
	sub      eventlog.Subscription
	deferred *sqlutil.DeferredCommits
	log      *slog.Logger
}

// epochWatch is how often an idle roomserver checks that PostgreSQL did not
// take back its input commits (sqlutil.DeferredCommits.Watch).
const epochWatch = time.Second

// New migrates the database and starts consuming room input.
func New(ctx context.Context, d Deps) (*Component, error) {
	log := d.Log.With("component", "roomserver")
	st, err := storage.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("roomserver storage: %w", err)
	}
	impl := internal.New(st, d.EventLog, log, authrules.Check)
	// On PostgreSQL room input commits without waiting for the WAL flush,
	// and is acked once it is flushed (sqlutil.DeferredCommits).
	deferred, err := d.DB.DeferCommits(ctx, impl.ForgetCached)
	if err != nil {
		return nil, fmt.Errorf("roomserver storage: %w", err)
	}
	st.Deferred = deferred
	var ackAfter func(context.Context) error
	if deferred != nil {
		ackAfter = deferred.Flush
		deferred.Watch(epochWatch)
	}
	// WithoutCancel: the consumer belongs to the component and ends in
	// Close. Bound to ctx (the process's signal context) it would stop at
	// SIGTERM while the client listener still drains requests waiting for
	// their input to be processed, stalling them until the shutdown budget
	// runs out.
	sub, err := consumers.StartInput(context.WithoutCancel(ctx), d.EventLog, log, d.LogMetrics,
		consumers.InputWorkers(d.DB.Dialect.Engine), impl.HandleInput, ackAfter)
	if err != nil {
		_ = deferred.Close(ctx)
		return nil, fmt.Errorf("roomserver input consumer: %w", err)
	}
	return &Component{impl: impl, sub: sub, deferred: deferred, log: log}, nil
}

// API is the roomserver's internal API implementation.
func (c *Component) API() api.API { return c.impl }

// Close stops consuming input.
func (c *Component) Close() {
	c.sub.Stop() // its last flush is made
	// The epoch's rows go with it. (Left behind, they cost nothing but
	// a row each: the next start cleans what a crash left.)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.deferred.Close(ctx); err != nil {
		c.log.Warn("closing the commit epoch", "err", err)
	}
}
