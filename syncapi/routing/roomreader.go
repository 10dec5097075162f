package routing

import (
	"context"
	"encoding/json"
	"math"
	"slices"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Paging limits of the room reads beyond /sync.
const (
	// scanBatch is how many events one storage read fetches while paging.
	scanBatch = 100
	// maxScanned bounds the events one request reads and drops (filtered
	// out, not visible, ignored): past it the page ends early with a
	// token, and the client asks again, as the spec allows ("an empty
	// chunk does not necessarily imply that no more events are available").
	maxScanned = 5000
)

// roomReader reads one room's events for one user up to a position, as
// that user may see them: history visibility and ignored users applied.
// /messages, /context, /event and timestamp_to_event share it.
type roomReader struct {
	b      *builder // b.ignored: the user's ignore list
	roomID string
	upTo   streams.Position
	vis    *visibility
}

// openRoom prepares reading roomID for dev up to cur's PDU position. A
// user who never had a membership in the room (never invited, joined or
// knocked) may read it only if it was world_readable at some point, and
// gets M_FORBIDDEN otherwise; everyone else is filtered event by event.
func (s *Sync) openRoom(ctx context.Context, dev userapi.Device, roomID string, cur streams.Token) (*roomReader, error) {
	rr, err := s.openRoomWith(ctx, dev, roomID, cur, nil)
	if err != nil {
		return nil, err
	}
	// Read once the user may read the room: a refusal costs no more.
	if rr.b.ignored, err = s.ignoredUsers(ctx, dev.UserID); err != nil {
		return nil, err
	}
	return rr, nil
}

// openRoomWith is openRoom with the user's ignore list already read (a
// request reading several rooms reads it once).
func (s *Sync) openRoomWith(ctx context.Context, dev userapi.Device, roomID string, cur streams.Token, ignored map[string]bool) (*roomReader, error) {
	b := &builder{db: s.db, q: s.db.DB.Reader(), dev: dev, cur: cur, now: s.now(), ignored: ignored}
	upTo := cur.Get(streams.PDU)
	v, err := b.loadVisibility(ctx, roomID, upTo)
	if err != nil {
		return nil, err
	}
	if len(v.membership) == 0 && !slices.ContainsFunc(v.history, func(c change) bool { return c.value == worldReadable }) {
		return nil, apierr.New(apierr.CodeForbidden, "you are not a member of room %s and it is not world readable", roomID)
	}
	return &roomReader{b: b, roomID: roomID, upTo: upTo, vis: v}, nil
}

// keep returns the test an event passes to be served: the filter, history
// visibility and, for message events, the user's ignore list (state events
// of ignored users are still served, client-server API "Ignoring Users").
func (rr *roomReader) keep(f RoomEventFilter) func(storage.Event) bool {
	return func(e storage.Event) bool {
		if e.StateKey == nil && rr.b.ignored[e.Sender] {
			return false
		}
		return f.Allows(e) && rr.vis.visible(e)
	}
}

// page reads the room from position from (exclusive going forward,
// inclusive going backward) towards bound (inclusive going forward,
// exclusive going backward) until limit events pass keep. It returns them
// in reading order, the position reached (the token for the next page:
// filtered-out events are not read twice) and whether it reached bound.
// Runs of events the user may not see are skipped without reading them.
func (rr *roomReader) page(ctx context.Context, from, bound streams.Position, forward bool, limit int, keep func(storage.Event) bool) ([]storage.Event, streams.Position, bool, error) {
	p := pager[storage.Event]{
		forward: forward,
		read: func(ctx context.Context, from, bound streams.Position, n int) ([]storage.Event, error) {
			if forward {
				return rr.b.db.Events.Range(ctx, rr.b.q, rr.roomID, from, bound, true, n)
			}
			return rr.b.db.Events.Range(ctx, rr.b.q, rr.roomID, bound, from, false, n)
		},
		pos:    eventPos,
		hidden: rr.vis.hiddenRun,
	}
	return collect(ctx, p, from, bound, limit, keep)
}

// collect pages through events with p and returns those that pass keep,
// with what p.page returns.
func collect(ctx context.Context, p pager[storage.Event], from, bound streams.Position, limit int, keep func(storage.Event) bool) ([]storage.Event, streams.Position, bool, error) {
	var out []storage.Event
	cur, done, err := p.page(ctx, from, bound, limit, func(e storage.Event) (bool, error) {
		if !keep(e) {
			return false, nil
		}
		out = append(out, e)
		return true, nil
	})
	if err != nil {
		return nil, 0, false, err
	}
	return out, cur, done, nil
}

// eventPos is an event's stream position, the order the room's events
// and an event's children are read in.
func eventPos(e storage.Event) streams.Position { return e.Position }

// pager pages through one of a room's lists in stream order: its events
// (/messages, /context), an event's children (/relations), its threads
// (/threads). Every paged read of a room goes through it, so tokens,
// bounds and the maxScanned cut mean the same on every endpoint.
type pager[T any] struct {
	forward bool
	// read returns at most n entries after from up to bound (from
	// excluded, bound included) going forward, at from down to bound
	// (from included, bound excluded) going backward, in reading order.
	read func(ctx context.Context, from, bound streams.Position, n int) ([]T, error)
	// pos is the position of an entry in the list's order.
	pos func(T) streams.Position
	// hidden, if set, is visibility.hiddenRun: the list holds only
	// events at their own positions, so runs the user may not see can be
	// skipped unread.
	hidden func(streams.Position) (lo, hi streams.Position, hidden bool)
}

// page reads from from towards bound, offering each entry to take, until
// take has kept limit of them, maxScanned were read, or bound is reached.
// It returns the position reached (the token for the next page: entries
// not kept are not read twice) and whether it is bound.
func (p pager[T]) page(ctx context.Context, from, bound streams.Position, limit int, take func(T) (bool, error)) (streams.Position, bool, error) {
	cur, kept, scanned := from, 0, 0
	atBound := func() bool {
		if p.forward {
			return cur >= bound
		}
		return cur <= bound
	}
	for !atBound() && kept < limit && scanned < maxScanned {
		if p.hidden != nil {
			// The next candidate is cur+1 going forward, cur going backward.
			next := cur
			if p.forward {
				next = cur + 1
			}
			if lo, hi, hidden := p.hidden(next); hidden {
				if p.forward {
					cur = min(hi-1, bound)
				} else {
					cur = max(lo, bound)
				}
				continue
			}
		}
		entries, err := p.read(ctx, cur, bound, scanBatch)
		if err != nil {
			return 0, false, err
		}
		consumed := 0
		for _, e := range entries {
			scanned++
			consumed++
			cur = p.pos(e)
			if !p.forward {
				cur--
			}
			ok, err := take(e)
			if err != nil {
				return 0, false, err
			}
			if ok {
				if kept++; kept == limit {
					break
				}
			}
		}
		if len(entries) < scanBatch && consumed == len(entries) {
			// A short read is all there was up to the bound.
			cur = bound
		}
	}
	return cur, atBound(), nil
}

// more reports whether entries are left after a page that ended at cur,
// at bound (done) or not, with limit entries kept (full) or not: a page
// cut short by maxScanned leaves some, a full one only if an entry is
// left before bound (so next_batch is not given for an empty page). The
// entry found may be one the user is not given; the next page is then
// empty, as the spec allows.
func (p pager[T]) more(ctx context.Context, cur, bound streams.Position, done, full bool) (bool, error) {
	if done || !full {
		return !done, nil
	}
	rest, err := p.read(ctx, cur, bound, 1)
	if err != nil {
		return false, err
	}
	return len(rest) > 0, nil
}

// render formats events in the client format with their room_id, as
// /messages, /context and /event serve them (ClientEvent).
func (rr *roomReader) render(ctx context.Context, evs []storage.Event) ([]json.RawMessage, error) {
	out, err := rr.b.render(ctx, evs)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i] = withRoomID(out[i], rr.roomID)
	}
	return out, nil
}

// withRoomID adds room_id to a rendered client event (a JSON object that
// has at least content, so never empty).
func withRoomID(ev json.RawMessage, roomID string) json.RawMessage {
	id, _ := json.Marshal(roomID)
	out := make([]byte, 0, len(ev)+len(id)+12)
	out = append(out, `{"room_id":`...)
	out = append(out, id...)
	out = append(out, ',')
	return append(out, ev[1:]...)
}

// senders returns the distinct senders of events, sorted.
func senders(evs ...[]storage.Event) []string {
	var out []string
	for _, list := range evs {
		for _, e := range list {
			out = append(out, e.Sender)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hiddenRun tells whether position p lies in a run of positions where the
// user may see no event at all, and the run's bounds: the nearest
// positions below and above p where the room's history visibility or the
// user's membership changed (0 and MaxInt64 when none). Between two such
// changes the visibility rules give the same answer for every event, and
// the events at the changes themselves (which carry the special cases for
// visibility and own membership events) are never in a run.
func (v *visibility) hiddenRun(p streams.Position) (lo, hi streams.Position, hidden bool) {
	lo, hi = 0, math.MaxInt64
	for _, cs := range [][]change{v.history, v.membership} {
		for _, c := range cs {
			switch {
			case c.pos == p:
				return p, p, false
			case c.pos < p:
				lo = max(lo, c.pos)
			default:
				hi = min(hi, c.pos)
			}
		}
	}
	before := p - 1
	return lo, hi, !v.allowed(valueAt(v.history, before, shared), valueAt(v.membership, before, leave), p)
}
