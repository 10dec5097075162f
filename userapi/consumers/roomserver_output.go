// Package consumers holds the userapi's log consumers: push evaluation of
// the roomserver output (notifications, counts, pushes to gateways).
package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/pushrules"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// RoomState is what push evaluation needs of the roomserver.
type RoomState interface {
	QueryCurrentState(ctx context.Context, req rsapi.QueryCurrentStateRequest) (rsapi.QueryCurrentStateResponse, error)
}

// Delivery receives what must be pushed to gateways, after commit.
type Delivery interface {
	Enqueue(ctx context.Context, p Push)
}

// Push is one notification to deliver to a user's pushers.
type Push struct {
	Localpart string
	UserID    string
	RoomID    string
	EventID   string
	Event     json.RawMessage
	Actions   []pushrules.Action
	Outcome   pushrules.Outcome
}

// RoomServerOutput evaluates every room event against the push rules of
// the room's local members, one transaction per event.
type RoomServerOutput struct {
	st         *storage.Storage
	rs         RoomState
	log        *slog.Logger
	serverName string
	evlog      eventlog.Log
	delivery   Delivery
	now        func() time.Time

	mu    sync.Mutex
	rooms map[string]*roomState // by room id; the consumer is ordered per room
	rules map[string]cachedRules
}

type cachedRules struct {
	version int64
	eval    *pushrules.Evaluator
}

// roomState is the part of a room's current state push needs.
type roomState struct {
	version *event.RoomVersion
	joined  map[string]string // user id → display name
	create  *event.PDU
	levels  *event.PDU
}

// NewRoomServerOutput returns the handler.
func NewRoomServerOutput(st *storage.Storage, rs RoomState, evlog eventlog.Log, d Delivery, serverName string, log *slog.Logger) *RoomServerOutput {
	return &RoomServerOutput{st: st, rs: rs, evlog: evlog, delivery: d, serverName: serverName, log: log, now: time.Now,
		rooms: map[string]*roomState{}, rules: map[string]cachedRules{}}
}

// header is what push reads of an event besides the rules' own lookups.
type header struct {
	Type     string  `json:"type"`
	Sender   string  `json:"sender"`
	StateKey *string `json:"state_key"`
	TS       int64   `json:"origin_server_ts"`
	Content  struct {
		Membership  any `json:"membership"`
		DisplayName any `json:"displayname"`
		RelatesTo   struct {
			RelType any `json:"rel_type"`
			EventID any `json:"event_id"`
		} `json:"m.relates_to"`
	} `json:"content"`
}

// Handle evaluates one output event. The event id is recorded in the same
// transaction as the notifications and counts, so a redelivery is a no-op.
func (c *RoomServerOutput) Handle(ctx context.Context, m eventlog.Msg[rsapi.OutputEvent]) error {
	ev := m.Value
	if ev.EventID == "" || ev.RoomID == "" {
		return eventlog.Permanent(fmt.Errorf("output message %d: no event id or room id", m.Seq))
	}
	var h header
	if err := json.Unmarshal(ev.Event, &h); err != nil {
		return eventlog.Permanent(fmt.Errorf("output event %s: %w", ev.EventID, err))
	}
	if ev.Rewrite {
		c.mu.Lock()
		delete(c.rooms, ev.RoomID)
		c.mu.Unlock()
	}
	room, err := c.room(ctx, ev.RoomID)
	if err != nil {
		return err
	}
	// Who to evaluate for: the room's local joined members but the sender,
	// and the target of an invite.
	members := make([]string, 0, len(room.joined))
	for u := range room.joined {
		if u != h.Sender && c.isLocal(u) {
			members = append(members, u)
		}
	}
	if h.Type == event.TypeMember && h.StateKey != nil && h.Content.Membership == "invite" &&
		*h.StateKey != h.Sender && c.isLocal(*h.StateKey) {
		if _, joined := room.joined[*h.StateKey]; !joined {
			members = append(members, *h.StateKey)
		}
	}
	r := pushrules.Room{MemberCount: len(room.joined), SenderPowerLevel: c.senderLevel(room, h.Sender),
		NotificationLevels: notificationLevels(room.levels)}
	// State changes apply after evaluation: the event is judged against
	// the room as it was before it.
	c.apply(ev, h, room)

	var pushes []Push
	if len(members) > 0 {
		pushes, err = c.evaluate(ctx, ev, h, members, room, &r)
		if err != nil {
			return err
		}
	}
	var notifs []storage.NotificationRow
	incs := map[[2]string]*storage.CountRow{}
	thread := threadOf(h)
	for _, p := range pushes {
		actions, _ := json.Marshal(p.Actions)
		notifs = append(notifs, storage.NotificationRow{Localpart: p.Localpart, RoomID: ev.RoomID, EventID: ev.EventID,
			ThreadID: thread, Seq: int64(m.Seq), TS: h.TS, Highlight: p.Outcome.Highlight, Actions: string(actions)})
		k := [2]string{p.Localpart, thread}
		inc := incs[k]
		if inc == nil {
			inc = &storage.CountRow{Localpart: p.Localpart, ThreadID: thread}
			incs[k] = inc
		}
		inc.Notification++
		if p.Outcome.Highlight {
			inc.Highlight++
		}
	}
	stored := []byte(nil)
	if len(notifs) > 0 {
		stored = ev.Event
	}
	var fresh bool
	err = c.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if fresh, err = c.st.Push.Events.Insert(ctx, tx, ev.EventID, ev.RoomID, int64(m.Seq), stored); err != nil || !fresh {
			return err
		}
		if len(notifs) == 0 {
			return nil
		}
		if err := c.st.Push.Notifs.InsertBatch(ctx, tx, notifs); err != nil {
			return err
		}
		rows := make([]storage.CountRow, 0, len(incs))
		for _, inc := range incs {
			rows = append(rows, *inc)
		}
		return c.st.Push.Counts.Add(ctx, tx, ev.RoomID, rows)
	})
	if err != nil {
		return fmt.Errorf("store push results of %s: %w", ev.EventID, err)
	}
	if !fresh || len(pushes) == 0 {
		return nil
	}
	locals := make([]string, 0, len(pushes))
	for _, p := range pushes {
		locals = append(locals, p.Localpart)
	}
	if err := c.PublishCounts(ctx, ev.RoomID, locals); err != nil {
		// The notifications are committed; the counts reach /sync with the
		// next change in the room.
		c.log.WarnContext(ctx, "publishing notification counts failed", "room_id", ev.RoomID, "err", err)
	}
	if c.delivery != nil {
		for _, p := range pushes {
			if p.Outcome.Notify {
				c.delivery.Enqueue(ctx, p)
			}
		}
	}
	return nil
}

// PublishCounts publishes the current counts of the listed local users in
// a room on api.NotificationCountsTopic.
func (c *RoomServerOutput) PublishCounts(ctx context.Context, roomID string, localparts []string) error {
	rows, err := c.st.Push.Counts.Select(ctx, c.st.DB, roomID, localparts)
	if err != nil {
		return err
	}
	msg := api.NotificationCounts{RoomID: roomID}
	index := map[string]int{}
	for _, l := range localparts {
		if _, ok := index[l]; !ok {
			index[l] = len(msg.Users)
			msg.Users = append(msg.Users, api.UserCounts{UserID: "@" + l + ":" + c.serverName})
		}
	}
	for _, r := range rows {
		i, ok := index[r.Localpart]
		if !ok {
			continue
		}
		u := &msg.Users[i]
		cnt := api.Counts{NotificationCount: r.Notification, HighlightCount: r.Highlight}
		u.Total.NotificationCount += r.Notification
		u.Total.HighlightCount += r.Highlight
		if r.ThreadID == "" {
			u.Main = cnt
		} else {
			if u.Threads == nil {
				u.Threads = map[string]api.Counts{}
			}
			u.Threads[r.ThreadID] = cnt
		}
	}
	if c.evlog == nil {
		return nil
	}
	if _, err := eventlog.Publish(ctx, c.evlog, api.NotificationCountsTopic, roomID, msg); err != nil {
		return fmt.Errorf("publish notification counts of %s: %w", roomID, err)
	}
	return nil
}

// evaluate runs every member's rules on the event; it returns the members
// to notify (or with any tweak).
func (c *RoomServerOutput) evaluate(ctx context.Context, ev rsapi.OutputEvent, h header, members []string, room *roomState, r *pushrules.Room) ([]Push, error) {
	evals, err := c.evaluators(ctx, members)
	if err != nil {
		return nil, err
	}
	pe, err := pushrules.NewEvent(ev.Event)
	if err != nil {
		return nil, nil // not an object: nothing can match
	}
	var out []Push
	for i, u := range members {
		_, actions, ok := evals[i].Evaluate(pe, r, room.joined[u])
		if !ok {
			continue
		}
		o := pushrules.OutcomeOf(actions)
		if !o.Notify {
			continue
		}
		out = append(out, Push{Localpart: c.localpart(u), UserID: u, RoomID: ev.RoomID, EventID: ev.EventID, Event: ev.Event, Actions: actions, Outcome: o})
	}
	return out, nil
}

// evaluators returns the compiled rules of members, recompiling only those
// whose stored version changed (one query for all of them).
func (c *RoomServerOutput) evaluators(ctx context.Context, members []string) ([]*pushrules.Evaluator, error) {
	locals := make([]string, len(members))
	for i, u := range members {
		locals[i] = c.localpart(u)
	}
	versions, err := c.st.Push.Rules.SelectVersions(ctx, c.st.DB.Reader(), c.st.DB.Dialect, locals)
	if err != nil {
		return nil, err
	}
	out := make([]*pushrules.Evaluator, len(members))
	for i, u := range members {
		v := versions[locals[i]]
		c.mu.Lock()
		cr, ok := c.rules[u]
		c.mu.Unlock()
		if !ok || cr.version != v {
			raw, ver, err := c.st.Push.Rules.Select(ctx, c.st.DB.Reader(), locals[i])
			if err != nil {
				return nil, err
			}
			var ur pushrules.UserRules
			if raw != nil {
				if err := json.Unmarshal(raw, &ur); err != nil {
					return nil, fmt.Errorf("decode push rules of %s: %w", u, err)
				}
			}
			cr = cachedRules{version: ver, eval: pushrules.Compile(ur.Merge(u))}
			c.mu.Lock()
			c.rules[u] = cr
			c.mu.Unlock()
		}
		out[i] = cr.eval
	}
	return out, nil
}

// room returns the cached state of a room, loading it from the roomserver
// the first time. NOTSPEC-adjacent: loaded while catching up, it is the
// current state rather than the state at the event.
func (c *RoomServerOutput) room(ctx context.Context, roomID string) (*roomState, error) {
	c.mu.Lock()
	rs, ok := c.rooms[roomID]
	c.mu.Unlock()
	if ok {
		return rs, nil
	}
	res, err := c.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{RoomID: roomID})
	if err != nil {
		return nil, fmt.Errorf("load state of %s for push: %w", roomID, err)
	}
	v, ok := event.Version(res.RoomVersion)
	if !ok {
		return nil, eventlog.Permanent(fmt.Errorf("room %s has unknown version %q", roomID, res.RoomVersion))
	}
	rs = &roomState{version: v, joined: map[string]string{}}
	for _, raw := range res.StateEvents {
		var h header
		if json.Unmarshal(raw, &h) != nil {
			continue
		}
		c.applyRaw(raw, h, rs)
	}
	c.mu.Lock()
	c.rooms[roomID] = rs
	c.mu.Unlock()
	return rs, nil
}

func (c *RoomServerOutput) apply(ev rsapi.OutputEvent, h header, rs *roomState) {
	c.applyRaw(ev.Event, h, rs)
}

// applyRaw folds a state event into the cached room state. Applying one
// twice changes nothing.
func (c *RoomServerOutput) applyRaw(raw json.RawMessage, h header, rs *roomState) {
	if h.StateKey == nil {
		return
	}
	switch h.Type {
	case event.TypeMember:
		if h.Content.Membership == "join" {
			name, _ := h.Content.DisplayName.(string)
			rs.joined[*h.StateKey] = name
		} else {
			delete(rs.joined, *h.StateKey)
		}
	case event.TypeCreate, event.TypePowerLevels:
		if *h.StateKey != "" {
			return
		}
		pdu, err := event.Parse(raw, rs.version)
		if err != nil {
			c.log.Warn("unparsable state event for push", "err", err)
			return
		}
		if h.Type == event.TypeCreate {
			rs.create = pdu
		} else {
			rs.levels = pdu
		}
	}
}

// senderLevel is the sender's power level; room v12 creators are above
// every level.
func (c *RoomServerOutput) senderLevel(rs *roomState, sender string) int64 {
	if rs.create != nil {
		for _, cr := range authrules.Creators(rs.create) {
			if string(cr) == sender && rs.version.ID == "12" {
				return math.MaxInt64
			}
		}
	}
	return authrules.PowerLevel(matrix.UserID(sender), rs.create, rs.levels)
}

func notificationLevels(pl *event.PDU) map[string]int64 {
	if pl == nil {
		return nil
	}
	var c struct {
		Notifications map[string]json.RawMessage `json:"notifications"`
	}
	if json.Unmarshal(pl.Content(), &c) != nil {
		return nil
	}
	out := map[string]int64{}
	for k, v := range c.Notifications {
		var n int64
		if json.Unmarshal(v, &n) == nil {
			out[k] = n
		}
	}
	return out
}

// threadOf is the thread root of an event in a thread, "" for the main
// timeline (only direct m.thread relations are followed).
func threadOf(h header) string {
	if h.Content.RelatesTo.RelType == "m.thread" {
		if id, ok := h.Content.RelatesTo.EventID.(string); ok {
			return id
		}
	}
	return ""
}

func (c *RoomServerOutput) isLocal(userID string) bool {
	_, ok := localpartOf(userID, c.serverName)
	return ok
}

// localpartOf is the localpart of userID if it is a user of serverName.
func localpartOf(userID, serverName string) (string, bool) {
	if !strings.HasPrefix(userID, "@") || !strings.HasSuffix(userID, ":"+serverName) {
		return "", false
	}
	return strings.TrimSuffix(userID[1:], ":"+serverName), true
}

func (c *RoomServerOutput) localpart(userID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":"+c.serverName)
}
