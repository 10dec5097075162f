// Command roomserver runs the roomserver component as its own process
// (polylith): it consumes room input and serves its internal API.
package main

import (
	"context"
	"os"

	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/setup"
	"github.com/axon-hs/axon/roomserver"
	"github.com/axon-hs/axon/roomserver/api"
)

func main() {
	os.Exit(setup.Main(os.Args[1:], os.Stderr, start))
}

func start(ctx context.Context, p *setup.Process) error {
	evlog, err := p.OpenLog(ctx)
	if err != nil {
		return err
	}
	db, err := p.OpenDB(ctx, "roomserver")
	if err != nil {
		return err
	}
	c, err := roomserver.New(ctx, roomserver.Deps{Log: p.Log, DB: db, EventLog: evlog, LogMetrics: p.LogMetrics})
	if err != nil {
		return err
	}
	p.Stopper.Add("roomserver", func(context.Context) error { c.Close(); return nil })
	return p.ServeInternal("roomserver", func(s *rpc.Server) { api.Serve(s, c.API()) })
}
