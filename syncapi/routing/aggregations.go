package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// Bundled aggregations (client-server API "Aggregations of child events"):
// unsigned.m.relations of an event served to a client summarises its
// children: m.replace (the latest valid edit), m.thread (count, latest
// reply, whether the user took part) and m.reference (the referencing
// event ids). Children count up to the builder's position only, the one
// the response is bounded by.
//
// The cost is one query for the whole list of events when nothing relates
// to them (the common case), and a fixed handful more when something does,
// however many events there are.

// aggregations returns the m.relations object of each event of evs that
// has one. State events get none (the spec: "State events do not currently
// receive bundled aggregations").
func (b *builder) aggregations(ctx context.Context, evs []storage.Event) (map[string]json.RawMessage, error) {
	return b.aggregate(ctx, evs, true)
}

// aggregate computes the bundles; threads is false for the latest events of
// threads, which get their edits but cannot root threads themselves.
func (b *builder) aggregate(ctx context.Context, evs []storage.Event, threads bool) (map[string]json.RawMessage, error) {
	byID := make(map[string]storage.Event, len(evs))
	var parents []string
	for _, e := range evs {
		if e.StateKey == nil {
			if _, dup := byID[e.EventID]; !dup {
				parents = append(parents, e.EventID)
			}
			byID[e.EventID] = e
		}
	}
	if len(parents) == 0 {
		return nil, nil
	}
	types, err := b.db.Relations.RelTypes(ctx, b.q, parents, b.upTo())
	if err != nil || len(types) == 0 {
		return nil, err
	}
	bounds, err := b.aggregationBounds(ctx)
	if err != nil {
		return nil, err
	}
	// Parents grouped by how far their children may be counted: the whole
	// response for the rooms the user is in, up to the leave for the others.
	type group struct{ edited, threaded, referenced []string }
	groups := map[streams.Position]*group{}
	for _, p := range parents {
		bound := b.upTo()
		if lb, ok := bounds[byID[p].RoomID]; ok {
			bound = lb
		}
		g := groups[bound]
		if g == nil {
			g = &group{}
			groups[bound] = g
		}
		for _, rt := range types[p] {
			switch rt {
			case storage.RelReplace:
				// A redacted event bundles no edit (spec: "Server-side aggregation of
				// m.replace relationships").
				if !redacted(byID[p].JSON) {
					g.edited = append(g.edited, p)
				}
			case storage.RelThread:
				if threads {
					g.threaded = append(g.threaded, p)
				}
			case storage.RelReference:
				g.referenced = append(g.referenced, p)
			}
		}
	}
	rels := map[string]map[string]any{}
	for upTo, g := range groups {
		if err := b.aggregateUpTo(ctx, byID, g.edited, g.threaded, g.referenced, upTo, rels); err != nil {
			return nil, err
		}
	}
	out := make(map[string]json.RawMessage, len(rels))
	for parent, r := range rels {
		js, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode m.relations of %s: %w", parent, err)
		}
		out[parent] = js
	}
	return out, nil
}

// aggregationBounds returns, for the rooms the user has left or been
// banned from, the position of that membership: children after it are in
// history the user may not see, so aggregations leave them out (the spec's
// warning under "Aggregations of child events"). Rooms the user is in (or
// reads as world_readable) count children up to the response's position.
// They are read once per response: every render and the recursion for
// thread replies need them.
func (b *builder) aggregationBounds(ctx context.Context) (map[string]streams.Position, error) {
	if b.bounds != nil {
		return b.bounds, nil
	}
	ms := b.memberships // /sync has them already
	if !b.haveMembers {
		var err error
		if ms, err = b.db.Deltas.MembershipsAt(ctx, b.q, b.dev.UserID, b.upTo()); err != nil {
			return nil, err
		}
	}
	out := map[string]streams.Position{}
	for _, m := range ms {
		if m.Membership == leave || m.Membership == ban {
			out[m.RoomID] = m.Position
		}
	}
	b.bounds = out
	return out, nil
}

// aggregateUpTo adds to rels the aggregations of the given parents from
// their children up to position upTo.
func (b *builder) aggregateUpTo(ctx context.Context, byID map[string]storage.Event, edited, threaded, referenced []string,
	upTo streams.Position, rels map[string]map[string]any) error {
	set := func(parent, relType string, v any) {
		if rels[parent] == nil {
			rels[parent] = map[string]any{}
		}
		rels[parent][relType] = v
	}
	latestEdit, err := b.latestEdits(ctx, edited, upTo)
	if err != nil {
		return err
	}
	var summaries []storage.ThreadSummary
	if len(threaded) > 0 {
		var ign []string
		for u := range b.ignored {
			ign = append(ign, u)
		}
		if summaries, err = b.db.Relations.Threads(ctx, b.q, threaded, b.dev.UserID, ign, upTo); err != nil {
			return err
		}
	}
	// One read for the edits and the latest replies.
	need := make([]string, 0, len(latestEdit)+len(summaries))
	for _, id := range latestEdit {
		need = append(need, id)
	}
	for _, s := range summaries {
		need = append(need, s.Latest)
	}
	children := map[string]storage.Event{}
	if len(need) > 0 {
		evs, err := b.db.Events.SelectByIDs(ctx, b.q, need)
		if err != nil {
			return err
		}
		for _, e := range evs {
			children[e.EventID] = e
		}
	}
	for parent, id := range latestEdit {
		e, ok := children[id]
		if !ok {
			continue
		}
		ce, err := clientEvent(e, b.dev, nil, b.now)
		if err != nil {
			return err
		}
		set(parent, storage.RelReplace, ce)
	}
	if len(summaries) > 0 {
		// The latest replies carry their own aggregations (their edits).
		var latest []storage.Event
		for _, s := range summaries {
			if e, ok := children[s.Latest]; ok {
				latest = append(latest, e)
			}
		}
		inner, err := b.aggregate(ctx, latest, false)
		if err != nil {
			return err
		}
		for _, s := range summaries {
			e, ok := children[s.Latest]
			if !ok {
				continue
			}
			ce, err := clientEventRelations(e, b.dev, nil, inner[e.EventID], b.now)
			if err != nil {
				return err
			}
			set(s.Root, storage.RelThread, map[string]any{
				"latest_event":              ce,
				"count":                     s.Count,
				"current_user_participated": s.Participant || byID[s.Root].Sender == b.dev.UserID,
			})
		}
	}
	if len(referenced) > 0 {
		refs, err := b.db.Relations.References(ctx, b.q, referenced, upTo)
		if err != nil {
			return err
		}
		for parent, ids := range refs {
			chunk := make([]map[string]string, len(ids))
			for i, id := range ids {
				chunk[i] = map[string]string{"event_id": id}
			}
			set(parent, storage.RelReference, map[string]any{"chunk": chunk})
		}
	}
	return nil
}

// latestEdits picks the latest valid edit of each parent: the greatest
// origin_server_ts, then the lexicographically largest event id.
func (b *builder) latestEdits(ctx context.Context, parents []string, upTo streams.Position) (map[string]string, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	cands, err := b.db.Relations.Edits(ctx, b.q, parents, upTo)
	if err != nil {
		return nil, err
	}
	best := map[string]storage.EditCandidate{}
	for _, c := range cands {
		cur, ok := best[c.Parent]
		if !ok || c.TS > cur.TS || (c.TS == cur.TS && c.EventID > cur.EventID) {
			best[c.Parent] = c
		}
	}
	out := make(map[string]string, len(best))
	for p, c := range best {
		out[p] = c.EventID
	}
	return out, nil
}

// redacted reports whether a stored event has been redacted (the syncapi
// keeps the redacted form, with unsigned.redacted_because).
func redacted(pdu []byte) bool {
	if !bytes.Contains(pdu, []byte(`"redacted_because"`)) {
		return false
	}
	var e struct {
		Unsigned struct {
			RedactedBecause json.RawMessage `json:"redacted_because"`
		} `json:"unsigned"`
	}
	return json.Unmarshal(pdu, &e) == nil && len(e.Unsigned.RedactedBecause) > 0 &&
		!slices.Equal(e.Unsigned.RedactedBecause, []byte("null"))
}

// unbundled is a timeline rendered without its aggregations: rendered[i]
// is evs[i], and shares its array with the response's timeline.
type unbundled struct {
	evs      []storage.Event
	rendered []json.RawMessage
}

// bundleTimelines adds the aggregations of every timeline /sync set aside,
// with one aggregations read for the whole response: only the events that
// have some are rendered again, in place.
func (b *builder) bundleTimelines(ctx context.Context) error {
	if len(b.unbundled) == 0 {
		return nil
	}
	var all []storage.Event
	for _, u := range b.unbundled {
		all = append(all, u.evs...)
	}
	rels, err := b.aggregations(ctx, all)
	if err != nil || len(rels) == 0 {
		return err
	}
	for _, u := range b.unbundled {
		for i, e := range u.evs {
			r, ok := rels[e.EventID]
			if !ok {
				continue
			}
			// Aggregated events are never state events: no prev_content.
			ce, err := clientEventRelations(e, b.dev, nil, r, b.now)
			if err != nil {
				return err
			}
			if len(b.req.Filter.EventFields) > 0 {
				if ce, err = projectFields(ce, b.req.Filter.EventFields); err != nil {
					return err
				}
			}
			u.rendered[i] = ce
		}
	}
	b.unbundled = nil
	return nil
}
