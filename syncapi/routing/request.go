package routing

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
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
	// SetPresence is "", "online", "offline" or "unavailable"; presence is
	// not implemented yet, so it is only validated.
	SetPresence string
	// UseStateAfter asks for state_after instead of state (spec v1.16).
	UseStateAfter bool
	Filter        Filter
	// FilterID is a stored filter's id. Stored filters do not exist yet, so
	// an id is answered as if no filter was given.
	FilterID string
}

// Filter is the part of a sync filter (client-server API "Filtering") the
// syncapi applies so far; other fields are accepted and ignored.
type Filter struct {
	// EventFormat is "client" (the default) or "federation".
	EventFormat string     `json:"event_format"`
	Room        RoomFilter `json:"room"`
}

// RoomFilter filters rooms.
type RoomFilter struct {
	// Rooms, when set, lists the only rooms to include.
	Rooms *[]string `json:"rooms"`
	// NotRooms are excluded even if listed in Rooms.
	NotRooms     []string    `json:"not_rooms"`
	IncludeLeave bool        `json:"include_leave"`
	Timeline     EventFilter `json:"timeline"`
}

// EventFilter is the part of a room event filter applied so far.
type EventFilter struct {
	Limit *int `json:"limit"`
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

func parseFilter(s string) (Filter, error) {
	var f Filter
	if len(s) > maxFilterBytes {
		return f, apierr.New(apierr.CodeTooLarge, "filter is longer than %d bytes", maxFilterBytes)
	}
	if !json.Valid([]byte(s)) {
		return f, apierr.New(apierr.CodeNotJSON, "filter is not valid JSON")
	}
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return f, apierr.BadJSON("filter has the wrong shape: %v", err)
	}
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return f, apierr.BadJSON("filter: event_format %q is not client or federation", f.EventFormat)
	}
	// client-server API, EventFilter: "must be an integer greater than 0".
	if l := f.Room.Timeline.Limit; l != nil && *l <= 0 {
		return f, apierr.BadJSON("filter: room.timeline.limit must be greater than 0")
	}
	return f, nil
}
