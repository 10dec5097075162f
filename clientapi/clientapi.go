// Package clientapi is the component serving the Client-Server API's write
// paths and the reads that are not sync. See README.md.
package clientapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/axon-hs/axon/clientapi/internal"
	"github.com/axon-hs/axon/clientapi/routing"
	"github.com/axon-hs/axon/clientapi/storage"
	"github.com/axon-hs/axon/internal/config"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/signing"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Deps are what the clientapi needs.
type Deps struct {
	Log              *slog.Logger
	DB               *sqlutil.DB
	ServerName       matrix.ServerName
	Key              signing.Key
	OpenRegistration bool
	SharedSecret     string
	// Registration is the rest of the registration configuration: tokens,
	// guests, login tokens.
	Registration  config.Registration
	UserAPI       userapi.API
	RoomserverAPI rsapi.API
	// SyncAPI answers what needs sync stream positions (/members?at=).
	SyncAPI syncapi.API
}

// Component is a clientapi.
type Component struct{ routes *routing.Routes }

// New migrates the clientapi database and prepares the routes.
func New(ctx context.Context, d Deps) (*Component, error) {
	log := d.Log.With("component", "clientapi")
	// The schema is kept as released (its transaction ids moved to the
	// roomserver); nothing reads it.
	if err := storage.Migrate(ctx, d.DB); err != nil {
		return nil, fmt.Errorf("clientapi storage: %w", err)
	}
	b := &internal.Builder{ServerName: d.ServerName, Key: d.Key, RS: d.RoomserverAPI}
	cfg := routing.Config{ServerName: d.ServerName, OpenRegistration: d.OpenRegistration, SharedSecret: d.SharedSecret,
		RequireRegistrationToken: d.Registration.RequiresToken, RegistrationTokens: d.Registration.Tokens,
		GuestAccess: d.Registration.Guests, LoginTokens: d.Registration.LoginTokens}
	return &Component{routes: routing.New(cfg, log, d.UserAPI, d.RoomserverAPI, b).WithSyncAPI(d.SyncAPI)}, nil
}

// Routes registers the clientapi's endpoints on mux.
func (c *Component) Routes(mux *http.ServeMux) { c.routes.Register(mux) }
