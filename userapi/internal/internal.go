// Package internal implements the userapi's api.API on top of its storage.
// It knows nothing of HTTP: the monolith calls it directly and the polylith
// serves it through api.Serve.
package internal

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

const (
	// UIASessionLifetime bounds how long a user-interactive auth session
	// stays usable; afterwards it is unknown.
	UIASessionLifetime = 30 * time.Minute
	// NonceLifetime is how long a shared-secret registration nonce stays
	// usable (Synapse's 60 s, which admin scripts expect).
	NonceLifetime = 60 * time.Second
	// tokenPrefix marks Axon access tokens, so secret scanners and people
	// reading logs can recognise them.
	tokenPrefix = "axo_"
	// refreshPrefix marks refresh tokens.
	refreshPrefix = "axr_"
	// casRetries bounds the compare-and-swap loop of CompleteUIAStage; each
	// retry means another stage of the same session was recorded meanwhile.
	casRetries = 16
)

// Config configures the implementation.
type Config struct {
	Storage    *storage.Storage
	ServerName string
	Log        *slog.Logger
	// BcryptCost is the cost of new password hashes; 0 means bcrypt.DefaultCost.
	BcryptCost int
	// Registry receives the metrics; nil means they are not exported.
	Registry prometheus.Registerer
	// Now is the clock; nil means time.Now. Tests move it to expire sessions.
	Now func() time.Time
	// EventLog receives account data changes (AccountDataTopic); nil means
	// they are stored but not published, which only tests of this package want.
	EventLog eventlog.Log
	// AccessTokenLifetime is the lifetime of access tokens that come with a
	// refresh token; 0 means DefaultAccessTokenLifetime.
	AccessTokenLifetime time.Duration
}

// DefaultAccessTokenLifetime is how long a refreshable access token lives
// unless configured: short, since refreshing is cheap for the client.
const DefaultAccessTokenLifetime = 5 * time.Minute

// UserAPI implements api.API.
type UserAPI struct {
	st         *storage.Storage
	serverName string
	log        *slog.Logger
	cost       int
	// dummyHash is compared against when there is no stored hash, so that a
	// login for a missing account takes as long as one with a wrong password.
	dummyHash []byte
	now       func() time.Time
	m         metrics
	evlog     eventlog.Log
	tokenLife time.Duration
	tokens    *tokenCache
}

var _ api.API = (*UserAPI)(nil)

type metrics struct {
	accountsCreated prometheus.Counter
	passwordChecks  *prometheus.CounterVec
}

// New returns the implementation. It fails on an invalid bcrypt cost or if
// the metrics are registered twice on one registry.
func New(cfg Config) (*UserAPI, error) {
	cost := cfg.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d outside [%d, %d]", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("axon dummy password for missing accounts"), cost)
	if err != nil {
		return nil, fmt.Errorf("generate dummy password hash: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	life := cfg.AccessTokenLifetime
	if life <= 0 {
		life = DefaultAccessTokenLifetime
	}
	m := metrics{
		accountsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "axon_userapi_accounts_created_total",
			Help: "Accounts created.",
		}),
		passwordChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "axon_userapi_password_checks_total",
			Help: "Password checks by result (ok, forbidden).",
		}, []string{"result"}),
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{m.accountsCreated, m.passwordChecks} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("register userapi metrics: %w", err)
			}
		}
	}
	return &UserAPI{
		st: cfg.Storage, serverName: cfg.ServerName, log: log, cost: cost,
		dummyHash: dummy, now: now, m: m, evlog: cfg.EventLog, tokenLife: life, tokens: newTokenCache(),
	}, nil
}

// userID builds a local user id. The matrix package will own this; until
// every caller uses it, this is the one place that knows the format.
func (u *UserAPI) userID(localpart string) string {
	return "@" + localpart + ":" + u.serverName
}

// localpart returns the localpart of a user id of this server, or false for
// a malformed id or one of another server.
func (u *UserAPI) localpart(userID string) (string, bool) {
	rest, ok := strings.CutPrefix(userID, "@")
	if !ok {
		return "", false
	}
	// Server names may contain ':' (a port, IPv6 literals), localparts may not.
	local, server, ok := strings.Cut(rest, ":")
	if !ok || local == "" || server != u.serverName {
		return "", false
	}
	return local, true
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (u *UserAPI) nowMS() int64 { return u.now().UnixMilli() }

// unknownSession is the answer for a missing, expired or foreign UIA
// session. The spec uses M_UNKNOWN for it with 400; M_UNKNOWN maps to 500 by
// default, hence the explicit status.
func unknownSession() error {
	return apierr.WithStatus(http.StatusBadRequest, apierr.CodeUnknown, "unknown or expired auth session")
}

// isNotFound reports whether a storage error is a missing row.
func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
