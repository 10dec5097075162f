package routing

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/internal/typing"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Membership values.
const (
	join   = "join"
	invite = "invite"
	knock  = "knock"
	leave  = "leave"
	ban    = "ban"
)

// heroCount is how many heroes a room summary lists (the spec's "first 5
// members").
const heroCount = 5

// strippedStateTypes are the state types put in invite_state and
// knock_state (client-server API "Stripped state"; m.room.create is
// required since v1.16).
var strippedStateTypes = []string{
	"m.room.create", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.join_rules", "m.room.canonical_alias", "m.room.encryption",
}

// builder assembles one /sync response. Every read is bounded by the PDU
// position of cur, which is next_batch: storage commits positions in order
// (see the storage package), so everything at or before it is visible.
type builder struct {
	db  *storage.Storage
	q   sqlutil.Querier
	dev userapi.Device
	req Request
	cur streams.Token
	now time.Time
	// typing is the in-memory typing state; peers returns the users whose
	// presence a user may see (itself and its room mates).
	typing *typing.Typing
	peers  func(userID string) []string
	// membershipCache and ignoredCache are the process's /sync caches (nil
	// for builders of other endpoints: everything is read).
	membershipCache *spanCache[[]storage.Membership]
	ignoredCache    *spanCache[map[string]bool]
	// unbundled are the limited timelines waiting for their aggregations
	// (bundleTimelines).
	unbundled []unbundled
	// ignored are the users whose message events the user ignores
	// (m.ignored_user_list); their invites are not sent either.
	ignored map[string]bool
	// memberships are the user's memberships at upTo, once known.
	memberships []storage.Membership
	haveMembers bool
	// window holds, when read at once (readWindow), the events in (since,
	// upTo] of the rooms the user was joined to throughout, by room (an
	// entry, maybe empty, for each of those rooms).
	window      map[string][]storage.Event
	windowAfter streams.Position
	// maxWindow bounds the PDU positions of a window read at once (only
	// incremental syncs read one).
	maxWindow streams.Position
	// accountData are the user's account data changes in (since, cur], once
	// read (accountDataChanges).
	accountData     []storage.AccountData
	haveAccountData bool
	// counts are the user's notification counts (userCounts), once read.
	counts map[string]storage.NotificationCounts
	// bounds are the aggregation bounds (aggregationBounds), once read.
	bounds map[string]streams.Position
}

// defaultMaxWindow bounds the PDU positions whose events an incremental
// sync reads in one query, instead of finding the rooms with news and then
// reading each (readWindow): a long-poll woken by a message has a window of
// a few, and a wider one would read events the timelines leave out.
const defaultMaxWindow = 100

// build answers an initial sync (since nil) or an incremental one.
func (b *builder) build(ctx context.Context, since *streams.Token) (*Response, error) {
	resp := newResponse(b.cur)
	from := streams.Token{}
	var err error
	if b.ignored, err = b.ignoredUsers(ctx, since); err != nil {
		return nil, err
	}
	if since == nil {
		err = b.initial(ctx, resp)
	} else {
		from = *since
		err = b.incremental(ctx, resp, from)
	}
	if err != nil {
		return nil, err
	}
	if err := b.bundleTimelines(ctx); err != nil {
		return nil, err
	}
	if err := b.ephemeralAndAccountData(ctx, resp, from, since == nil); err != nil {
		return nil, err
	}
	return resp, nil
}

func (b *builder) upTo() streams.Position { return b.cur.Get(streams.PDU) }

func (b *builder) initial(ctx context.Context, resp *Response) error {
	ms, err := b.membershipsAt(ctx, b.upTo())
	if err != nil {
		return err
	}
	b.memberships, b.haveMembers = ms, true
	for _, m := range ms {
		if !b.req.Filter.IncludesRoom(m.RoomID) {
			continue
		}
		switch m.Membership {
		case join:
			jr, err := b.joinedRoom(ctx, m.RoomID, 0, true, true)
			if err != nil {
				return err
			}
			resp.Rooms.Join[m.RoomID] = jr
		case invite, knock:
			if err := b.strippedRoom(ctx, resp, m); err != nil {
				return err
			}
		case leave, ban:
			if b.req.Filter.Room.IncludeLeave {
				lr, err := b.leftRoom(ctx, m, 0, true)
				if err != nil {
					return err
				}
				resp.Rooms.Leave[m.RoomID] = lr
			}
		}
	}
	return nil
}

func (b *builder) incremental(ctx context.Context, resp *Response, sinceTok streams.Token) error {
	since := sinceTok.Get(streams.PDU)
	changes, err := b.db.Deltas.MembershipChanges(ctx, b.q, b.dev.UserID, since, b.upTo())
	if err != nil {
		return err
	}
	var before, now []storage.Membership
	if len(changes) == 0 {
		// The common case of a long-poll woken by a message: the memberships
		// at since are the ones now, and most often already cached.
		if now, err = b.quietMemberships(ctx, since, b.upTo()); err != nil {
			return err
		}
		before = now
	} else {
		if before, err = b.quietMemberships(ctx, since, since); err != nil {
			return err
		}
		now = applyChanges(before, changes)
		if b.membershipCache != nil {
			b.membershipCache.put(b.dev.UserID, changes[len(changes)-1].Position, b.upTo(), now)
		}
	}
	b.memberships, b.haveMembers = now, true
	was := map[string]string{}
	for _, m := range before {
		was[m.RoomID] = m.Membership
	}
	changed := map[string]bool{}
	joinedInWindow := map[string]bool{}
	for _, c := range changes {
		changed[c.RoomID] = true
		if c.Membership == join {
			joinedInWindow[c.RoomID] = true
		}
	}

	var steady []string
	for _, m := range now {
		if !b.req.Filter.IncludesRoom(m.RoomID) {
			continue
		}
		switch {
		case m.Membership == join && was[m.RoomID] != join:
			// Newly joined: the client knows nothing of the room yet.
			jr, err := b.joinedRoom(ctx, m.RoomID, 0, true, true)
			if err != nil {
				return err
			}
			resp.Rooms.Join[m.RoomID] = jr
		case m.Membership == join:
			steady = append(steady, m.RoomID)
		case !changed[m.RoomID]:
			// Invites, knocks and leaves are reported when they happen.
		case m.Membership == invite || m.Membership == knock:
			if err := b.strippedRoom(ctx, resp, m); err != nil {
				return err
			}
		case m.Membership == leave || m.Membership == ban:
			var lr *LeftRoom
			switch {
			case was[m.RoomID] == join:
				lr, err = b.leftRoom(ctx, m, since, b.req.FullState)
			case joinedInWindow[m.RoomID]:
				// Joined and left between two syncs: the client never saw the room.
				lr, err = b.leftRoom(ctx, m, 0, true)
			default:
				// A rejected invite or a ban before joining: only the event itself.
				lr, err = b.leftRoom(ctx, m, m.Position-1, false)
			}
			if err != nil {
				return err
			}
			resp.Rooms.Leave[m.RoomID] = lr
		}
	}

	active := steady
	if b.upTo()-since <= b.maxWindow {
		if err := b.readWindow(ctx, steady, since); err != nil {
			return err
		}
		if !b.req.FullState {
			active = nil
			for _, room := range steady {
				if len(b.window[room]) > 0 {
					active = append(active, room)
				}
			}
		}
	} else if !b.req.FullState {
		if active, err = b.db.Events.RoomsWithEvents(ctx, b.q, steady, since, b.upTo()); err != nil {
			return err
		}
	}
	// Rooms with nothing new but ephemeral events, room account data or
	// notification counts are sent with an empty timeline.
	others, err := b.roomsWithOtherNews(ctx, steady, sinceTok)
	if err != nil {
		return err
	}
	for _, room := range others {
		if !slices.Contains(active, room) {
			active = append(active, room)
		}
	}
	for _, room := range active {
		jr, err := b.joinedRoom(ctx, room, since, b.req.FullState, changed[room])
		if err != nil {
			return err
		}
		resp.Rooms.Join[room] = jr
	}
	return nil
}

// membershipsAt reads the user's memberships at position at, and caches
// them for the positions from their latest change to at.
func (b *builder) membershipsAt(ctx context.Context, at streams.Position) ([]storage.Membership, error) {
	ms, latest, err := b.db.Deltas.MembershipState(ctx, b.q, b.dev.UserID, at)
	if err != nil {
		return nil, err
	}
	if b.membershipCache != nil {
		b.membershipCache.put(b.dev.UserID, latest, at, ms)
	}
	return ms, nil
}

// quietMemberships returns the user's memberships at hi, given that they
// did not change in (lo, hi]: from the cache when it covers a position of
// that span, else read.
func (b *builder) quietMemberships(ctx context.Context, lo, hi streams.Position) ([]storage.Membership, error) {
	if b.membershipCache != nil {
		if ms, ok := b.membershipCache.get(b.dev.UserID, lo, hi); ok {
			return ms, nil
		}
	}
	return b.membershipsAt(ctx, hi)
}

// applyChanges returns the memberships after the changes (in position
// order) from the ones before: each change replaces the room's membership,
// a removal drops it. The result is in position order, as MembershipsAt's.
func applyChanges(before, changes []storage.Membership) []storage.Membership {
	byRoom := make(map[string]storage.Membership, len(before)+len(changes))
	for _, m := range before {
		byRoom[m.RoomID] = m
	}
	for _, c := range changes {
		if c.EventID == "" {
			delete(byRoom, c.RoomID)
		} else {
			byRoom[c.RoomID] = c
		}
	}
	out := make([]storage.Membership, 0, len(byRoom))
	for _, m := range byRoom {
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y storage.Membership) int { return cmp.Compare(x.Position, y.Position) })
	return out
}

// readWindow reads the events of rooms in (after, upTo] in one query, for
// recent to serve their timelines from.
func (b *builder) readWindow(ctx context.Context, rooms []string, after streams.Position) error {
	evs, err := b.db.Events.InRange(ctx, b.q, rooms, after, b.upTo())
	if err != nil {
		return err
	}
	b.window = make(map[string][]storage.Event, len(rooms))
	for _, room := range rooms {
		b.window[room] = nil
	}
	for _, e := range evs {
		b.window[e.RoomID] = append(b.window[e.RoomID], e)
	}
	b.windowAfter = after
	return nil
}

// joinedRoom builds a joined room: the timeline after position after up to
// next_batch, and either the full state at its start (full) or the state
// changes since after (client-server API "Syncing": state is the state up
// to the start of the timeline).
//
// checkVisibility is false only when the user was joined throughout the
// window, so that every event in it is visible.
func (b *builder) joinedRoom(ctx context.Context, roomID string, after streams.Position, full, checkVisibility bool) (*JoinedRoom, error) {
	w, err := b.roomWindow(ctx, roomID, after, b.upTo(), full, checkVisibility)
	if err != nil {
		return nil, err
	}
	jr := &JoinedRoom{
		Timeline:    w.timeline,
		Ephemeral:   emptyBatch(),
		AccountData: emptyBatch(),
	}
	if b.req.UseStateAfter {
		jr.StateAfter = &w.stateAfter
	} else {
		jr.State = &w.state
	}
	// The summary may be omitted while it does not change, and only
	// membership events change it.
	if full || w.members {
		if jr.Summary, err = b.summary(ctx, roomID); err != nil {
			return nil, err
		}
	}
	return jr, nil
}

// leftRoom builds a left room: the timeline up to the leave event.
func (b *builder) leftRoom(ctx context.Context, m storage.Membership, after streams.Position, full bool) (*LeftRoom, error) {
	w, err := b.roomWindow(ctx, m.RoomID, after, m.Position, full, true)
	if err != nil {
		return nil, err
	}
	lr := &LeftRoom{Timeline: w.timeline, AccountData: emptyBatch()}
	if b.req.UseStateAfter {
		lr.StateAfter = &w.stateAfter
	} else {
		lr.State = &w.state
	}
	return lr, nil
}

// window is a room's timeline and the state that goes with it.
type window struct {
	timeline   Timeline
	state      EventBatch // at the start of the timeline
	stateAfter EventBatch // at its end
	members    bool       // a membership event is among them
}

// roomWindow reads a room's timeline in (after, upTo] and its state at the
// start of the timeline (state) and at its end (state_after), in full or as
// the changes since after. Only the one the request asked for is read.
func (b *builder) roomWindow(ctx context.Context, roomID string, after, upTo streams.Position, full, checkVisibility bool) (window, error) {
	tf := b.req.Filter.Room.Timeline
	evs, limited, err := b.recent(ctx, roomID, after, upTo, b.req.Filter.TimelineLimit(), tf)
	if err != nil {
		return window{}, err
	}
	if checkVisibility && len(evs) > 0 {
		v, err := b.loadVisibility(ctx, roomID, upTo)
		if err != nil {
			return window{}, err
		}
		if shown := v.visibleSuffix(evs); len(shown) < len(evs) {
			// Hidden events form a gap before the timeline: limited makes the
			// state delta cover it.
			evs, limited = shown, true
		}
	}
	start := upTo // the position just before the timeline
	if len(evs) > 0 {
		start = evs[0].Position - 1
	}
	var stateEvs []storage.Event
	switch {
	case !tf.empty() && !b.req.UseStateAfter:
		// A filtered timeline may leave out state events of the window: the
		// state section then brings the room to its state at the end,
		// less what the timeline itself carries.
		if full {
			stateEvs, err = b.db.Deltas.StateAt(ctx, b.q, roomID, upTo, nil)
		} else {
			stateEvs, err = b.db.Deltas.StateChanges(ctx, b.q, roomID, after, upTo)
		}
		stateEvs = withoutEvents(stateEvs, evs)
	case b.req.UseStateAfter && full:
		stateEvs, err = b.db.Deltas.StateAt(ctx, b.q, roomID, upTo, nil)
	case b.req.UseStateAfter:
		stateEvs, err = b.db.Deltas.StateChanges(ctx, b.q, roomID, after, upTo)
	case full:
		stateEvs, err = b.db.Deltas.StateAt(ctx, b.q, roomID, start, nil)
	case limited:
		// The gap between since and the timeline may hold state changes.
		stateEvs, err = b.db.Deltas.StateChanges(ctx, b.q, roomID, after, start)
	}
	if err != nil {
		return window{}, err
	}
	if stateEvs, err = b.filterState(ctx, roomID, start, stateEvs, evs); err != nil {
		return window{}, err
	}
	all := make([]storage.Event, 0, len(evs)+len(stateEvs))
	all = append(append(all, evs...), stateEvs...)
	rendered, err := b.renderWith(ctx, all, nil)
	if err != nil {
		return window{}, err
	}
	// Aggregations only for a limited timeline (client-server API
	// "Aggregations of child events": otherwise the client has every child
	// since its last sync), added for all rooms at once by build.
	if limited && b.req.Filter.EventFormat != "federation" {
		b.unbundled = append(b.unbundled, unbundled{evs: evs, rendered: rendered[:len(evs)]})
	}
	w := window{
		timeline: Timeline{
			Events:    rendered[:len(evs)],
			Limited:   limited,
			PrevBatch: b.cur.With(streams.PDU, start).String(),
		},
		state:      emptyBatch(),
		stateAfter: emptyBatch(),
	}
	if b.req.UseStateAfter {
		w.stateAfter.Events = rendered[len(evs):]
	} else {
		w.state.Events = rendered[len(evs):]
	}
	for _, e := range all {
		w.members = w.members || e.Type == storage.MemberEvent
	}
	return w, nil
}

// render formats events for the requesting device, in order, with their
// bundled aggregations (aggregations.go).
func (b *builder) render(ctx context.Context, evs []storage.Event) ([]json.RawMessage, error) {
	if b.req.Filter.EventFormat == "federation" {
		return b.renderWith(ctx, evs, nil)
	}
	rels, err := b.aggregations(ctx, evs)
	if err != nil {
		return nil, err
	}
	return b.renderWith(ctx, evs, rels)
}

// renderWith formats events with the given aggregations (event id →
// m.relations). The content replaced state events had is loaded in one
// query for unsigned.prev_content.
func (b *builder) renderWith(ctx context.Context, evs []storage.Event, rels map[string]json.RawMessage) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(evs))
	if b.req.Filter.EventFormat == "federation" {
		for _, e := range evs {
			out = append(out, json.RawMessage(e.JSON))
		}
		return out, nil
	}
	var replaced []string
	for _, e := range evs {
		if e.ReplacesEventID != "" {
			replaced = append(replaced, e.ReplacesEventID)
		}
	}
	prev := map[string]json.RawMessage{}
	if len(replaced) > 0 {
		pevs, err := b.db.Events.SelectByIDs(ctx, b.q, replaced)
		if err != nil {
			return nil, err
		}
		for _, p := range pevs {
			prev[p.EventID] = contentOf(p.JSON)
		}
	}
	for _, e := range evs {
		ce, err := clientEventRelations(e, b.dev, prev[e.ReplacesEventID], rels[e.EventID], b.now)
		if err != nil {
			return nil, err
		}
		if len(b.req.Filter.EventFields) > 0 {
			if ce, err = projectFields(ce, b.req.Filter.EventFields); err != nil {
				return nil, err
			}
		}
		out = append(out, ce)
	}
	return out, nil
}

// strippedRoom adds an invited or knocked room with its stripped state: the
// room's state if this server has it, else the stripped state that came
// with the membership event, and the membership event itself.
func (b *builder) strippedRoom(ctx context.Context, resp *Response, m storage.Membership) error {
	state, err := b.db.Deltas.StateAt(ctx, b.q, m.RoomID, b.upTo(), strippedStateTypes)
	if err != nil {
		return err
	}
	own, err := b.db.Events.SelectByIDs(ctx, b.q, []string{m.EventID})
	if err != nil {
		return err
	}
	if m.Membership == invite && len(own) > 0 && b.ignored[own[0].Sender] {
		return nil // client-server API "Ignoring Users": invites from them are not sent
	}
	events := []json.RawMessage{}
	hasCreate := false
	for _, e := range state {
		s, err := strippedEvent(e.JSON)
		if err != nil {
			return fmt.Errorf("strip %s: %w", e.EventID, err)
		}
		events = append(events, s)
		hasCreate = hasCreate || e.Type == "m.room.create"
	}
	key := "invite_room_state"
	if m.Membership == knock {
		key = "knock_room_state"
	}
	for _, e := range own {
		if !hasCreate {
			if remote := inviteRoomState(e.JSON, key); remote != nil {
				events = remote
			}
		}
		s, err := strippedEvent(e.JSON)
		if err != nil {
			return fmt.Errorf("strip %s: %w", e.EventID, err)
		}
		events = append(events, s)
	}
	if m.Membership == knock {
		resp.Rooms.Knock[m.RoomID] = &KnockedRoom{KnockState: EventBatch{Events: events}}
	} else {
		resp.Rooms.Invite[m.RoomID] = &InvitedRoom{InviteState: EventBatch{Events: events}}
	}
	return nil
}

// summary computes a room's summary from its current state.
func (b *builder) summary(ctx context.Context, roomID string) (Summary, error) {
	joined, invited, err := b.db.CurrentState.MemberCounts(ctx, b.q, roomID)
	if err != nil {
		return Summary{}, err
	}
	heroes, err := b.db.CurrentState.Heroes(ctx, b.q, roomID, b.dev.UserID, heroCount)
	if err != nil {
		return Summary{}, err
	}
	if heroes == nil {
		heroes = []string{}
	}
	return Summary{Heroes: heroes, JoinedMemberCount: &joined, InvitedMemberCount: &invited}, nil
}
