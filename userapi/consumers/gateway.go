package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/axon-hs/axon/userapi/storage"
)

// Gateway delivers notifications to HTTP push gateways (push-gateway-api:
// POST /_matrix/push/v1/notify), retrying with exponential backoff and
// removing pushkeys a gateway rejects. The queue is in memory: pushes
// pending at shutdown are lost, which the spec tolerates (the counts and
// /notifications stay right; a push is a hint to sync).
type Gateway struct {
	st      *storage.Storage
	pushers *pusherCache
	client  *http.Client
	log     *slog.Logger
	queue   chan Push
	// Retry policy: attempts in all, first delay doubled each time.
	attempts  int
	baseDelay time.Duration
	stop      chan struct{}
	wg        sync.WaitGroup
}

// GatewayOptions configure a Gateway.
type GatewayOptions struct {
	// AllowPrivateAddresses lets pushes reach loopback and private
	// networks; off, a gateway URL that resolves there is refused at dial.
	AllowPrivateAddresses bool
	// Workers is how many pushes are in flight at once (default 4).
	Workers int
	// Attempts per push (default 5) and the first retry delay (default 1s).
	Attempts  int
	BaseDelay time.Duration
}

// NewGateway starts the delivery workers.
func NewGateway(st *storage.Storage, log *slog.Logger, o GatewayOptions) *Gateway {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !o.AllowPrivateAddresses {
		dialer.Control = refusePrivate
	}
	tr := &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	g := &Gateway{st: st, pushers: newPusherCache(st), log: log, queue: make(chan Push, 4096), attempts: o.Attempts, baseDelay: o.BaseDelay,
		stop: make(chan struct{}), client: &http.Client{Transport: tr, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for range o.Workers {
		g.wg.Go(g.work)
	}
	return g
}

// refusePrivate stops connections to addresses a user must not make the
// server reach (SSRF): loopback, private, link-local, unspecified.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("push gateway address %s is not public", host)
	}
	return nil
}

// Enqueue queues a push; when the queue is full the push is dropped (and
// logged) rather than stalling evaluation.
func (g *Gateway) Enqueue(ctx context.Context, p Push) {
	// Most users have no pusher: they need no place in the queue.
	if ps, err := g.pushers.get(ctx, p.Localpart); err == nil && len(ps) == 0 {
		return
	}
	select {
	case g.queue <- p:
	default:
		g.log.WarnContext(ctx, "push queue full; push dropped", "user_id", p.UserID, "event_id", p.EventID)
	}
}

// Close stops the workers; queued pushes are dropped.
func (g *Gateway) Close() {
	close(g.stop)
	g.wg.Wait()
}

func (g *Gateway) work() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-g.stop
		cancel()
	}()
	for {
		select {
		case <-g.stop:
			return
		case p := <-g.queue:
			g.deliver(ctx, p)
		}
	}
}

// notifyRequest is the push gateway request body.
type notifyRequest struct {
	Notification notification `json:"notification"`
}

type notification struct {
	EventID  string          `json:"event_id,omitempty"`
	RoomID   string          `json:"room_id,omitempty"`
	Type     string          `json:"type,omitempty"`
	Sender   string          `json:"sender,omitempty"`
	Content  json.RawMessage `json:"content,omitempty"`
	Prio     string          `json:"prio"`
	Counts   map[string]int  `json:"counts"`
	Devices  []device        `json:"devices"`
	UserIsTg bool            `json:"user_is_target,omitempty"`
}

type device struct {
	AppID     string                     `json:"app_id"`
	PushKey   string                     `json:"pushkey"`
	PushKeyTS int64                      `json:"pushkey_ts,omitempty"`
	Data      map[string]json.RawMessage `json:"data,omitempty"`
	Tweaks    map[string]json.RawMessage `json:"tweaks,omitempty"`
}

func (g *Gateway) deliver(ctx context.Context, p Push) {
	pushers, err := g.pushers.get(ctx, p.Localpart)
	if err != nil || len(pushers) == 0 {
		if err != nil {
			g.log.ErrorContext(ctx, "loading pushers failed", "user_id", p.UserID, "err", err)
		}
		return
	}
	unread, err := g.st.Push.Counts.SelectUnread(ctx, g.st.DB.Reader(), p.Localpart)
	if err != nil {
		g.log.ErrorContext(ctx, "loading unread count failed", "user_id", p.UserID, "err", err)
	}
	var ev struct {
		Type     string          `json:"type"`
		Sender   string          `json:"sender"`
		StateKey *string         `json:"state_key"`
		Content  json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(p.Event, &ev)
	for _, ps := range pushers {
		if ps.Kind != "http" {
			continue
		}
		var data map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ps.Data), &data); err != nil {
			continue
		}
		var url, format string
		_ = json.Unmarshal(data["url"], &url)
		_ = json.Unmarshal(data["format"], &format)
		delete(data, "url") // the gateway gets data without url
		n := notification{EventID: p.EventID, RoomID: p.RoomID, Prio: "low", Counts: map[string]int{"unread": int(unread)},
			Devices: []device{{AppID: ps.AppID, PushKey: ps.PushKey, PushKeyTS: ps.CreatedMS / 1000, Data: data, Tweaks: p.Outcome.Tweaks}}}
		if p.Outcome.Highlight || p.Outcome.Tweaks["sound"] != nil {
			n.Prio = "high"
		}
		if format != "event_id_only" {
			n.Type, n.Sender, n.Content = ev.Type, ev.Sender, ev.Content
			n.UserIsTg = ev.StateKey != nil && *ev.StateKey == p.UserID
		}
		body, _ := json.Marshal(notifyRequest{Notification: n})
		g.send(ctx, p, ps, url, body)
	}
}

// errRetry marks a failure worth retrying (network, 5xx, 429).
var errRetry = errors.New("retryable push failure")

func (g *Gateway) send(ctx context.Context, p Push, ps storage.PusherRow, url string, body []byte) {
	delay := g.baseDelay
	for attempt := 1; ; attempt++ {
		rejected, err := g.post(ctx, url, body)
		if err == nil {
			for _, k := range rejected {
				if k != ps.PushKey {
					continue
				}
				g.log.InfoContext(ctx, "push gateway rejected pushkey; removing pusher", "user_id", p.UserID, "app_id", ps.AppID)
				if err := g.st.Push.Pushers.DeleteKey(ctx, g.st.DB, ps.AppID, ps.PushKey); err != nil {
					g.log.ErrorContext(ctx, "removing rejected pusher failed", "err", err)
				}
			}
			return
		}
		if !errors.Is(err, errRetry) || attempt >= g.attempts {
			g.log.WarnContext(ctx, "push failed", "user_id", p.UserID, "event_id", p.EventID, "attempt", attempt, "err", err)
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay *= 2
	}
}

func (g *Gateway) post(ctx context.Context, url string, body []byte) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("push request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRetry, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		var r struct {
			Rejected []string `json:"rejected"`
		}
		_ = json.Unmarshal(data, &r)
		return r.Rejected, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: status %d", errRetry, resp.StatusCode)
	default:
		return nil, fmt.Errorf("push gateway answered %d", resp.StatusCode)
	}
}
