package routing

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// MessagesResponse is the body of a 200 answer to /messages.
type MessagesResponse struct {
	Start string            `json:"start"`
	End   string            `json:"end,omitempty"`
	Chunk []json.RawMessage `json:"chunk"`
	State []json.RawMessage `json:"state,omitempty"`
}

// ContextResponse is the body of a 200 answer to /context.
type ContextResponse struct {
	Start        string            `json:"start"`
	End          string            `json:"end"`
	EventsBefore []json.RawMessage `json:"events_before"`
	Event        json.RawMessage   `json:"event"`
	EventsAfter  []json.RawMessage `json:"events_after"`
	State        []json.RawMessage `json:"state"`
}

// roomEventFilter resolves a stored filter id into its room.timeline
// filter (the one that applies to room events).
func (s *Sync) roomEventFilter(ctx context.Context, userID string, f RoomEventFilter, id string) (RoomEventFilter, error) {
	if id == "" {
		return f, nil
	}
	stored, err := s.storedFilter(ctx, userID, id)
	if err != nil {
		return RoomEventFilter{}, err
	}
	return stored.Room.Timeline, nil
}

// ServeMessages is GET /rooms/{roomId}/messages: a page of the room's
// events in stream order (dir=f) or reverse stream order (dir=b) from a
// token. Tokens are /sync's, so a client pages back from prev_batch; end
// is omitted once there is nothing more to read in that direction (the
// start of the room, what the user may see, the to token or, forward, the
// latest event). Errors: M_INVALID_PARAM for dir, from, to, limit or the
// room id, M_NOT_JSON / M_BAD_JSON for the filter, M_FORBIDDEN for a user
// never in the room when it was never world readable.
func (s *Sync) ServeMessages(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	req, err := ParseMessagesRequest(r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	if req.Filter, err = s.roomEventFilter(ctx, dev.UserID, req.Filter, req.FilterID); err != nil {
		return err
	}
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	if err != nil {
		return err
	}
	resp, err := rr.messages(ctx, req, cur)
	if err != nil {
		return err
	}
	return httputil.JSON(w, resp)
}

func (rr *roomReader) messages(ctx context.Context, req MessagesRequest, cur streams.Token) (*MessagesResponse, error) {
	// Without from, a page starts at the latest event (backward) or the
	// first (forward); tokens from the future read as now.
	from := cur
	if req.Forward {
		from = cur.With(streams.PDU, 0)
	}
	if req.From != nil {
		from = req.From.Min(cur)
	}
	start := req.FromText
	if start == "" {
		start = from.String()
	}
	bound := streams.Position(0)
	if req.Forward {
		bound = rr.upTo
	}
	if req.To != nil {
		to := min(req.To.Get(streams.PDU), rr.upTo)
		if req.Forward {
			bound = min(bound, to)
		} else {
			bound = max(bound, to)
		}
	}
	limit := req.Limit
	if req.Filter.Limit != nil {
		limit = min(limit, *req.Filter.Limit)
	}
	resp := &MessagesResponse{Start: start, Chunk: []json.RawMessage{}}
	if !req.Filter.AllowsRoom(rr.roomID) {
		return resp, nil
	}
	evs, reached, done, err := rr.page(ctx, from.Get(streams.PDU), bound, req.Forward, limit, rr.keep(req.Filter))
	if err != nil {
		return nil, err
	}
	if !done {
		resp.End = from.With(streams.PDU, reached).String()
	}
	var members []storage.Event
	if req.Filter.LazyLoadMembers && len(evs) > 0 {
		// The senders' members as of the latest event of the page.
		at := max(evs[0].Position, evs[len(evs)-1].Position)
		if members, err = rr.b.db.Deltas.MembersAt(ctx, rr.b.q, rr.roomID, at, senders(evs)); err != nil {
			return nil, err
		}
	}
	rendered, err := rr.render(ctx, append(slices.Clip(evs), members...))
	if err != nil {
		return nil, err
	}
	resp.Chunk = append(resp.Chunk, rendered[:len(evs)]...)
	if len(members) > 0 {
		resp.State = rendered[len(evs):]
	}
	return resp, nil
}

// pathEvent reads the {eventId} path value. Only its form is checked (a
// sigil, a bounded length): whether it names an event is for storage to
// say, with M_NOT_FOUND, whatever the room version's id format.
func pathEvent(r *http.Request) (string, error) {
	id := r.PathValue("eventId")
	if !strings.HasPrefix(id, "$") || len(id) > maxEventIDBytes {
		return "", apierr.InvalidParam("event id %q is not an event id", id)
	}
	return id, nil
}

// maxEventIDBytes is the spec's limit on the length of an event id.
const maxEventIDBytes = 255

// visibleEvent loads an event of the room the user may see; M_NOT_FOUND
// when it is unknown, in another room, not yet notified or not visible.
func (rr *roomReader) visibleEvent(ctx context.Context, eventID string) (storage.Event, error) {
	e, err := rr.b.db.Events.SelectByID(ctx, rr.b.q, eventID)
	if errors.Is(err, storage.ErrNoEvent) || (err == nil && (e.RoomID != rr.roomID || e.Position > rr.upTo || !rr.vis.visible(e))) {
		return storage.Event{}, apierr.New(apierr.CodeNotFound, "event %s not found", eventID)
	}
	return e, err
}

// ServeEvent is GET /rooms/{roomId}/event/{eventId}. Errors: M_NOT_FOUND
// for an event that is unknown, not in the room or not visible to the user
// (also when the user may see nothing of the room, as the spec's 404
// "you do not have permission to read this event" says), M_INVALID_PARAM
// for a bad id.
func (s *Sync) ServeEvent(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	eventID, err := pathEvent(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	rr, err := s.openRoom(ctx, dev, roomID, s.notifier.Current())
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeForbidden {
		return apierr.New(apierr.CodeNotFound, "event %s not found", eventID)
	}
	if err != nil {
		return err
	}
	e, err := rr.visibleEvent(ctx, eventID)
	if err != nil {
		return err
	}
	out, err := rr.render(ctx, []storage.Event{e})
	if err != nil {
		return err
	}
	return httputil.JSON(w, out[0])
}

// ServeContext is GET /rooms/{roomId}/context/{eventId}: the event, up to
// limit events around it (half before, the rest after), the tokens to page
// on from either side with /messages, and the state at the last event
// returned. The filter applies to the events around and the state, not to
// the event; with lazy_load_members the state carries only the members of
// the senders. Errors: as /messages, and M_NOT_FOUND for an event that is
// unknown, not in the room or not visible.
func (s *Sync) ServeContext(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	eventID, err := pathEvent(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := parseLimit(q, DefaultMessagesLimit, MaxMessagesLimit)
	if err != nil {
		return err
	}
	f, filterID, err := parseRoomEventFilterParam(q)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if f, err = s.roomEventFilter(ctx, dev.UserID, f, filterID); err != nil {
		return err
	}
	if f.Limit != nil {
		limit = min(limit, *f.Limit)
	}
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	if err != nil {
		return err
	}
	e, err := rr.visibleEvent(ctx, eventID)
	if err != nil {
		return err
	}
	resp, err := rr.context(ctx, e, f, limit, cur)
	if err != nil {
		return err
	}
	return httputil.JSON(w, resp)
}

func (rr *roomReader) context(ctx context.Context, e storage.Event, f RoomEventFilter, limit int, cur streams.Token) (*ContextResponse, error) {
	nBefore := limit / 2
	nAfter := limit - nBefore
	var before, after []storage.Event
	startPos, endPos := e.Position-1, e.Position
	if f.AllowsRoom(rr.roomID) {
		keep := rr.keep(f)
		var err error
		if before, startPos, _, err = rr.page(ctx, e.Position-1, 0, false, nBefore, keep); err != nil {
			return nil, err
		}
		if after, endPos, _, err = rr.page(ctx, e.Position, rr.upTo, true, nAfter, keep); err != nil {
			return nil, err
		}
	}
	last := e.Position
	if len(after) > 0 {
		last = after[len(after)-1].Position
	}
	state, err := rr.b.db.Deltas.StateAt(ctx, rr.b.q, rr.roomID, last, nil)
	if err != nil {
		return nil, err
	}
	if f.LazyLoadMembers {
		need := map[string]bool{rr.b.dev.UserID: true}
		for _, u := range senders(before, after, []storage.Event{e}) {
			need[u] = true
		}
		state = slices.DeleteFunc(state, func(s storage.Event) bool {
			return s.Type == storage.MemberEvent && s.StateKey != nil && !need[*s.StateKey]
		})
	}
	state = slices.DeleteFunc(state, func(s storage.Event) bool { return !f.Allows(s) })

	all := make([]storage.Event, 0, 1+len(before)+len(after)+len(state))
	all = append(append(append(append(all, e), before...), after...), state...)
	rendered, err := rr.render(ctx, all)
	if err != nil {
		return nil, err
	}
	nb, na := len(before), len(after)
	return &ContextResponse{
		Start:        cur.With(streams.PDU, startPos).String(),
		End:          cur.With(streams.PDU, endPos).String(),
		Event:        rendered[0],
		EventsBefore: rendered[1 : 1+nb],
		EventsAfter:  rendered[1+nb : 1+nb+na],
		State:        rendered[1+nb+na:],
	}, nil
}

// maxTimestampScan bounds the events timestamp_to_event reads looking for
// one the user may see.
const maxTimestampScan = 1000

// ServeTimestampToEvent is GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event:
// the event closest to ts in direction dir (f: the first at or after it,
// b: the last at or before it) that the user may see, by origin_server_ts
// and then stream position. Errors: M_INVALID_PARAM for ts, dir or the room
// id, M_FORBIDDEN as /messages, M_NOT_FOUND when there is no such event.
func (s *Sync) ServeTimestampToEvent(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	ts, forward, err := parseTimestampRequest(r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	rr, err := s.openRoom(ctx, dev, roomID, s.notifier.Current())
	if err != nil {
		return err
	}
	var cursor *storage.TSCursor
	for scanned := 0; scanned < maxTimestampScan; {
		evs, cursors, err := rr.b.db.Events.ByTimestamp(ctx, rr.b.q, roomID, ts, cursor, forward, rr.upTo, scanBatch)
		if err != nil {
			return err
		}
		for i, e := range evs {
			if rr.vis.visible(e) {
				return httputil.JSON(w, struct {
					EventID        string `json:"event_id"`
					OriginServerTS int64  `json:"origin_server_ts"`
				}{e.EventID, cursors[i].TS})
			}
		}
		if len(evs) < scanBatch {
			break
		}
		scanned += len(evs)
		cursor = &cursors[len(cursors)-1]
	}
	dir := "backward"
	if forward {
		dir = "forward"
	}
	return apierr.New(apierr.CodeNotFound, "no event from %d in %s direction", ts, dir)
}
