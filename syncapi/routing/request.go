package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Limits of a /sync request.
const (
	// MaxTimeout caps the long-poll: proxies commonly cut idle connections
	// at about a minute, and a client re-polls anyway.
	MaxTimeout = 60 * time.Second
	// DefaultTimelineLimit is the timeline length without a filter.
	DefaultTimelineLimit = 20
	// MaxTimelineLimit caps a filter's timeline limit, as the spec asks
	// servers to ("impose a maximum value to avoid resource exhaustion").
	MaxTimelineLimit = 100
	// maxFilterBytes bounds an inline filter; a query string is already
	// bounded by the HTTP server, this only keeps decoding cheap.
	maxFilterBytes = 64 << 10
)

// Request is a parsed GET /sync query.
type Request struct {
	// Since is nil for an initial sync.
	Since *streams.Token
	// Timeout is the long-poll duration, capped at MaxTimeout.
	Timeout   time.Duration
	FullState bool
	// SetPresence is "", "online", "offline" or "unavailable".
	SetPresence string
	// UseStateAfter asks for state_after instead of state (spec v1.16).
	UseStateAfter bool
	Filter        Filter
	// FilterID is a stored filter's id, loaded into Filter by the handler.
	FilterID string
}

// Filter is a sync filter (client-server API "Filtering"). Every field is
// applied except event_fields' effect on federation-format events.
type Filter struct {
	// EventFormat is "client" (the default) or "federation".
	EventFormat string `json:"event_format"`
	// EventFields, when set, are the only (dot-separated) fields of client
	// events returned.
	EventFields []string    `json:"event_fields"`
	AccountData EventFilter `json:"account_data"`
	Presence    EventFilter `json:"presence"`
	Room        RoomFilter  `json:"room"`
}

// RoomFilter filters rooms.
type RoomFilter struct {
	// Rooms, when set, lists the only rooms to include.
	Rooms *[]string `json:"rooms"`
	// NotRooms are excluded even if listed in Rooms.
	NotRooms     []string        `json:"not_rooms"`
	IncludeLeave bool            `json:"include_leave"`
	Timeline     RoomEventFilter `json:"timeline"`
	State        RoomEventFilter `json:"state"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// EventFilter selects events by type and sender ("*" in a type is a
// wildcard); NotTypes and NotSenders win over Types and Senders.
type EventFilter struct {
	Limit      *int      `json:"limit"`
	Types      *[]string `json:"types"`
	NotTypes   []string  `json:"not_types"`
	Senders    *[]string `json:"senders"`
	NotSenders []string  `json:"not_senders"`
}

// RoomEventFilter is an EventFilter for room events.
type RoomEventFilter struct {
	EventFilter
	Rooms                     *[]string `json:"rooms"`
	NotRooms                  []string  `json:"not_rooms"`
	ContainsURL               *bool     `json:"contains_url"`
	LazyLoadMembers           bool      `json:"lazy_load_members"`
	IncludeRedundantMembers   bool      `json:"include_redundant_members"`
	UnreadThreadNotifications bool      `json:"unread_thread_notifications"`
}

// Allows applies the type and sender conditions.
func (f EventFilter) Allows(typ, sender string) bool {
	if slices.ContainsFunc(f.NotTypes, func(p string) bool { return globMatch(p, typ) }) {
		return false
	}
	if f.Types != nil && !slices.ContainsFunc(*f.Types, func(p string) bool { return globMatch(p, typ) }) {
		return false
	}
	if slices.Contains(f.NotSenders, sender) {
		return false
	}
	return f.Senders == nil || slices.Contains(*f.Senders, sender)
}

// AllowsRoom applies rooms and not_rooms.
func (f RoomEventFilter) AllowsRoom(roomID string) bool {
	if slices.Contains(f.NotRooms, roomID) {
		return false
	}
	return f.Rooms == nil || slices.Contains(*f.Rooms, roomID)
}

// Allows applies every condition to a stored room event.
func (f RoomEventFilter) Allows(e storage.Event) bool {
	if !f.EventFilter.Allows(e.Type, e.Sender) || !f.AllowsRoom(e.RoomID) {
		return false
	}
	if f.ContainsURL != nil {
		var c struct {
			Content struct {
				URL any `json:"url"`
			} `json:"content"`
		}
		_ = json.Unmarshal(e.JSON, &c)
		_, hasURL := c.Content.URL.(string)
		if hasURL != *f.ContainsURL {
			return false
		}
	}
	return true
}

// empty reports whether the filter lets every event through (so storage
// can be read without filtering).
func (f RoomEventFilter) empty() bool {
	return f.Types == nil && len(f.NotTypes) == 0 && f.Senders == nil && len(f.NotSenders) == 0 &&
		f.Rooms == nil && len(f.NotRooms) == 0 && f.ContainsURL == nil
}

// globMatch matches s against a pattern where "*" matches any run of
// characters.
func globMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// TimelineLimit is the number of timeline events per room.
func (f Filter) TimelineLimit() int {
	if f.Room.Timeline.Limit == nil {
		return DefaultTimelineLimit
	}
	return min(*f.Room.Timeline.Limit, MaxTimelineLimit)
}

// IncludesRoom applies rooms and not_rooms.
func (f Filter) IncludesRoom(roomID string) bool {
	if slices.Contains(f.Room.NotRooms, roomID) {
		return false
	}
	return f.Room.Rooms == nil || slices.Contains(*f.Room.Rooms, roomID)
}

// ParseRequest parses the query of GET /sync. Malformed parameters are
// M_INVALID_PARAM (an inline filter that is not JSON M_NOT_JSON, one of the
// wrong shape M_BAD_JSON), all 400.
func ParseRequest(q url.Values) (Request, error) {
	var r Request
	// An empty since is what some clients send for an initial sync.
	if s := q.Get("since"); s != "" {
		tok, err := streams.ParseToken(s)
		if err != nil {
			return r, apierr.InvalidParam("since: %q is not a sync token", s)
		}
		r.Since = &tok
	}
	if s, ok := lookup(q, "timeout"); ok {
		ms, ok := parseMillis(s)
		if !ok {
			return r, apierr.InvalidParam("timeout: %q is not a non-negative integer", s)
		}
		r.Timeout = ms
	}
	var err error
	if r.FullState, err = parseBool(q, "full_state"); err != nil {
		return r, err
	}
	if r.UseStateAfter, err = parseBool(q, "use_state_after"); err != nil {
		return r, err
	}
	if s, ok := lookup(q, "set_presence"); ok {
		switch s {
		case "online", "offline", "unavailable":
			r.SetPresence = s
		default:
			return r, apierr.InvalidParam("set_presence: %q is not online, offline or unavailable", s)
		}
	}
	if s, ok := lookup(q, "filter"); ok {
		if strings.HasPrefix(s, "{") {
			if r.Filter, err = parseFilter(s); err != nil {
				return r, err
			}
		} else if s != "" {
			r.FilterID = s
		}
	}
	return r, nil
}

func lookup(q url.Values, key string) (string, bool) {
	vs, ok := q[key]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// parseMillis accepts decimal digits only (strconv would take a sign) and
// caps the result at MaxTimeout, so any length of digits is a valid value.
func parseMillis(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var ms int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= MaxTimeout.Milliseconds() {
			ms = ms*10 + int64(c-'0')
		}
	}
	return min(time.Duration(ms)*time.Millisecond, MaxTimeout), true
}

func parseBool(q url.Values, key string) (bool, error) {
	s, ok := lookup(q, key)
	if !ok {
		return false, nil
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, apierr.InvalidParam("%s: %q is not true or false", key, s)
}

// decodeFilter decodes a filter given in a query parameter into f: M_TOO_LARGE,
// M_NOT_JSON or M_BAD_JSON.
func decodeFilter(s string, f any) error {
	if len(s) > maxFilterBytes {
		return apierr.New(apierr.CodeTooLarge, "filter is longer than %d bytes", maxFilterBytes)
	}
	if !json.Valid([]byte(s)) {
		return apierr.New(apierr.CodeNotJSON, "filter is not valid JSON")
	}
	if err := json.Unmarshal([]byte(s), f); err != nil {
		return apierr.BadJSON("filter has the wrong shape: %v", err)
	}
	return nil
}

func parseFilter(s string) (Filter, error) {
	var f Filter
	if err := decodeFilter(s, &f); err != nil {
		return f, err
	}
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return f, apierr.BadJSON("filter: event_format %q is not client or federation", f.EventFormat)
	}
	// client-server API, EventFilter: "must be an integer greater than 0".
	limits := map[string]*int{"room.timeline.limit": f.Room.Timeline.Limit, "room.state.limit": f.Room.State.Limit,
		"room.ephemeral.limit": f.Room.Ephemeral.Limit, "room.account_data.limit": f.Room.AccountData.Limit,
		"account_data.limit": f.AccountData.Limit, "presence.limit": f.Presence.Limit}
	for name, l := range limits {
		if l != nil && *l <= 0 {
			return f, apierr.BadJSON("filter: %s must be greater than 0", name)
		}
	}
	for _, field := range f.EventFields {
		if field == "" {
			return f, apierr.BadJSON("filter: event_fields has an empty field")
		}
	}
	return f, nil
}

// storedFilter loads a filter the user uploaded (POST /user/{userId}/filter).
// An id that names no filter of the user is M_INVALID_PARAM: the parameter
// is wrong, not the resource.
func (s *Sync) storedFilter(ctx context.Context, userID, id string) (Filter, error) {
	res, err := s.userAPI.QueryFilter(ctx, userapi.QueryFilterRequest{UserID: userID, FilterID: id})
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeNotFound {
		return Filter{}, apierr.InvalidParam("filter: no filter %q", id)
	}
	if err != nil {
		return Filter{}, fmt.Errorf("load filter %s of %s: %w", id, userID, err)
	}
	f, err := parseFilter(string(res.Filter))
	if err != nil {
		return Filter{}, fmt.Errorf("stored filter %s of %s: %w", id, userID, err)
	}
	return f, nil
}
