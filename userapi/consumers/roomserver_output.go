// Package consumers holds the userapi's log consumers: push evaluation of
// the roomserver output (notifications, counts, pushes to gateways).
package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
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
	// actions is Actions as JSON.
	actions string
}

// RoomServerOutput evaluates every room event against the push rules of
// the room's local members, one transaction per batch of events.
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
	rules map[string]*cachedRules
	// actionNIDs and userNIDs number the actions lists and the notified
	// users (storage.PushTables Actions, Users).
	actionNIDs, userNIDs *nidCache
	roomLocks            [256]sync.Mutex
	// afterStore, when set (tests), runs in the transaction for each
	// event once the batch's notifications and counts are written; an error
	// fails the batch.
	afterStore func(eventID string) error
	// oneStatement counts the batches storeFresh stored, for tests.
	oneStatement atomic.Int64
}

// rulesRecheck bounds how long compiled rules are used without rereading
// their version. Changes made in this process are seen at once (the table's
// Generation); this is for those made by another userapi process.
const rulesRecheck = 5 * time.Second

// cachedRules is a member's compiled rules, immutable once cached.
type cachedRules struct {
	version int64
	eval    *pushrules.Evaluator
	// actions is the JSON of each rule's actions by rule id (ids used by
	// two kinds with different actions are left out).
	actions map[string]string
	// gen and checked are the rules table generation and the time when
	// version was last read.
	gen     uint64
	checked time.Time
}

func compileRules(ur pushrules.UserRules, userID string, version int64) *cachedRules {
	rs := ur.Merge(userID)
	cr := &cachedRules{version: version, eval: pushrules.Compile(rs), actions: map[string]string{}}
	ambiguous := map[string]bool{}
	for _, k := range pushrules.Kinds {
		for _, r := range *rs.List(k) {
			js, err := json.Marshal(r.Actions)
			if err != nil || ambiguous[r.RuleID] {
				continue
			}
			if old, ok := cr.actions[r.RuleID]; ok && old != string(js) {
				delete(cr.actions, r.RuleID)
				ambiguous[r.RuleID] = true
				continue
			}
			cr.actions[r.RuleID] = string(js)
		}
	}
	return cr
}

// roomState is the part of a room's current state push needs.
type roomState struct {
	nid     int64 // storage.PushTables.Rooms number
	version *event.RoomVersion
	joined  map[string]string // user id → display name
	create  *event.PDU
	levels  *event.PDU
}

// clone copies rs for changing (the PDUs are immutable).
func (rs *roomState) clone() *roomState {
	out := *rs
	out.joined = maps.Clone(rs.joined)
	return &out
}

// NewRoomServerOutput returns the handler.
func NewRoomServerOutput(st *storage.Storage, rs RoomState, evlog eventlog.Log, d Delivery, serverName string, log *slog.Logger) *RoomServerOutput {
	return &RoomServerOutput{st: st, rs: rs, evlog: evlog, delivery: d, serverName: serverName, log: log, now: time.Now,
		rooms: map[string]*roomState{}, rules: map[string]*cachedRules{},
		actionNIDs: newNIDCache(st.Push.Actions.NIDs), userNIDs: newNIDCache(st.Push.Users.NIDs)}
}

// header is what push reads of an event besides the rules' own lookups.
type header struct {
	Type     string  `json:"type"`
	Sender   string  `json:"sender"`
	StateKey *string `json:"state_key"`
	Content  struct {
		Membership  any `json:"membership"`
		DisplayName any `json:"displayname"`
		RelatesTo   struct {
			RelType any `json:"rel_type"`
			EventID any `json:"event_id"`
		} `json:"m.relates_to"`
	} `json:"content"`
}

// Handle evaluates one output event; see HandleBatch.
func (c *RoomServerOutput) Handle(ctx context.Context, m eventlog.Msg[rsapi.OutputEvent]) error {
	return c.HandleBatch(ctx, []eventlog.Msg[rsapi.OutputEvent]{m})
}

// pushItem is one event of a batch on its way through HandleBatch.
type pushItem struct {
	ev      rsapi.OutputEvent
	seq     int64
	roomNID int64
	thread  string
	pushes  []Push
	notifs  []storage.NewNotification
	// Set when the batch is stored (storeFresh or the transaction): the
	// event was not stored before.
	fresh bool
}

// batchRoom is a room's state as the events of a batch change it: the
// cached state itself until the first state event, then a copy, which
// replaces the cached one only when the batch commits (a failed batch is
// retried one message at a time, and must be judged against the room as
// it was).
type batchRoom struct {
	rs     *roomState
	copied bool
}

// HandleBatch evaluates output events, in the order given, and stores
// their notifications and counts in one transaction (on PostgreSQL, when
// none was stored before, in one statement: storeFresh). Each event id is
// recorded in that transaction and an event already recorded (or repeated
// in the batch) is skipped, so a batch redelivered wholly or in part
// changes nothing twice. The counts are added once per room and thread for
// the whole batch (storeCounts); after the commit one counts message per
// room is published and the pushes are queued, in the order of the events.
// An error stores nothing and leaves the cached room state as it was.
func (c *RoomServerOutput) HandleBatch(ctx context.Context, msgs []eventlog.Msg[rsapi.OutputEvent]) error {
	items := make([]pushItem, 0, len(msgs))
	rooms := map[string]*batchRoom{}
	seen := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		ev := m.Value
		if ev.EventID == "" || ev.RoomID == "" {
			return eventlog.Permanent(fmt.Errorf("output message %d: no event id or room id", m.Seq))
		}
		if seen[ev.EventID] {
			continue // its state is applied already; the first copy counts
		}
		seen[ev.EventID] = true
		it, err := c.prepare(ctx, m, rooms)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil
	}
	// Held until the counts read in the transaction are published, so that
	// counts a receipt recounts meanwhile are published after them. Taken
	// in index order (two rooms may share a lock), so batches and
	// PublishCounts cannot deadlock.
	locks := make([]int, 0, len(rooms))
	for id := range rooms {
		locks = append(locks, c.roomLockIndex(id))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, i := range locks {
		c.roomLocks[i].Lock()
	}
	defer func() {
		for _, i := range locks {
			c.roomLocks[i].Unlock()
		}
	}()
	counts, stored, err := c.storeFresh(ctx, items)
	if err == nil && !stored {
		counts, err = c.storeTx(ctx, items)
	}
	if err != nil {
		if len(items) == 1 {
			return fmt.Errorf("store push results of %s: %w", items[0].ev.EventID, err)
		}
		return fmt.Errorf("store push results of %d events: %w", len(items), err)
	}
	c.mu.Lock()
	for id, br := range rooms {
		if br.copied {
			c.rooms[id] = br.rs
		}
	}
	c.mu.Unlock()
	for _, rc := range counts {
		if err := c.publishCounts(ctx, rc.roomID, rc.locals, rc.rows); err != nil {
			// The notifications are committed; the counts reach /sync with the
			// next change in the room.
			c.log.WarnContext(ctx, "publishing notification counts failed", "room_id", rc.roomID, "err", err)
		}
	}
	if c.delivery != nil {
		for i := range items {
			if !items[i].fresh {
				continue
			}
			for _, p := range items[i].pushes {
				if p.Outcome.Notify {
					c.delivery.Enqueue(ctx, p)
				}
			}
		}
	}
	return nil
}

// storeTx stores a batch in a transaction: every event is recorded as
// handled at once, and the ones recorded before (a redelivery) write
// nothing else. It returns the counts read back in the transaction.
func (c *RoomServerOutput) storeTx(ctx context.Context, items []pushItem) ([]roomCounts, error) {
	var counts []roomCounts
	err := c.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		fresh, err := c.st.Push.Events.InsertMany(ctx, tx, pushEvents(items))
		if err != nil {
			return err
		}
		for i := range items {
			items[i].fresh = fresh[items[i].ev.EventID] // InTx may run this again
		}
		// The notifications of the events recorded now; the counts are
		// storeCounts' work.
		if err := c.st.Push.Notifs.Insert(ctx, tx, freshNotifs(items)); err != nil {
			return err
		}
		if counts, err = c.storeCounts(ctx, tx, items); err != nil {
			return err
		}
		if c.afterStore != nil {
			for _, it := range items {
				if err := c.afterStore(it.ev.EventID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return counts, err
}

// storeFresh stores a batch on PostgreSQL as if every event were fresh,
// in one statement (storage.PushTables.StoreFresh), and reports whether it
// did: not when an event was recorded before (a redelivery, wholly or in
// part), which the transaction path then sorts out. One statement rather
// than BEGIN … COMMIT sent as one pgx.Batch: its failure needs no
// ROLLBACK, and the counts written are read back from it all the same.
// With afterStore set (tests), which runs inside the transaction, it
// leaves the batch to that path.
func (c *RoomServerOutput) storeFresh(ctx context.Context, items []pushItem) ([]roomCounts, bool, error) {
	if c.st.DB.Dialect.Engine != sqlutil.Postgres || c.afterStore != nil {
		return nil, false, nil
	}
	for i := range items {
		items[i].fresh = true
	}
	counts, adds, want := countPlan(items)
	rows, err := c.st.Push.StoreFresh(ctx, c.st.DB, pushEvents(items), freshNotifs(items), adds, want)
	if errors.Is(err, storage.ErrStoredBefore) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for i := range counts {
		counts[i].rows = rows[counts[i].roomID]
	}
	c.oneStatement.Add(1)
	return counts, true, nil
}

// pushEvents are the rows recording items as handled.
func pushEvents(items []pushItem) []storage.PushEvent {
	evs := make([]storage.PushEvent, len(items))
	for i, it := range items {
		evs[i] = storage.PushEvent{EventID: it.ev.EventID, RoomID: it.ev.RoomID, Seq: it.seq}
		if len(it.notifs) > 0 {
			evs[i].Event = it.ev.Event
		}
	}
	return evs
}

// freshNotifs are the notifications of the fresh items.
func freshNotifs(items []pushItem) []storage.EventNotifications {
	notifs := make([]storage.EventNotifications, 0, len(items))
	for _, it := range items {
		if it.fresh && len(it.notifs) > 0 {
			notifs = append(notifs, storage.EventNotifications{Seq: it.seq, RoomNID: it.roomNID, Thread: it.thread, Rows: it.notifs})
		}
	}
	return notifs
}

// roomCounts is what one counts message of a batch carries for a room.
type roomCounts struct {
	roomID string
	locals []string
	rows   []storage.CountRow
}

// storeCounts adds the notifications of a batch's fresh events to the
// count rows (one statement on PostgreSQL, one per room and thread on
// SQLite), and reads each room's rows of the users notified (one
// statement), for one counts message per room (countPlan).
func (c *RoomServerOutput) storeCounts(ctx context.Context, tx *sql.Tx, items []pushItem) ([]roomCounts, error) {
	out, adds, want := countPlan(items)
	if err := c.st.Push.Counts.AddGroups(ctx, tx, adds); err != nil {
		return nil, err
	}
	rows, err := c.st.Push.Counts.SelectRooms(ctx, tx, want)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].rows = rows[out[i].roomID]
	}
	return out, nil
}

// countPlan is what the notifications of a batch's fresh events add to
// the count rows, once per room, thread and user, and the counts messages
// to publish, one per room (in the order of the rooms' first events) with
// the users notified (want: room → localparts, their rows still to read).
// A busy room thus costs one update per member, and one counts message
// and syncapi write, per batch rather than per event.
func countPlan(items []pushItem) (out []roomCounts, adds []storage.CountGroup, want map[string][]string) {
	type group struct {
		roomID, thread string
		firstSeq       int64
		deltas         []storage.CountDelta
		index          map[string]int // localpart → deltas index
	}
	var groups []*group
	rooms := map[string]int{}       // room → out index
	byKey := map[[2]string]*group{} // (room, thread) → group
	listed := map[[2]string]bool{}  // (room, localpart) in out's locals
	for i := range items {
		it := &items[i]
		if !it.fresh || len(it.notifs) == 0 {
			continue
		}
		ri, ok := rooms[it.ev.RoomID]
		if !ok {
			ri = len(out)
			rooms[it.ev.RoomID] = ri
			out = append(out, roomCounts{roomID: it.ev.RoomID})
		}
		g := byKey[[2]string{it.ev.RoomID, it.thread}]
		if g == nil {
			g = &group{roomID: it.ev.RoomID, thread: it.thread, firstSeq: it.seq, index: map[string]int{}}
			byKey[[2]string{it.ev.RoomID, it.thread}] = g
			groups = append(groups, g)
		}
		for _, n := range it.notifs {
			di, ok := g.index[n.Localpart]
			if !ok {
				di = len(g.deltas)
				g.index[n.Localpart] = di
				g.deltas = append(g.deltas, storage.CountDelta{Localpart: n.Localpart})
				if k := [2]string{it.ev.RoomID, n.Localpart}; !listed[k] {
					listed[k] = true
					out[ri].locals = append(out[ri].locals, n.Localpart)
				}
			}
			g.deltas[di].Notification++
			if n.Highlight {
				g.deltas[di].Highlight++
			}
		}
	}
	adds = make([]storage.CountGroup, len(groups))
	for i, g := range groups {
		adds[i] = storage.CountGroup{RoomID: g.roomID, Thread: g.thread, FirstSeq: g.firstSeq, Deltas: g.deltas}
	}
	want = make(map[string][]string, len(out))
	for _, rc := range out {
		want[rc.roomID] = rc.locals
	}
	return out, adds, want
}

// prepare is the work on one event outside the transaction: evaluating it
// against the room before it, then applying its state change to the
// batch's view of the room.
func (c *RoomServerOutput) prepare(ctx context.Context, m eventlog.Msg[rsapi.OutputEvent], rooms map[string]*batchRoom) (pushItem, error) {
	ev := m.Value
	var h header
	if err := json.Unmarshal(ev.Event, &h); err != nil {
		return pushItem{}, eventlog.Permanent(fmt.Errorf("output event %s: %w", ev.EventID, err))
	}
	br := rooms[ev.RoomID]
	if ev.Rewrite {
		c.mu.Lock()
		delete(c.rooms, ev.RoomID)
		c.mu.Unlock()
		br = nil
	}
	if br == nil {
		rs, err := c.room(ctx, ev.RoomID)
		if err != nil {
			return pushItem{}, err
		}
		br = &batchRoom{rs: rs}
		rooms[ev.RoomID] = br
	}
	room := br.rs
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
	it := pushItem{ev: ev, seq: int64(m.Seq), roomNID: room.nid, thread: threadOf(h)}
	if len(members) > 0 {
		var err error
		if it.pushes, err = c.evaluate(ctx, ev, h, members, room, &r); err != nil {
			return pushItem{}, err
		}
	}
	// State changes apply after evaluation: the event is judged against
	// the room as it was before it.
	if h.StateKey != nil && (h.Type == event.TypeMember || h.Type == event.TypeCreate || h.Type == event.TypePowerLevels) {
		if !br.copied {
			br.rs, br.copied = room.clone(), true
		}
		c.apply(ev, h, br.rs)
	}
	it.notifs = make([]storage.NewNotification, 0, len(it.pushes))
	locals, actionLists := make([]string, len(it.pushes)), make([]string, len(it.pushes))
	for i, p := range it.pushes {
		locals[i], actionLists[i] = p.Localpart, p.actions
	}
	users, err := c.userNIDs.getAll(ctx, c.st.DB, locals)
	if err != nil {
		return pushItem{}, err
	}
	actions, err := c.actionNIDs.getAll(ctx, c.st.DB, actionLists)
	if err != nil {
		return pushItem{}, err
	}
	for _, p := range it.pushes {
		it.notifs = append(it.notifs, storage.NewNotification{Localpart: p.Localpart, UserNID: users[p.Localpart], Highlight: p.Outcome.Highlight, ActionsNID: actions[p.actions]})
	}
	return it, nil
}

// PublishCounts publishes the current counts of the listed local users in
// a room on api.NotificationCountsTopic.
func (c *RoomServerOutput) PublishCounts(ctx context.Context, roomID string, localparts []string) error {
	lock := c.roomLock(roomID)
	lock.Lock()
	defer lock.Unlock()
	rows, err := c.st.Push.Counts.Select(ctx, c.st.DB, roomID, localparts)
	if err != nil {
		return err
	}
	return c.publishCounts(ctx, roomID, localparts, rows)
}

// roomLock orders the publishing of a room's counts in this process.
func (c *RoomServerOutput) roomLock(roomID string) *sync.Mutex {
	return &c.roomLocks[c.roomLockIndex(roomID)]
}

func (c *RoomServerOutput) roomLockIndex(roomID string) int {
	h := uint32(2166136261) // FNV-1a, without a hasher allocated per call
	for i := 0; i < len(roomID); i++ {
		h = (h ^ uint32(roomID[i])) * 16777619
	}
	return int(h % uint32(len(c.roomLocks)))
}

// publishCounts publishes rows, the count rows of the listed users in a
// room (rows of other users are left out).
func (c *RoomServerOutput) publishCounts(ctx context.Context, roomID string, localparts []string, rows []storage.CountRow) error {
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
	for i := range msg.Users {
		if len(msg.Users[i].Threads) == 0 {
			msg.Users[i].Main = api.Counts{} // the total; left out of the message
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
	rules, err := c.evaluators(ctx, members)
	if err != nil {
		return nil, err
	}
	pe, err := pushrules.NewEvent(ev.Event)
	if err != nil {
		return nil, nil // not an object: nothing can match
	}
	var out []Push
	for i, u := range members {
		ruleID, actions, ok := rules[i].eval.Evaluate(pe, r, room.joined[u])
		if !ok {
			continue
		}
		o := pushrules.OutcomeOf(actions)
		if !o.Notify {
			continue
		}
		js, ok := rules[i].actions[ruleID]
		if !ok {
			b, err := json.Marshal(actions)
			if err != nil {
				return nil, fmt.Errorf("encode push actions of %s: %w", u, err)
			}
			js = string(b)
		}
		out = append(out, Push{Localpart: c.localpart(u), UserID: u, RoomID: ev.RoomID, EventID: ev.EventID, Event: ev.Event,
			Actions: actions, Outcome: o, actions: js})
	}
	return out, nil
}

// evaluators returns the compiled rules of members. Their versions are
// reread (one query for all who need it) only after a change in this
// process or rulesRecheck, and rules are recompiled only when their
// version changed.
func (c *RoomServerOutput) evaluators(ctx context.Context, members []string) ([]*cachedRules, error) {
	// Read before the versions: a change after this leaves the entries
	// stamped with an older generation, so they are checked again.
	gen := c.st.Push.Rules.Generation()
	now := c.now()
	out := make([]*cachedRules, len(members))
	var stale []int
	c.mu.Lock()
	for i, u := range members {
		cr := c.rules[u]
		if cr == nil || cr.gen != gen || now.Sub(cr.checked) >= rulesRecheck {
			stale = append(stale, i)
		}
		out[i] = cr
	}
	c.mu.Unlock()
	if len(stale) == 0 {
		return out, nil
	}
	locals := make([]string, len(stale))
	for j, i := range stale {
		locals[j] = c.localpart(members[i])
	}
	versions, err := c.st.Push.Rules.SelectVersions(ctx, c.st.DB.Reader(), c.st.DB.Dialect, locals)
	if err != nil {
		return nil, err
	}
	for j, i := range stale {
		u, v, old := members[i], versions[locals[j]], out[i]
		var cr *cachedRules
		if old != nil && old.version == v {
			fresh := *old
			cr = &fresh
		} else {
			raw, ver, err := c.st.Push.Rules.Select(ctx, c.st.DB.Reader(), locals[j])
			if err != nil {
				return nil, err
			}
			var ur pushrules.UserRules
			if raw != nil {
				if err := json.Unmarshal(raw, &ur); err != nil {
					return nil, fmt.Errorf("decode push rules of %s: %w", u, err)
				}
			}
			cr = compileRules(ur, u, ver)
		}
		cr.gen, cr.checked = gen, now
		c.mu.Lock()
		c.rules[u] = cr
		c.mu.Unlock()
		out[i] = cr
	}
	return out, nil
}

// nidCache holds numbers the push tables give strings (actions lists,
// users), assigned the first time a string is seen in a statement of its
// own: a number from a transaction that rolls back must not be cached.
type nidCache struct {
	mu     sync.Mutex
	m      map[string]int64
	assign func(context.Context, sqlutil.Querier, []string) (map[string]int64, error)
}

func newNIDCache(assign func(context.Context, sqlutil.Querier, []string) (map[string]int64, error)) *nidCache {
	return &nidCache{m: map[string]int64{}, assign: assign}
}

// getAll returns the numbers of vs, those not cached read or assigned in
// one go.
func (n *nidCache) getAll(ctx context.Context, db sqlutil.Querier, vs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(vs))
	var missing []string
	n.mu.Lock()
	for _, v := range vs {
		if nid, ok := n.m[v]; ok {
			out[v] = nid
		} else {
			missing = append(missing, v)
		}
	}
	n.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := n.assign(ctx, db, missing)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if len(n.m)+len(got) > maxNIDs {
		clear(n.m)
	}
	for v, nid := range got {
		n.m[v], out[v] = nid, nid
	}
	n.mu.Unlock()
	return out, nil
}

// maxNIDs bounds a nidCache: numbers are read again after it is emptied.
const maxNIDs = 100_000

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
	nid, err := c.st.Push.Rooms.NID(ctx, c.st.DB, roomID)
	if err != nil {
		return nil, err
	}
	rs = &roomState{nid: nid, version: v, joined: map[string]string{}}
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

// localpartOf is the localpart of userID if it is a valid user id of
// serverName.
func localpartOf(userID, serverName string) (string, bool) {
	u, err := matrix.ParseUserID(userID)
	if err != nil || string(u.Server()) != serverName {
		return "", false
	}
	return u.Localpart(), true
}

func (c *RoomServerOutput) localpart(userID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":"+c.serverName)
}
