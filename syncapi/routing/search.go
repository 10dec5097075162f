package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Limits of POST /search.
const (
	defaultSearchLimit = 10
	maxSearchLimit     = 100
	// defaultContextLimit is event_context's before_limit and after_limit
	// default (the spec's 5); maxContextLimit caps them.
	defaultContextLimit = 5
	maxContextLimit     = 50
	maxSearchBody       = 64 << 10
	maxSearchTerm       = 1000
)

// SearchRequest is the body of POST /search.
type SearchRequest struct {
	SearchCategories struct {
		RoomEvents *RoomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

// RoomEventsCriteria is the room_events category of a search.
type RoomEventsCriteria struct {
	SearchTerm   *string          `json:"search_term"`
	Keys         []string         `json:"keys"`
	Filter       *RoomEventFilter `json:"filter"`
	OrderBy      string           `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    *struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// ParseSearchRequest decodes and checks a /search body: 400 M_NOT_JSON for
// what is not JSON, M_BAD_JSON for the wrong shape or values out of the
// spec's enums.
func ParseSearchRequest(body []byte) (SearchRequest, error) {
	var r SearchRequest
	if !json.Valid(body) {
		return r, apierr.New(apierr.CodeNotJSON, "body is not valid JSON")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, apierr.BadJSON("body has the wrong shape: %v", err)
	}
	c := r.SearchCategories.RoomEvents
	if c == nil {
		return r, nil
	}
	if c.SearchTerm == nil {
		return r, apierr.BadJSON("room_events: search_term is required")
	}
	if len(*c.SearchTerm) > maxSearchTerm {
		return r, apierr.BadJSON("room_events: search_term is longer than %d bytes", maxSearchTerm)
	}
	for _, k := range c.Keys {
		if _, ok := storage.SearchKeys[k]; !ok {
			return r, apierr.BadJSON("room_events: key %q is not content.body, content.name or content.topic", k)
		}
	}
	switch c.OrderBy {
	case "", "rank", "recent":
	default:
		return r, apierr.BadJSON("room_events: order_by %q is not rank or recent", c.OrderBy)
	}
	if f := c.Filter; f != nil && f.Limit != nil && *f.Limit <= 0 {
		return r, apierr.BadJSON("room_events: filter.limit must be greater than 0")
	}
	if ec := c.EventContext; ec != nil {
		if (ec.BeforeLimit != nil && *ec.BeforeLimit < 0) || (ec.AfterLimit != nil && *ec.AfterLimit < 0) {
			return r, apierr.BadJSON("room_events: event_context limits must not be negative")
		}
	}
	if g := c.Groupings; g != nil {
		for _, k := range g.GroupBy {
			if k.Key != "room_id" && k.Key != "sender" {
				return r, apierr.BadJSON("room_events: group key %q is not room_id or sender", k.Key)
			}
		}
	}
	return r, nil
}

// searchToken is a /search next_batch: the position the search is bounded
// by (so later events do not shift pages) and where the next page starts,
// an offset in rank order or a position in recent order.
type searchToken struct {
	upTo   streams.Position
	byRank bool
	next   int64
}

func (t searchToken) String() string {
	kind := "t"
	if t.byRank {
		kind = "r"
	}
	return fmt.Sprintf("%s%d_%d", kind, t.upTo, t.next)
}

func parseSearchToken(s string) (searchToken, error) {
	var t searchToken
	bad := apierr.InvalidParam("next_batch: %q is not a search token", s)
	if len(s) < 2 || (s[0] != 'r' && s[0] != 't') {
		return t, bad
	}
	t.byRank = s[0] == 'r'
	a, b, ok := strings.Cut(s[1:], "_")
	if !ok {
		return t, bad
	}
	up, err1 := strconv.ParseInt(a, 10, 64)
	next, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || up < 0 || next < 0 {
		return t, bad
	}
	t.upTo, t.next = streams.Position(up), next
	return t, nil
}

type searchResult struct {
	Rank    float64         `json:"rank"`
	Result  json.RawMessage `json:"result"`
	Context *searchContext  `json:"context,omitempty"`
}

type searchContext struct {
	Start        string                    `json:"start"`
	End          string                    `json:"end"`
	ProfileInfo  map[string]map[string]any `json:"profile_info,omitempty"`
	EventsBefore []json.RawMessage         `json:"events_before"`
	EventsAfter  []json.RawMessage         `json:"events_after"`
}

type searchGroup struct {
	Order   int      `json:"order"`
	Results []string `json:"results"`
}

type roomEventsResults struct {
	Count      int                               `json:"count"`
	Highlights []string                          `json:"highlights"`
	Results    []searchResult                    `json:"results"`
	State      map[string][]json.RawMessage      `json:"state,omitempty"`
	Groups     map[string]map[string]searchGroup `json:"groups,omitempty"`
	NextBatch  string                            `json:"next_batch,omitempty"`
}

type searchResponse struct {
	SearchCategories struct {
		RoomEvents *roomEventsResults `json:"room_events,omitempty"`
	} `json:"search_categories"`
}

// ServeSearch is POST /_matrix/client/v3/search: the room_events category
// over message bodies, room names and topics, in the rooms the user is or
// was in, with only the events the user may see (history visibility and
// ignored users applied).
func (s *Sync) ServeSearch(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSearchBody+1))
	if err != nil {
		return apierr.BadJSON("read body: %v", err)
	}
	if len(body) > maxSearchBody {
		return apierr.New(apierr.CodeTooLarge, "body is longer than %d bytes", maxSearchBody)
	}
	req, err := ParseSearchRequest(body)
	if err != nil {
		return err
	}
	var tok *searchToken
	if v := r.URL.Query().Get("next_batch"); v != "" {
		t, err := parseSearchToken(v)
		if err != nil {
			return err
		}
		tok = &t
	}
	var resp searchResponse
	if c := req.SearchCategories.RoomEvents; c != nil {
		if resp.SearchCategories.RoomEvents, err = s.searchRoomEvents(r.Context(), dev, c, tok); err != nil {
			return err
		}
	}
	return httputil.JSON(w, resp)
}

func (s *Sync) searchRoomEvents(ctx context.Context, dev userapi.Device, c *RoomEventsCriteria, tok *searchToken) (*roomEventsResults, error) {
	cur := s.notifier.Current()
	upTo := cur.Get(streams.PDU)
	byRank := c.OrderBy != "recent"
	if tok != nil {
		if tok.byRank != byRank {
			return nil, apierr.InvalidParam("next_batch: the token is of another order_by")
		}
		upTo = min(upTo, tok.upTo)
		cur = cur.With(streams.PDU, upTo)
	}
	f := RoomEventFilter{}
	if c.Filter != nil {
		f = *c.Filter
	}
	limit := defaultSearchLimit
	if f.Limit != nil {
		limit = min(*f.Limit, maxSearchLimit)
	}
	terms := storage.SearchTerms(*c.SearchTerm)
	res := &roomEventsResults{Highlights: terms, Results: []searchResult{}}
	if res.Highlights == nil {
		res.Highlights = []string{}
	}

	// The rooms the user is or was in, as far as the filter allows.
	ms, err := s.db.Deltas.MembershipsAt(ctx, s.db.DB.Reader(), dev.UserID, upTo)
	if err != nil {
		return nil, err
	}
	var rooms []string
	left := map[string]streams.Position{}
	for _, m := range ms {
		if (m.Membership == join || m.Membership == leave || m.Membership == ban) && f.AllowsRoom(m.RoomID) {
			rooms = append(rooms, m.RoomID)
			if m.Membership != join {
				left[m.RoomID] = m.Position
			}
		}
	}
	keys := c.Keys
	if len(keys) == 0 {
		keys = []string{"content.body", "content.name", "content.topic"}
	}
	var types []string
	for _, k := range keys {
		if t := storage.SearchKeys[k]; !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	sq := storage.SearchQuery{Terms: terms, Rooms: rooms, Left: left, Types: types, UpTo: upTo, ByRank: byRank, Limit: scanBatch}
	if tok != nil {
		if byRank {
			sq.Offset = int(tok.next)
		} else {
			sq.Before = streams.Position(tok.next)
		}
	}
	if len(terms) == 0 || len(rooms) == 0 {
		return res, nil
	}
	if res.Count, err = s.db.Search.Count(ctx, s.db.DB.Reader(), sq); err != nil {
		return nil, err
	}

	ignored, err := s.ignoredUsers(ctx, dev.UserID)
	if err != nil {
		return nil, err
	}
	readers := map[string]*roomReader{}
	reader := func(roomID string) (*roomReader, error) {
		if rr, ok := readers[roomID]; ok {
			return rr, nil
		}
		rr, err := s.openRoomWith(ctx, dev, roomID, cur, ignored)
		if err != nil {
			return nil, err
		}
		readers[roomID] = rr
		return rr, nil
	}
	// Pages of one more than needed: the extra row tells whether there is
	// more without another query (every page costs the ranking of all
	// matches).
	var hits []storage.SearchHit
	more, scanned := false, 0
	for len(hits) < limit && scanned < maxScanned {
		sq.Limit = min(max(limit-len(hits)+1, 2*(limit-len(hits))), scanBatch)
		page, err := s.db.Search.Search(ctx, s.db.DB.Reader(), sq)
		if err != nil {
			return nil, err
		}
		more = len(page) == sq.Limit
		for _, h := range page {
			if len(hits) == limit {
				more = true // row i is left for the next page
				break
			}
			scanned++
			sq.Offset++
			sq.Before = h.Event.Position
			rr, err := reader(h.Event.RoomID)
			if err != nil {
				return nil, err
			}
			if rr.keep(f)(h.Event) {
				hits = append(hits, h)
			}
		}
		if !more {
			break
		}
	}
	if more {
		next := searchToken{upTo: upTo, byRank: byRank, next: int64(sq.Before)}
		if byRank {
			next.next = int64(sq.Offset)
		}
		res.NextBatch = next.String()
	}
	if len(hits) == 0 {
		return res, nil
	}

	evs := make([]storage.Event, len(hits))
	for i, h := range hits {
		evs[i] = h.Event
	}
	b := &builder{db: s.db, q: s.db.DB.Reader(), dev: dev, cur: cur, now: s.now(), ignored: ignored}
	rendered, err := b.render(ctx, evs)
	if err != nil {
		return nil, err
	}
	for i, h := range hits {
		sr := searchResult{Rank: h.Rank, Result: withRoomID(rendered[i], h.Event.RoomID)}
		if c.EventContext != nil {
			if sr.Context, err = s.searchContext(ctx, readers[h.Event.RoomID], cur, h.Event, c); err != nil {
				return nil, err
			}
		}
		res.Results = append(res.Results, sr)
	}
	if c.Groupings != nil {
		res.Groups = map[string]map[string]searchGroup{}
		for _, g := range c.Groupings.GroupBy {
			groups := map[string]searchGroup{}
			for _, h := range hits {
				v := h.Event.RoomID
				if g.Key == "sender" {
					v = h.Event.Sender
				}
				gr, ok := groups[v]
				if !ok {
					gr.Order = len(groups) + 1
				}
				gr.Results = append(gr.Results, h.Event.EventID)
				groups[v] = gr
			}
			res.Groups[g.Key] = groups
		}
	}
	if c.IncludeState {
		res.State = map[string][]json.RawMessage{}
		for _, h := range hits {
			room := h.Event.RoomID
			if _, done := res.State[room]; done {
				continue
			}
			state, err := s.db.Deltas.StateAt(ctx, b.q, room, upTo, nil)
			if err != nil {
				return nil, err
			}
			out, err := readers[room].render(ctx, state)
			if err != nil {
				return nil, err
			}
			res.State[room] = out
		}
	}
	return res, nil
}

// searchContext is the event_context of one result: the visible events
// around it (before: newest first, as /context) and, when asked, the
// senders' profiles as of the result.
func (s *Sync) searchContext(ctx context.Context, rr *roomReader, cur streams.Token, e storage.Event, c *RoomEventsCriteria) (*searchContext, error) {
	ec := c.EventContext
	nBefore, nAfter := defaultContextLimit, defaultContextLimit
	if ec.BeforeLimit != nil {
		nBefore = min(*ec.BeforeLimit, maxContextLimit)
	}
	if ec.AfterLimit != nil {
		nAfter = min(*ec.AfterLimit, maxContextLimit)
	}
	keep := rr.keep(RoomEventFilter{})
	var before, after []storage.Event
	startPos, endPos := e.Position-1, e.Position
	var err error
	if nBefore > 0 {
		if before, startPos, _, err = rr.page(ctx, e.Position-1, 0, false, nBefore, keep); err != nil {
			return nil, err
		}
	}
	if nAfter > 0 {
		if after, endPos, _, err = rr.page(ctx, e.Position, rr.upTo, true, nAfter, keep); err != nil {
			return nil, err
		}
	}
	rendered, err := rr.render(ctx, append(slices.Clip(before), after...))
	if err != nil {
		return nil, err
	}
	out := &searchContext{
		Start:        cur.With(streams.PDU, startPos).String(),
		End:          cur.With(streams.PDU, endPos).String(),
		EventsBefore: append([]json.RawMessage{}, rendered[:len(before)]...),
		EventsAfter:  append([]json.RawMessage{}, rendered[len(before):]...),
	}
	if ec.IncludeProfile {
		var users []string
		for _, x := range append(append([]storage.Event{e}, before...), after...) {
			if !slices.Contains(users, x.Sender) {
				users = append(users, x.Sender)
			}
		}
		members, err := s.db.Deltas.MembersAt(ctx, rr.b.q, rr.roomID, e.Position, users)
		if err != nil {
			return nil, err
		}
		out.ProfileInfo = map[string]map[string]any{}
		for _, m := range members {
			var mc struct {
				Displayname any `json:"displayname"`
				AvatarURL   any `json:"avatar_url"`
			}
			_ = json.Unmarshal(contentOf(m.JSON), &mc)
			p := map[string]any{}
			if v, ok := mc.Displayname.(string); ok {
				p["displayname"] = v
			}
			if v, ok := mc.AvatarURL.(string); ok {
				p["avatar_url"] = v
			}
			if m.StateKey != nil {
				out.ProfileInfo[*m.StateKey] = p
			}
		}
	}
	return out, nil
}
