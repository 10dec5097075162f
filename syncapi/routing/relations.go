package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	pdus "github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Limits of /relations and /threads.
const (
	defaultRelationsLimit = 10
	maxRelationsLimit     = 100
	// recurseDepth is how deep recurse=true follows relations (the spec:
	// "at least 3 levels").
	recurseDepth = 3
)

// RelationsRequest is a parsed GET /relations query.
type RelationsRequest struct {
	From, To *streams.Token
	Limit    int
	Forward  bool
	// Recurse is nil when the parameter is absent (recursion_depth is then
	// omitted from the response).
	Recurse *bool
}

// ParseRelationsRequest parses the query of GET /rooms/{roomId}/relations/...
// (400 M_INVALID_PARAM for bad values).
func ParseRelationsRequest(q url.Values) (RelationsRequest, error) {
	var r RelationsRequest
	var err error
	for _, p := range []struct {
		name string
		dst  **streams.Token
	}{{"from", &r.From}, {"to", &r.To}} {
		if s := q.Get(p.name); s != "" {
			tok, err := streams.ParseToken(s)
			if err != nil {
				return r, apierr.InvalidParam("%s: %q is not a pagination token", p.name, s)
			}
			*p.dst = &tok
		}
	}
	if r.Limit, err = parseLimit(q, defaultRelationsLimit, maxRelationsLimit); err != nil {
		return r, err
	}
	if r.Limit == 0 {
		r.Limit = defaultRelationsLimit
	}
	if s, ok := lookup(q, "dir"); ok {
		if r.Forward, err = parseDir(s); err != nil {
			return r, err
		}
	}
	if _, ok := lookup(q, "recurse"); ok {
		v, err := parseBool(q, "recurse")
		if err != nil {
			return r, err
		}
		r.Recurse = &v
	}
	return r, nil
}

// relationsResponse is the body of GET /relations.
type relationsResponse struct {
	Chunk          []json.RawMessage `json:"chunk"`
	NextBatch      string            `json:"next_batch,omitempty"`
	PrevBatch      string            `json:"prev_batch,omitempty"`
	RecursionDepth *int              `json:"recursion_depth,omitempty"`
}

// ServeRelations is GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}
// [/{relType}[/{eventType}]]: the children of an event, newest first by
// default. 404 M_NOT_FOUND when the parent is not in the room or the user
// may not see it.
func (s *Sync) ServeRelations(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	req, err := ParseRelationsRequest(r.URL.Query())
	if err != nil {
		return err
	}
	roomID, parentID := r.PathValue("roomId"), r.PathValue("eventId")
	resp, err := s.relations(r.Context(), dev, roomID, parentID, r.PathValue("relType"), r.PathValue("eventType"), req)
	if err != nil {
		return err
	}
	return httputil.JSON(w, resp)
}

func (s *Sync) relations(ctx context.Context, dev userapi.Device, roomID, parentID, relType, eventType string, req RelationsRequest) (*relationsResponse, error) {
	notFound := apierr.New(apierr.CodeNotFound, "event %s not found", parentID)
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeForbidden {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	parents, err := s.db.Events.SelectByIDs(ctx, rr.b.q, []string{parentID})
	if err != nil {
		return nil, err
	}
	if len(parents) != 1 || parents[0].RoomID != roomID || parents[0].Position > rr.upTo || !rr.vis.visible(parents[0]) {
		return nil, notFound
	}
	keep := rr.keep(RoomEventFilter{})
	upTo := rr.upTo
	q := storage.ChildrenQuery{RoomID: roomID, Parent: parentID, RelType: relType, Type: eventType,
		Backwards: !req.Forward, Limit: scanBatch, Depth: 1}
	if req.Recurse != nil && *req.Recurse {
		q.Depth = recurseDepth
	}
	// pos is the token position: backwards, children at or below it are
	// next; forwards, children above it.
	var pos, bound streams.Position
	if req.Forward {
		bound = upTo
		if req.From != nil {
			pos = req.From.Get(streams.PDU)
		}
		if req.To != nil {
			bound = min(bound, req.To.Get(streams.PDU))
		}
	} else {
		pos = upTo
		if req.From != nil {
			pos = min(pos, req.From.Get(streams.PDU))
		}
		if req.To != nil {
			bound = req.To.Get(streams.PDU)
		}
	}
	var out []storage.Event
	more, scanned := true, 0
	for len(out) < req.Limit && scanned < maxScanned {
		if (req.Forward && pos >= bound) || (!req.Forward && pos <= bound) {
			more = false
			break
		}
		// Backwards, pos > bound >= 0 here: From is never the unbounded 0.
		q.From, q.To = pos, bound
		evs, err := s.db.Relations.Children(ctx, rr.b.q, q)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			scanned++
			if req.Forward {
				pos = e.Position
			} else {
				pos = e.Position - 1
			}
			if keep(e) {
				out = append(out, e)
				if len(out) == req.Limit {
					break
				}
			}
		}
		if len(evs) < scanBatch && len(out) < req.Limit {
			more = false
			break
		}
	}
	if more && len(out) == req.Limit {
		// Say next_batch only if something is left.
		q.From, q.To, q.Limit = pos, bound, 1
		if (req.Forward && pos >= bound) || (!req.Forward && pos <= bound) {
			more = false
		} else {
			rest, err := s.db.Relations.Children(ctx, rr.b.q, q)
			if err != nil {
				return nil, err
			}
			more = len(rest) > 0
		}
	}
	chunk, err := rr.render(ctx, out)
	if err != nil {
		return nil, err
	}
	resp := &relationsResponse{Chunk: chunk}
	if resp.Chunk == nil {
		resp.Chunk = []json.RawMessage{}
	}
	if more {
		resp.NextBatch = cur.With(streams.PDU, pos).String()
	}
	if req.From != nil {
		resp.PrevBatch = req.From.String()
	}
	if req.Recurse != nil {
		resp.RecursionDepth = &q.Depth
	}
	return resp, nil
}

// threadsResponse is the body of GET /threads.
type threadsResponse struct {
	Chunk     []json.RawMessage `json:"chunk"`
	NextBatch string            `json:"next_batch,omitempty"`
}

// ServeThreads is GET /_matrix/client/v1/rooms/{roomId}/threads: the
// room's thread roots, the most recently replied to first, with their
// bundled aggregations. include=participated keeps the threads the user
// started or replied to. 403 M_FORBIDDEN for a room the user cannot read.
func (s *Sync) ServeThreads(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	participated := false
	if v, ok := lookup(q, "include"); ok {
		switch v {
		case "all":
		case "participated":
			participated = true
		default:
			return apierr.InvalidParam("include: %q is not all or participated", v)
		}
	}
	limit, err := parseLimit(q, defaultRelationsLimit, maxRelationsLimit)
	if err != nil {
		return err
	}
	if limit == 0 {
		return apierr.InvalidParam("limit must be greater than 0")
	}
	var before streams.Position
	if v := q.Get("from"); v != "" {
		tok, err := streams.ParseToken(v)
		if err != nil {
			return apierr.InvalidParam("from: %q is not a pagination token", v)
		}
		if before = tok.Get(streams.PDU); before == 0 {
			// Nothing is at or below position 0.
			return httputil.JSON(w, threadsResponse{Chunk: []json.RawMessage{}})
		}
	}
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	if err != nil {
		return err
	}
	var roots []storage.Event
	more, scanned := true, 0
	for len(roots) < limit && scanned < maxScanned {
		page, err := s.db.Relations.RoomThreads(ctx, rr.b.q, storage.RoomThreadsQuery{RoomID: roomID, UserID: dev.UserID,
			Participated: participated, Before: before, UpTo: rr.upTo, Limit: scanBatch})
		if err != nil {
			return err
		}
		ids := make([]string, len(page))
		for i, t := range page {
			ids[i] = t.Root
		}
		evs, err := s.db.Events.SelectByIDs(ctx, rr.b.q, ids)
		if err != nil {
			return err
		}
		byID := make(map[string]storage.Event, len(evs))
		for _, e := range evs {
			byID[e.EventID] = e
		}
		keep := rr.keep(RoomEventFilter{})
		for _, t := range page {
			scanned++
			before = t.LatestPos - 1
			e, ok := byID[t.Root]
			switch {
			case !ok:
				continue
			case e.StateKey == nil && rr.b.ignored[e.Sender] && rr.vis.visible(e):
				// An ignored user's root is returned redacted, as a client
				// aggregating the thread itself would show it (threads_list).
				if e, err = redactedCopy(e); err != nil {
					return err
				}
			case !keep(e):
				continue
			}
			roots = append(roots, e)
			if len(roots) == limit {
				break
			}
		}
		if len(page) < scanBatch && len(roots) < limit {
			more = false
			break
		}
		if before <= 0 {
			more = false
			break
		}
	}
	if more && len(roots) == limit {
		rest, err := s.db.Relations.RoomThreads(ctx, rr.b.q, storage.RoomThreadsQuery{RoomID: roomID, UserID: dev.UserID,
			Participated: participated, Before: before, UpTo: rr.upTo, Limit: 1})
		if err != nil {
			return err
		}
		more = before > 0 && len(rest) > 0
	}
	chunk, err := rr.render(ctx, roots)
	if err != nil {
		return err
	}
	resp := threadsResponse{Chunk: chunk}
	if resp.Chunk == nil {
		resp.Chunk = []json.RawMessage{}
	}
	if more {
		resp.NextBatch = cur.With(streams.PDU, before).String()
	}
	return httputil.JSON(w, resp)
}

// redactedCopy is e as the redaction algorithm of its room version leaves it.
func redactedCopy(e storage.Event) (storage.Event, error) {
	v, ok := pdus.Version(e.RoomVersion)
	if !ok {
		return e, fmt.Errorf("event %s: unknown room version %q", e.EventID, e.RoomVersion)
	}
	red, err := pdus.Redact(e.JSON, v)
	if err != nil {
		return e, fmt.Errorf("redact %s: %w", e.EventID, err)
	}
	e.JSON = red
	return e, nil
}
