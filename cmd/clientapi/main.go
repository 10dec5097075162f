// Command clientapi runs the clientapi component as its own process
// (polylith): the Client-Server API's write paths, calling the userapi and
// roomserver over their internal APIs.
package main

import (
	"context"
	"net/http"
	"os"

	"github.com/axon-hs/axon/clientapi"
	"github.com/axon-hs/axon/federationapi"
	"github.com/axon-hs/axon/internal/setup"
	"github.com/axon-hs/axon/matrix"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func main() {
	os.Exit(setup.Main(os.Args[1:], os.Stderr, start))
}

func start(ctx context.Context, p *setup.Process) error {
	key, err := p.SigningKey()
	if err != nil {
		return err
	}
	db, err := p.OpenDB(ctx, "clientapi")
	if err != nil {
		return err
	}
	users, err := p.Client("userapi")
	if err != nil {
		return err
	}
	rs, err := p.Client("roomserver")
	if err != nil {
		return err
	}
	sync, err := p.Client("syncapi")
	if err != nil {
		return err
	}
	name := matrix.ServerName(p.Cfg.ServerName)
	c, err := clientapi.New(ctx, clientapi.Deps{Log: p.Log, DB: db, ServerName: name, Key: key,
		OpenRegistration: p.Cfg.Registration.Open, SharedSecret: p.Cfg.Registration.SharedSecret, Registration: p.Cfg.Registration,
		UserAPI: userapi.Client{C: users}, RoomserverAPI: rsapi.Client{C: rs}, SyncAPI: syncapi.Client{C: sync}})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	c.Routes(mux)
	federationapi.New(federationapi.Deps{ServerName: name, Key: key}).Routes(mux)
	_, err = p.ServeClient(mux)
	return err
}
