// Command userapi runs the userapi component as its own process
// (polylith): accounts, devices and tokens behind its internal API.
package main

import (
	"context"
	"os"

	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/setup"
	"github.com/axon-hs/axon/userapi"
	"github.com/axon-hs/axon/userapi/api"
)

func main() {
	os.Exit(setup.Main(os.Args[1:], os.Stderr, start))
}

func start(ctx context.Context, p *setup.Process) error {
	db, err := p.OpenDB(ctx, "userapi")
	if err != nil {
		return err
	}
	c, err := userapi.New(ctx, userapi.Deps{Log: p.Log, Registry: p.Registry, DB: db, ServerName: p.Cfg.ServerName})
	if err != nil {
		return err
	}
	return p.ServeInternal("userapi", func(s *rpc.Server) { api.Serve(s, c.API()) })
}
