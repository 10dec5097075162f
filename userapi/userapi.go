// Package userapi is the component that owns accounts, devices, access
// tokens, profiles and the registration helpers every clientapi process
// shares (user-interactive auth sessions, shared-secret registration
// nonces). It serves nothing external: the clientapi calls its API. See
// README.md.
package userapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/internal"
	"github.com/axon-hs/axon/userapi/storage"
)

// Deps are what the userapi needs.
type Deps struct {
	Log *slog.Logger
	// Registry receives the userapi metrics; nil means they are not exported.
	Registry   prometheus.Registerer
	DB         *sqlutil.DB
	ServerName string
	// BcryptCost is the cost of new password hashes; 0 means
	// bcrypt.DefaultCost. Tests use bcrypt.MinCost to stay fast.
	BcryptCost int
	// EventLog receives account data changes (api.AccountDataTopic). Nil
	// means they are stored but not published: only for tests that do not
	// look at them.
	EventLog eventlog.Log
	// AccessTokenLifetime is the lifetime of access tokens issued with a
	// refresh token; 0 means 5 minutes.
	AccessTokenLifetime time.Duration
}

// Component is a userapi.
type Component struct{ impl *internal.UserAPI }

// New migrates the database and builds the implementation.
func New(ctx context.Context, d Deps) (*Component, error) {
	if d.DB == nil {
		return nil, errors.New("userapi: no database")
	}
	if d.ServerName == "" {
		return nil, errors.New("userapi: no server name")
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "userapi")
	st, err := storage.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("userapi storage: %w", err)
	}
	impl, err := internal.New(internal.Config{
		Storage: st, ServerName: d.ServerName, Log: log, BcryptCost: d.BcryptCost, Registry: d.Registry,
		EventLog: d.EventLog, AccessTokenLifetime: d.AccessTokenLifetime,
	})
	if err != nil {
		return nil, fmt.Errorf("userapi: %w", err)
	}
	return &Component{impl: impl}, nil
}

// API is the userapi's internal API implementation.
func (c *Component) API() api.API { return c.impl }
