// Command syncapi runs the syncapi component as its own process (polylith):
// it consumes roomserver output and serves /sync to clients.
package main

import (
	"context"
	"net/http"
	"os"

	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/setup"
	"github.com/axon-hs/axon/syncapi"
	"github.com/axon-hs/axon/syncapi/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func main() {
	os.Exit(setup.Main(os.Args[1:], os.Stderr, start))
}

func start(ctx context.Context, p *setup.Process) error {
	evlog, err := p.OpenLog(ctx)
	if err != nil {
		return err
	}
	db, err := p.OpenDB(ctx, "syncapi")
	if err != nil {
		return err
	}
	users, err := p.Client("userapi")
	if err != nil {
		return err
	}
	c, err := syncapi.New(ctx, syncapi.Deps{Log: p.Log, Registry: p.Registry, DB: db, EventLog: evlog, UserAPI: userapi.Client{C: users}})
	if err != nil {
		return err
	}
	p.Stopper.Add("syncapi", func(context.Context) error { c.Close(); return nil })
	mux := http.NewServeMux()
	c.Routes(mux, p.Adapter())
	if _, err = p.ServeClient(mux); err != nil {
		return err
	}
	return p.ServeInternal("syncapi", func(s *rpc.Server) { api.Serve(s, c.API()) })
}
