package routing

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// Limits of /messages and /context.
const (
	// DefaultMessagesLimit is the spec's default page size of /messages
	// and /context.
	DefaultMessagesLimit = 10
	// MaxMessagesLimit caps the page size: a page is read and rendered in
	// one request.
	MaxMessagesLimit = 1000
)

// MessagesRequest is a parsed GET /rooms/{roomId}/messages query.
type MessagesRequest struct {
	// Forward is dir=f; dir=b (backward) otherwise.
	Forward bool
	// From and To are nil when absent; FromText is from as given, echoed
	// as start.
	From, To *streams.Token
	FromText string
	Limit    int
	Filter   RoomEventFilter
	// FilterID is a stored filter's id (the filter was not JSON), loaded
	// by the handler: its room.timeline filter applies.
	FilterID string
}

// ParseMessagesRequest parses the query of /messages. dir is required (b or
// f); from and to are stream tokens (/sync's next_batch and prev_batch,
// /messages' end, /context's start and end); limit is a non-negative
// integer, capped at MaxMessagesLimit; filter a RoomEventFilter. Errors are
// M_INVALID_PARAM, or M_NOT_JSON / M_BAD_JSON for the filter (400).
func ParseMessagesRequest(q url.Values) (MessagesRequest, error) {
	var r MessagesRequest
	dir, ok := lookup(q, "dir")
	if !ok {
		return r, apierr.InvalidParam("dir is required (b or f)")
	}
	var err error
	if r.Forward, err = parseDir(dir); err != nil {
		return r, err
	}
	if s, ok := lookup(q, "from"); ok && s != "" {
		tok, err := streams.ParseToken(s)
		if err != nil {
			return r, apierr.InvalidParam("from: %q is not a pagination token", s)
		}
		r.From, r.FromText = &tok, s
	}
	if s, ok := lookup(q, "to"); ok && s != "" {
		tok, err := streams.ParseToken(s)
		if err != nil {
			return r, apierr.InvalidParam("to: %q is not a pagination token", s)
		}
		r.To = &tok
	}
	if r.Limit, err = parseLimit(q, DefaultMessagesLimit, MaxMessagesLimit); err != nil {
		return r, err
	}
	r.Filter, r.FilterID, err = parseRoomEventFilterParam(q)
	return r, err
}

func parseDir(s string) (forward bool, err error) {
	switch s {
	case "f":
		return true, nil
	case "b":
		return false, nil
	}
	return false, apierr.InvalidParam("dir: %q is not b or f", s)
}

// parseLimit reads the limit parameter: decimal digits only, capped at max
// (so any length of digits is valid), def when absent.
func parseLimit(q url.Values, def, maxLimit int) (int, error) {
	s, ok := lookup(q, "limit")
	if !ok {
		return def, nil
	}
	if s == "" {
		return 0, apierr.InvalidParam("limit: empty")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, apierr.InvalidParam("limit: %q is not a non-negative integer", s)
		}
		if n <= maxLimit {
			n = n*10 + int(c-'0')
		}
	}
	return min(n, maxLimit), nil
}

// parseRoomEventFilterParam reads the filter parameter: a RoomEventFilter
// as JSON, or, when it is not JSON, the id of a stored filter (the spec's
// /context example is one).
func parseRoomEventFilterParam(q url.Values) (RoomEventFilter, string, error) {
	s, ok := lookup(q, "filter")
	if !ok || s == "" {
		return RoomEventFilter{}, "", nil
	}
	if !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") {
		return RoomEventFilter{}, s, nil
	}
	f, err := parseRoomEventFilter(s)
	return f, "", err
}

// parseRoomEventFilter decodes a RoomEventFilter (M_NOT_JSON, M_BAD_JSON).
func parseRoomEventFilter(s string) (RoomEventFilter, error) {
	var f RoomEventFilter
	if err := decodeFilter(s, &f); err != nil {
		return f, err
	}
	if f.Limit != nil && *f.Limit <= 0 {
		return f, apierr.BadJSON("filter: limit must be greater than 0")
	}
	return f, nil
}

// parseTimestampRequest parses the query of timestamp_to_event: ts (an
// integer, milliseconds) and dir (f or b), both required.
func parseTimestampRequest(q url.Values) (ts int64, forward bool, err error) {
	s, ok := lookup(q, "ts")
	if !ok {
		return 0, false, apierr.InvalidParam("ts is required")
	}
	if ts, err = strconv.ParseInt(s, 10, 64); err != nil || strings.HasPrefix(s, "+") {
		return 0, false, apierr.InvalidParam("ts: %q is not an integer", s)
	}
	dir, ok := lookup(q, "dir")
	if !ok {
		return 0, false, apierr.InvalidParam("dir is required (f or b)")
	}
	forward, err = parseDir(dir)
	return ts, forward, err
}
