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
// default. Errors: M_INVALID_PARAM for a bad room or event id or query
// value, M_NOT_FOUND when the parent is not in the room or the user may not
// see it.
func (s *Sync) ServeRelations(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	parentID, err := pathEvent(r)
	if err != nil {
		return err
	}
	req, err := ParseRelationsRequest(r.URL.Query())
	if err != nil {
		return err
	}
	resp, err := s.relations(r.Context(), dev, roomID, parentID, r.PathValue("relType"), r.PathValue("eventType"), req)
	if err != nil {
		return err
	}
	return httputil.JSON(w, resp)
}

func (s *Sync) relations(ctx context.Context, dev userapi.Device, roomID, parentID, relType, eventType string, req RelationsRequest) (*relationsResponse, error) {
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeForbidden {
		return nil, apierr.New(apierr.CodeNotFound, "event %s not found", parentID)
	}
	if err != nil {
		return nil, err
	}
	if _, err := rr.visibleEvent(ctx, parentID); err != nil {
		return nil, err
	}
	q := storage.ChildrenQuery{RoomID: roomID, Parent: parentID, RelType: relType, Type: eventType,
		Backwards: !req.Forward, Depth: 1}
	if req.Recurse != nil && *req.Recurse {
		q.Depth = recurseDepth
	}
	// The children are events at their own positions: runs the user may
	// not see are skipped as /messages skips them.
	p := pager[storage.Event]{
		forward: req.Forward,
		read: func(ctx context.Context, from, bound streams.Position, n int) ([]storage.Event, error) {
			q := q
			q.From, q.To, q.Limit = from, bound, n
			return s.db.Relations.Children(ctx, rr.b.q, q)
		},
		pos:    eventPos,
		hidden: rr.vis.hiddenRun,
	}
	// from is the token position: backwards, children at or below it are
	// next; forwards, children above it. Backwards, bound 0 is the start
	// of the room.
	var from, bound streams.Position
	if req.Forward {
		bound = rr.upTo
		if req.From != nil {
			from = req.From.Get(streams.PDU)
		}
		if req.To != nil {
			bound = min(bound, req.To.Get(streams.PDU))
		}
	} else {
		from = rr.upTo
		if req.From != nil {
			from = min(from, req.From.Get(streams.PDU))
		}
		if req.To != nil {
			bound = req.To.Get(streams.PDU)
		}
	}
	out, pos, done, err := collect(ctx, p, from, bound, req.Limit, rr.keep(RoomEventFilter{}))
	if err != nil {
		return nil, err
	}
	more, err := p.more(ctx, pos, bound, done, len(out) == req.Limit)
	if err != nil {
		return nil, err
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

// threadRoot is a thread as /threads pages it: at the position of its
// latest reply, with its root event when that is stored (EventID "" when
// not).
type threadRoot struct {
	latest streams.Position
	root   storage.Event
}

// ServeThreads is GET /_matrix/client/v1/rooms/{roomId}/threads: the
// room's thread roots, the most recently replied to first, with their
// bundled aggregations. include=participated keeps the threads the user
// started or replied to. Errors: M_INVALID_PARAM for a bad room id or
// query value, M_FORBIDDEN for a room the user cannot read.
func (s *Sync) ServeThreads(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
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
	var from *streams.Position
	if v := q.Get("from"); v != "" {
		tok, err := streams.ParseToken(v)
		if err != nil {
			return apierr.InvalidParam("from: %q is not a pagination token", v)
		}
		before := tok.Get(streams.PDU)
		if before == 0 {
			// Nothing is at or below position 0.
			return httputil.JSON(w, threadsResponse{Chunk: []json.RawMessage{}})
		}
		from = &before
	}
	ctx := r.Context()
	cur := s.notifier.Current()
	rr, err := s.openRoom(ctx, dev, roomID, cur)
	if err != nil {
		return err
	}
	// Threads are ordered by their latest reply, not by the root's
	// position: no run of them can be skipped by visibility.
	p := pager[threadRoot]{
		read: func(ctx context.Context, before, _ streams.Position, n int) ([]threadRoot, error) {
			return s.threadRoots(ctx, rr, storage.RoomThreadsQuery{RoomID: roomID, UserID: dev.UserID,
				Participated: participated, Before: before, UpTo: rr.upTo, Limit: n})
		},
		pos: func(t threadRoot) streams.Position { return t.latest },
	}
	start := rr.upTo
	if from != nil {
		start = *from
	}
	keep := rr.keep(RoomEventFilter{})
	var roots []storage.Event
	pos, done, err := p.page(ctx, start, 0, limit, func(t threadRoot) (bool, error) {
		e := t.root
		switch {
		case e.EventID == "":
			return false, nil
		case e.StateKey == nil && rr.b.ignored[e.Sender] && rr.vis.visible(e):
			// An ignored user's root is returned redacted, as a client
			// aggregating the thread itself would show it (threads_list).
			var err error
			if e, err = redactedCopy(e); err != nil {
				return false, err
			}
		case !keep(e):
			return false, nil
		}
		roots = append(roots, e)
		return true, nil
	})
	if err != nil {
		return err
	}
	more, err := p.more(ctx, pos, 0, done, len(roots) == limit)
	if err != nil {
		return err
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
		resp.NextBatch = cur.With(streams.PDU, pos).String()
	}
	return httputil.JSON(w, resp)
}

// threadRoots reads a page of the room's threads with their root events.
func (s *Sync) threadRoots(ctx context.Context, rr *roomReader, q storage.RoomThreadsQuery) ([]threadRoot, error) {
	page, err := s.db.Relations.RoomThreads(ctx, rr.b.q, q)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(page))
	for i, t := range page {
		ids[i] = t.Root
	}
	evs, err := s.db.Events.SelectByIDs(ctx, rr.b.q, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]storage.Event, len(evs))
	for _, e := range evs {
		byID[e.EventID] = e
	}
	out := make([]threadRoot, len(page))
	for i, t := range page {
		out[i] = threadRoot{latest: t.LatestPos, root: byID[t.Root]}
	}
	return out, nil
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
