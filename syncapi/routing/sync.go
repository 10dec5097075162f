// Package routing serves the syncapi's client endpoints: GET /sync, its
// request parsing (since, timeout, full_state, set_presence,
// use_state_after, filter) and the building of its response from storage.
package routing

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/internal/typing"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Metrics are the /sync metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	waiting  prometheus.Gauge
}

// NewMetrics registers the /sync metrics on reg; nil reg gives nil (no
// metrics). Registering twice on one registry reuses the first collectors,
// so a component built twice (a restart in a test) does not panic.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "axon_syncapi_sync_requests_total",
			Help: "GET /sync requests by kind (initial, incremental).",
		}, []string{"kind"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "axon_syncapi_sync_waiting",
			Help: "GET /sync requests currently long-polling.",
		}),
	}
	m.requests = register(reg, m.requests)
	m.waiting = register(reg, m.waiting)
	return m
}

// register registers c, or returns the collector already registered in its
// place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A different collector under the same name: keep ours unregistered
		// rather than fail start-up over a metric.
	}
	return c
}

// Sync serves the syncapi's client endpoints: GET /sync and the reads and
// ephemeral writes that share its streams.
type Sync struct {
	db       *storage.Storage
	notifier *notifier.Notifier
	typing   *typing.Typing
	userAPI  userapi.API
	evlog    eventlog.Log
	log      *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	// memberships and ignored are what most incremental syncs would
	// otherwise read again unchanged (spancache.go).
	memberships *spanCache[[]storage.Membership]
	ignored     *spanCache[map[string]bool]
	// maxWindow is defaultMaxWindow (see builder.maxWindow); tests turn it
	// off (-1) to compare with the reads it replaces.
	maxWindow streams.Position
}

// Bounds of the /sync caches, in memberships and in ignored users (plus
// one per user): a few tens of MB at most.
const (
	membershipCacheLimit = 200_000
	ignoredCacheLimit    = 200_000
)

// Deps are what the handlers need.
type Deps struct {
	DB       *storage.Storage
	Notifier *notifier.Notifier
	Typing   *typing.Typing
	UserAPI  userapi.API
	// EventLog receives the receipts (syncapi/api.ReceiptTopic).
	EventLog eventlog.Log
	Log      *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
}

// NewSync returns the handlers.
func NewSync(d Deps) *Sync {
	return &Sync{db: d.DB, notifier: d.Notifier, typing: d.Typing, userAPI: d.UserAPI, evlog: d.EventLog, log: d.Log,
		metrics: d.Metrics, now: time.Now,
		memberships: newSpanCache(membershipCacheLimit, func(ms []storage.Membership) int { return len(ms) + 1 }),
		ignored:     newSpanCache(ignoredCacheLimit, func(m map[string]bool) int { return len(m) + 1 }),
		maxWindow:   defaultMaxWindow}
}

// device authenticates a request.
func (s *Sync) device(r *http.Request) (userapi.Device, error) {
	token, err := httputil.AccessToken(r)
	if err != nil {
		return userapi.Device{}, err
	}
	dev, err := s.userAPI.QueryAccessToken(r.Context(), userapi.QueryAccessTokenRequest{AccessToken: token})
	if err != nil {
		return userapi.Device{}, err
	}
	if dev.Device.AccountType == userapi.AccountGuest && !httputil.GuestAllowed(r.Pattern) {
		return userapi.Device{}, apierr.New(apierr.CodeGuestAccessForbided, "guests cannot use this endpoint")
	}
	return dev.Device, nil
}

// deviceInRoom authenticates r and parses its {roomId}: the start of every
// room endpoint.
func (s *Sync) deviceInRoom(r *http.Request) (userapi.Device, string, error) {
	dev, err := s.device(r)
	if err != nil {
		return userapi.Device{}, "", err
	}
	roomID, err := pathRoom(r)
	if err != nil {
		return userapi.Device{}, "", err
	}
	return dev, roomID, nil
}

// ServeSync is GET /_matrix/client/v3/sync. Errors: M_MISSING_TOKEN and
// M_UNKNOWN_TOKEN (401), M_INVALID_PARAM for a bad since, timeout or flag,
// M_NOT_JSON / M_BAD_JSON for a bad inline filter (400).
func (s *Sync) ServeSync(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	req, err := ParseRequest(r.URL.Query())
	if err != nil {
		return err
	}
	if req.FilterID != "" {
		if req.Filter, err = s.storedFilter(r.Context(), dev.UserID, req.FilterID); err != nil {
			return err
		}
	}
	if err := s.setPresence(r.Context(), dev.UserID, req.SetPresence); err != nil {
		return err
	}
	resp, err := s.sync(r.Context(), dev, req)
	if err != nil {
		return err
	}
	return httputil.JSON(w, resp)
}

// sync answers at once when there is something for the device, and
// otherwise waits for the notifier, up to the request's timeout.
func (s *Sync) sync(ctx context.Context, dev userapi.Device, req Request) (*Response, error) {
	if s.metrics != nil {
		kind := "incremental"
		if req.Since == nil {
			kind = "initial"
		}
		s.metrics.requests.WithLabelValues(kind).Inc()
	}
	since := req.Since
	var timer *time.Timer
	for {
		// Listen before reading: what commits from now on wakes us, what committed
		// before is within cur.
		l := s.notifier.Listen(dev.UserID)
		cur := s.notifier.Current()
		if since != nil {
			// A token from the future (a database restored from backup, or one
			// that never came from here) reads as now rather than waiting for
			// positions that may never come.
			clamped := since.Min(cur)
			since = &clamped
		}
		b := &builder{db: s.db, q: s.db.DB.Reader(), dev: dev, req: req, cur: cur, now: s.now(), typing: s.typing,
			peers: s.peers, membershipCache: s.memberships, ignoredCache: s.ignored, maxWindow: s.maxWindow}
		resp, err := b.build(ctx, since)
		if err != nil || !resp.empty() || req.Timeout == 0 || req.FullState {
			l.Close()
			return resp, err
		}
		if timer == nil {
			timer = time.NewTimer(req.Timeout)
			defer timer.Stop()
		}
		woken, err := s.wait(ctx, l, timer)
		l.Close()
		if err != nil || !woken {
			return resp, err
		}
		// Nothing came up to cur: look again from there.
		since = &cur
	}
}

// wait blocks until the listener fires (true), the timer or shutdown ends
// the long-poll (false), or the client goes away (its error).
func (s *Sync) wait(ctx context.Context, l *notifier.Listener, timer *time.Timer) (bool, error) {
	if s.metrics != nil {
		s.metrics.waiting.Inc()
		defer s.metrics.waiting.Dec()
	}
	select {
	case <-l.C():
		return true, nil
	case <-timer.C:
		return false, nil
	case <-s.notifier.Done():
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// peers returns the user and everyone joined to a room with them: whose
// presence the user sees.
func (s *Sync) peers(userID string) []string {
	set := map[string]struct{}{userID: {}}
	for _, room := range s.notifier.RoomsOf(userID) {
		for _, u := range s.notifier.JoinedUsers(room) {
			set[u] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}
