// Package routing serves the clientapi's Client-Server API endpoints. Routes
// are split by area (accounts, rooms, ...), each file registering its own.
package routing

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/axon-hs/axon/clientapi/internal"
	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/config"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Config is what the routes need to know of the server configuration.
type Config struct {
	ServerName       matrix.ServerName
	OpenRegistration bool
	SharedSecret     string
	// RegistrationTokens, when RequireRegistrationToken, gate /register
	// behind m.login.registration_token.
	RequireRegistrationToken bool
	RegistrationTokens       []config.RegistrationToken
	// GuestAccess allows guest accounts; LoginTokens enables m.login.token.
	GuestAccess bool
	LoginTokens bool
}

// Routes holds the dependencies of the handlers.
type Routes struct {
	cfg     Config
	log     *slog.Logger
	users   userapi.API
	rs      rsapi.API
	sync    syncapi.API // nil: /members?at= answers with the current state
	builder *internal.Builder
	a       httputil.Adapter
	txnMu   keyedMutex
	roomMu  keyedMutex // sendInRoom
	now     func() time.Time
}

// New returns the routes.
func New(cfg Config, log *slog.Logger, users userapi.API, rs rsapi.API, b *internal.Builder) *Routes {
	return &Routes{cfg: cfg, log: log, users: users, rs: rs, builder: b, a: httputil.Adapter{Log: log}, now: time.Now}
}

// Register adds every clientapi route to mux.
func (rt *Routes) Register(mux *http.ServeMux) {
	rt.registerVersions(mux)
	rt.registerAccounts(mux)
	rt.registerAccountArea(mux)
	rt.registerRooms(mux)
	rt.registerRoomArea(mux)
	rt.registerPush(mux)
}

const v3 = "/_matrix/client/v3"

// authed wraps a handler that needs an access token.
func (rt *Routes) authed(h func(w http.ResponseWriter, r *http.Request, dev userapi.Device) error) http.HandlerFunc {
	return rt.a.H(func(w http.ResponseWriter, r *http.Request) error {
		dev, err := rt.device(r.Context(), r)
		if err != nil {
			return err
		}
		if err := rt.guestGate(r, dev); err != nil {
			return err
		}
		return h(w, r, dev)
	})
}

func (rt *Routes) device(ctx context.Context, r *http.Request) (userapi.Device, error) {
	tok, err := httputil.AccessToken(r)
	if err != nil {
		return userapi.Device{}, err
	}
	res, err := rt.users.QueryAccessToken(ctx, userapi.QueryAccessTokenRequest{AccessToken: tok})
	if err != nil {
		return userapi.Device{}, err
	}
	return res.Device, nil
}

// keyedMutex serialises work per key (a client transaction, a room). A
// waiter gives up when its context ends: a client that went away does not
// keep its place in the queue.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	held chan struct{} // holds a token while locked
	refs int
}

// Lock takes key's lock, or fails with ctx's error.
func (k *keyedMutex) Lock(ctx context.Context, key string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err // select below would pick at random
	}
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{held: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.held <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	return func() {
		<-e.held
		release()
	}, nil
}

func unrecognized(format string, args ...any) error {
	return apierr.New(apierr.CodeUnrecognized, format, args...)
}
