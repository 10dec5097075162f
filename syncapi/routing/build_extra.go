package routing

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// recentPage is how many events one read fetches when a timeline filter
// drops some.
const recentPage = 100

// recent returns the last limit events of a room in (after, upTo] that the
// filter allows, oldest first, and whether allowed events were left out.
// Without a filter it is one storage read; with one it pages backwards.
func (b *builder) recent(ctx context.Context, roomID string, after, upTo streams.Position, limit int, f RoomEventFilter) ([]storage.Event, bool, error) {
	if f.empty() && len(b.ignored) == 0 {
		return b.recentEvents(ctx, roomID, after, upTo, limit)
	}
	if !f.AllowsRoom(roomID) {
		return nil, false, nil
	}
	var picked []storage.Event // newest first
	hi := upTo
	for hi > after {
		evs, more, err := b.recentEvents(ctx, roomID, after, hi, recentPage)
		if err != nil {
			return nil, false, err
		}
		for i := len(evs) - 1; i >= 0; i-- {
			if !f.Allows(evs[i]) || (evs[i].StateKey == nil && b.ignored[evs[i].Sender]) {
				continue
			}
			if len(picked) == limit {
				slices.Reverse(picked)
				return picked, true, nil
			}
			picked = append(picked, evs[i])
		}
		if !more || len(evs) == 0 {
			break
		}
		hi = evs[0].Position - 1
	}
	slices.Reverse(picked)
	return picked, false, nil
}

// recentEvents is Events.Recent, served from the window read at once
// (readWindow) when it holds the range.
func (b *builder) recentEvents(ctx context.Context, roomID string, after, upTo streams.Position, limit int) ([]storage.Event, bool, error) {
	evs, ok := b.window[roomID]
	if !ok || after != b.windowAfter || upTo > b.upTo() {
		return b.db.Events.Recent(ctx, b.q, roomID, after, upTo, limit)
	}
	if limit <= 0 {
		return nil, false, nil
	}
	end, _ := slices.BinarySearchFunc(evs, upTo+1, func(e storage.Event, p streams.Position) int { return cmp.Compare(e.Position, p) })
	evs = evs[:end]
	if len(evs) > limit {
		return slices.Clip(evs[len(evs)-limit:]), true, nil
	}
	return slices.Clip(evs), false, nil
}

// withoutEvents returns evs less those also in drop.
func withoutEvents(evs, drop []storage.Event) []storage.Event {
	ids := make(map[string]bool, len(drop))
	for _, e := range drop {
		ids[e.EventID] = true
	}
	return slices.DeleteFunc(evs, func(e storage.Event) bool { return ids[e.EventID] })
}

// filterState applies the state filter to a state section: types, senders
// and limit, and lazy loading of members (only the members of the
// timeline's senders and the user's own, at the start of the timeline at
// start). Without include_redundant_members the senders' members are still
// sent again on every sync that shows their events: the spec lets a server
// omit them, never requires it.
func (b *builder) filterState(ctx context.Context, roomID string, start streams.Position, state, timeline []storage.Event) ([]storage.Event, error) {
	f := b.req.Filter.Room.State
	if !f.AllowsRoom(roomID) {
		return nil, nil
	}
	out := state
	if f.LazyLoadMembers {
		need := map[string]bool{b.dev.UserID: true}
		for _, e := range timeline {
			need[e.Sender] = true
		}
		have := map[string]bool{}
		out = slices.DeleteFunc(slices.Clone(state), func(e storage.Event) bool {
			if e.Type != storage.MemberEvent || e.StateKey == nil {
				return false
			}
			have[*e.StateKey] = true
			return !need[*e.StateKey]
		})
		// Senders whose member event the section does not carry (it did not
		// change in the window) are added from the state at the timeline's start.
		var missing []string
		for u := range need {
			if !have[u] {
				missing = append(missing, u)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			members, err := b.db.Deltas.MembersAt(ctx, b.q, roomID, start, missing)
			if err != nil {
				return nil, err
			}
			out = append(out, members...)
			slices.SortFunc(out, func(x, y storage.Event) int { return int(x.Position - y.Position) })
		}
	}
	if !f.empty() {
		out = slices.DeleteFunc(out, func(e storage.Event) bool { return !f.Allows(e) })
	}
	if f.Limit != nil && len(out) > *f.Limit {
		out = out[len(out)-*f.Limit:]
	}
	return out, nil
}

// accountDataChanges returns the user's account data changes in (since,
// cur], read once per response (the ignore list, the rooms with news and
// the account data sections all need them); nothing is read when the
// stream did not move.
func (b *builder) accountDataChanges(ctx context.Context, since streams.Position) ([]storage.AccountData, error) {
	all, err := b.accountDataSince(ctx, since)
	if err != nil {
		return nil, err
	}
	cur := b.cur.Get(streams.AccountData)
	end := len(all)
	for end > 0 && all[end-1].Position > cur {
		end--
	}
	return all[:end], nil
}

// accountDataSince returns the user's account data entries whose last
// change is after since, in position order, also those changed after cur
// (already committed, not yet notified): that none of them is an entry
// tells it did not change since since at all (an entry keeps only its last
// change). Read once per response: since is the account data position of
// the response's since token, the same for every caller.
func (b *builder) accountDataSince(ctx context.Context, since streams.Position) ([]storage.AccountData, error) {
	if !b.haveAccountData {
		var ads []storage.AccountData
		if since < b.cur.Get(streams.AccountData) {
			var err error
			if ads, err = b.db.AccountData.Changed(ctx, b.q, b.dev.UserID, since, math.MaxInt64); err != nil {
				return nil, err
			}
		}
		b.accountData, b.haveAccountData = ads, true
	}
	return b.accountData, nil
}

// userCounts returns the user's notification counts in every room, up to
// the response's position; read once per response (finding the rooms with
// news and rendering them both need them).
func (b *builder) userCounts(ctx context.Context) (map[string]storage.NotificationCounts, error) {
	if b.counts == nil {
		counts, err := b.db.Counts.ForUser(ctx, b.q, b.dev.UserID, b.cur.Get(streams.Notification))
		if err != nil {
			return nil, err
		}
		b.counts = counts
	}
	return b.counts, nil
}

// roomsWithOtherNews returns which of rooms have typing, receipt, room
// account data or notification count changes since the token.
func (b *builder) roomsWithOtherNews(ctx context.Context, rooms []string, since streams.Token) ([]string, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	set := map[string]bool{}
	for _, r := range rooms {
		if _, pos := b.typing.Users(r); pos > since.Get(streams.Typing) {
			set[r] = true
		}
	}
	rcs, err := b.db.Receipts.Changed(ctx, b.q, rooms, since.Get(streams.Receipt), b.cur.Get(streams.Receipt))
	if err != nil {
		return nil, err
	}
	for _, rc := range rcs {
		if rc.Type != receiptReadPrivate || rc.UserID == b.dev.UserID {
			set[rc.RoomID] = true
		}
	}
	ads, err := b.accountDataChanges(ctx, since.Get(streams.AccountData))
	if err != nil {
		return nil, err
	}
	for _, a := range ads {
		if a.RoomID != "" {
			set[a.RoomID] = true
		}
	}
	if since.Get(streams.Notification) < b.cur.Get(streams.Notification) {
		counts, err := b.userCounts(ctx)
		if err != nil {
			return nil, err
		}
		for room, c := range counts {
			if c.Position > since.Get(streams.Notification) {
				set[room] = true
			}
		}
	}
	var out []string
	for _, r := range rooms {
		if set[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// event is an ephemeral, presence or account data event.
type event struct {
	Type    string `json:"type"`
	Sender  string `json:"sender,omitempty"`
	Content any    `json:"content"`
}

func encode(e event) (json.RawMessage, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type, err)
	}
	return b, nil
}

// limited keeps the last limit items.
func limited[T any](xs []T, limit *int) []T {
	if limit != nil && len(xs) > *limit {
		return xs[len(xs)-*limit:]
	}
	return xs
}

// ephemeralAndAccountData adds account data (global and of the joined
// rooms in the response), presence, typing, receipts and notification
// counts changed since from (everything for an initial sync).
func (b *builder) ephemeralAndAccountData(ctx context.Context, resp *Response, from streams.Token, initial bool) error {
	f := b.req.Filter
	ads, err := b.accountDataChanges(ctx, from.Get(streams.AccountData))
	if err != nil {
		return err
	}
	roomAD := map[string][]json.RawMessage{}
	for _, a := range ads {
		e, err := encode(event{Type: a.Type, Content: json.RawMessage(a.Content)})
		if err != nil {
			return err
		}
		if a.RoomID == "" {
			if allowsType(f.AccountData, a.Type) {
				resp.AccountData.Events = append(resp.AccountData.Events, e)
			}
		} else if f.Room.AccountData.AllowsRoom(a.RoomID) && allowsType(f.Room.AccountData.EventFilter, a.Type) {
			roomAD[a.RoomID] = append(roomAD[a.RoomID], e)
		}
	}
	resp.AccountData.Events = limited(resp.AccountData.Events, f.AccountData.Limit)

	var ps []storage.Presence
	if from.Get(streams.Presence) < b.cur.Get(streams.Presence) {
		// Only then are the peers worth finding.
		if ps, err = b.db.Presence.Changed(ctx, b.q, b.peers(b.dev.UserID), from.Get(streams.Presence), b.cur.Get(streams.Presence)); err != nil {
			return err
		}
	}
	for _, p := range ps {
		if !f.Presence.Allows("m.presence", p.UserID) {
			continue
		}
		e, err := encode(event{Type: "m.presence", Sender: p.UserID, Content: presenceFor(p, b.now.UnixMilli())})
		if err != nil {
			return err
		}
		resp.Presence.Events = append(resp.Presence.Events, e)
	}
	resp.Presence.Events = limited(resp.Presence.Events, f.Presence.Limit)

	rooms := make([]string, 0, len(resp.Rooms.Join))
	for r := range resp.Rooms.Join {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	rcs, err := b.db.Receipts.Changed(ctx, b.q, rooms, from.Get(streams.Receipt), b.cur.Get(streams.Receipt))
	if err != nil {
		return err
	}
	receipts := map[string]map[string]map[string]map[string]any{} // room → event → type → user → receipt
	for _, rc := range rcs {
		if rc.Type == receiptReadPrivate && rc.UserID != b.dev.UserID {
			continue
		}
		byEvent := receipts[rc.RoomID]
		if byEvent == nil {
			byEvent = map[string]map[string]map[string]any{}
			receipts[rc.RoomID] = byEvent
		}
		byType := byEvent[rc.EventID]
		if byType == nil {
			byType = map[string]map[string]any{}
			byEvent[rc.EventID] = byType
		}
		if byType[rc.Type] == nil {
			byType[rc.Type] = map[string]any{}
		}
		r := map[string]any{"ts": rc.TS}
		if rc.ThreadID != "" {
			r["thread_id"] = rc.ThreadID
		}
		byType[rc.Type][rc.UserID] = r
	}
	var counts map[string]storage.NotificationCounts
	if len(rooms) > 0 {
		if counts, err = b.userCounts(ctx); err != nil {
			return err
		}
	}
	ef := f.Room.Ephemeral
	for _, room := range rooms {
		jr := resp.Rooms.Join[room]
		jr.AccountData.Events = append(jr.AccountData.Events, limited(roomAD[room], f.Room.AccountData.Limit)...)
		if ef.AllowsRoom(room) {
			if users, pos := b.typing.Users(room); (initial && len(users) > 0) || (!initial && pos > from.Get(streams.Typing)) {
				if users == nil {
					users = []string{}
				}
				if allowsType(ef.EventFilter, "m.typing") {
					e, err := encode(event{Type: "m.typing", Content: map[string]any{"user_ids": users}})
					if err != nil {
						return err
					}
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, e)
				}
			}
			if rs := receipts[room]; rs != nil && allowsType(ef.EventFilter, "m.receipt") {
				e, err := encode(event{Type: "m.receipt", Content: rs})
				if err != nil {
					return err
				}
				jr.Ephemeral.Events = append(jr.Ephemeral.Events, e)
			}
			jr.Ephemeral.Events = limited(jr.Ephemeral.Events, ef.Limit)
		}
		if c, ok := counts[room]; ok {
			var uc userapi.UserCounts
			if err := json.Unmarshal(c.Counts, &uc); err != nil {
				return fmt.Errorf("decode notification counts of room %s: %w", room, err)
			}
			if f.Room.Timeline.UnreadThreadNotifications {
				jr.UnreadNotifications = unread(uc.MainCounts())
				jr.UnreadThreadNotifications = map[string]UnreadNotifications{}
				for thread, tc := range uc.Threads {
					jr.UnreadThreadNotifications[thread] = unread(tc)
				}
			} else {
				jr.UnreadNotifications = unread(uc.Total)
			}
		}
	}
	return nil
}

// allowsType applies only the type conditions: events without a sender
// (typing, receipts, account data) are not filtered by sender.
func allowsType(f EventFilter, typ string) bool {
	f.Senders, f.NotSenders = nil, nil
	return f.Allows(typ, "")
}

func unread(c userapi.Counts) UnreadNotifications {
	n, h := int(c.NotificationCount), int(c.HighlightCount)
	return UnreadNotifications{NotificationCount: &n, HighlightCount: &h}
}

// presenceFor is the m.presence content of a stored presence.
func presenceFor(p storage.Presence, nowMs int64) presenceContent {
	ago := max(0, nowMs-p.LastActiveTS)
	active := p.Presence == presenceOnline && ago < activeWindowMs
	return presenceContent{Presence: p.Presence, LastActiveAgo: &ago, StatusMsg: p.StatusMsg, CurrentlyActive: &active}
}

// projectFields keeps only the given fields of a client event (filter
// event_fields): dot-separated paths, "\." for a literal dot.
func projectFields(ev json.RawMessage, fields []string) (json.RawMessage, error) {
	var src map[string]any
	if err := json.Unmarshal(ev, &src); err != nil {
		return nil, fmt.Errorf("decode client event: %w", err)
	}
	dst := map[string]any{}
	for _, f := range fields {
		path := splitField(f)
		from, to := src, dst
		for i, k := range path {
			v, ok := from[k]
			if !ok {
				break
			}
			if i == len(path)-1 {
				to[k] = v
				break
			}
			next, ok := v.(map[string]any)
			if !ok {
				break
			}
			child, _ := to[k].(map[string]any)
			if child == nil {
				child = map[string]any{}
				to[k] = child
			}
			from, to = next, child
		}
	}
	return json.Marshal(dst)
}

// splitField splits an event_fields entry at unescaped dots.
func splitField(f string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == '\\' && i+1 < len(f) && f[i+1] == '.':
			cur.WriteByte('.')
			i++
		case f[i] == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(f[i])
		}
	}
	return append(out, cur.String())
}
