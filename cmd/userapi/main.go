// Command userapi runs the userapi component as its own process
// (polylith): accounts, devices and tokens behind its internal API.
package main

import (
	"context"
	"os"

	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/setup"
	rsapi "github.com/axon-hs/axon/roomserver/api"
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
	evlog, err := p.OpenLog(ctx)
	if err != nil {
		return err
	}
	c, err := userapi.New(ctx, userapi.Deps{Log: p.Log, Registry: p.Registry, DB: db, ServerName: p.Cfg.ServerName, EventLog: evlog})
	if err != nil {
		return err
	}
	rs, err := p.Client("roomserver")
	if err != nil {
		return err
	}
	push, err := userapi.NewPush(ctx, userapi.PushDeps{Log: p.Log, LogMetrics: p.LogMetrics, DB: db, EventLog: evlog, RoomServer: rsapi.Client{C: rs},
		ServerName: p.Cfg.ServerName, AllowPrivateAddresses: p.Cfg.Federation.AllowPrivateAddresses})
	if err != nil {
		return err
	}
	p.Stopper.Add("userapi_push", func(context.Context) error { push.Close(); return nil })
	return p.ServeInternal("userapi", func(s *rpc.Server) { api.Serve(s, c.API()) })
}
