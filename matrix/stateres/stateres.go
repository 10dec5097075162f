// Package stateres implements Matrix state resolution: the algorithm that
// merges the room states of several branches of the event graph into one.
// Room version 1 uses the original algorithm (rooms/v1.md "State
// resolution"), versions 2 to 11 state resolution v2
// (rooms/fragments/v2-state-res.md) and version 12 its revision, v2.1
// (rooms/v12.md "State resolution"): iterative auth checks start from an
// empty state map and the full conflicted set includes the conflicted state
// subgraph.
//
// Resolve loads events through the Events interface, caches them for the
// duration of one call, and returns errors (a missing event, a cancelled
// context) instead of panicking.
package stateres

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
)

// StateKey identifies a piece of room state: (event type, state key).
type StateKey struct{ Type, StateKey string }

// StateMap is a room state: the event ID in force for each state key.
type StateMap map[StateKey]matrix.EventID

// Events loads events by ID: the state events being resolved and every
// event in their auth chains. A missing event is an error, which Resolve
// returns.
type Events interface {
	Event(ctx context.Context, id matrix.EventID) (*event.PDU, error)
}

// Rejections is an optional interface of Events. When implemented, an
// event's auth event that was itself rejected is not used in the iterative
// auth checks ("Rejected auth events are deliberately excluded from use in
// the iterative auth checks"). Without it no auth event is taken to be
// rejected.
type Rejections interface {
	Rejected(ctx context.Context, id matrix.EventID) (bool, error)
}

// ErrUnknownAlgorithm means the room version names no state resolution
// algorithm this package implements.
var ErrUnknownAlgorithm = errors.New("unknown state resolution algorithm")

// Resolve returns the resolution of states in a room of version v. Zero
// states resolve to an empty map and one state to a copy of itself.
func Resolve(ctx context.Context, v *event.RoomVersion, states []StateMap, events Events) (StateMap, error) {
	if v == nil {
		return nil, errors.New("resolve state: nil room version")
	}
	if events == nil {
		return nil, errors.New("resolve state: nil Events")
	}
	switch len(states) {
	case 0:
		return StateMap{}, nil
	case 1:
		return maps.Clone(states[0]), nil
	}
	size := 0
	for _, s := range states {
		size = max(size, len(s))
	}
	r := &resolver{ctx: ctx, v: v, events: events, cache: make(map[matrix.EventID]*event.PDU, size+size/4)}
	r.rejections, _ = events.(Rejections)
	var out StateMap
	var err error
	switch v.StateRes {
	case event.StateResV1:
		out, err = r.resolveV1(states)
	case event.StateResV2, event.StateResV2_1:
		out, err = r.resolveV2(states)
	default:
		err = fmt.Errorf("%w %d (room version %s)", ErrUnknownAlgorithm, v.StateRes, v.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve state (room version %s): %w", v.ID, err)
	}
	return out, nil
}

// resolver holds one Resolve call: its event cache and what it derived.
type resolver struct {
	ctx        context.Context
	v          *event.RoomVersion
	events     Events
	rejections Rejections
	cache      map[matrix.EventID]*event.PDU
	rejected   map[matrix.EventID]bool
	loads      int

	// create is the room version 12 create event, named by the room ID.
	create *event.PDU
}

// get loads an event, once per Resolve call.
func (r *resolver) get(id matrix.EventID) (*event.PDU, error) {
	if e, ok := r.cache[id]; ok {
		return e, nil
	}
	r.loads++
	if r.loads%1024 == 0 {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
	}
	e, err := r.events.Event(r.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", id, err)
	}
	if e == nil {
		return nil, fmt.Errorf("load event %s: not found", id)
	}
	if e.EventID() != id {
		return nil, fmt.Errorf("load event %s: got event %s", id, e.EventID())
	}
	if e.Version() == nil || e.Version().ID != r.v.ID {
		return nil, fmt.Errorf("load event %s: not a room version %s event", id, r.v.ID)
	}
	r.cache[id] = e
	return e, nil
}

func (r *resolver) isRejected(id matrix.EventID) (bool, error) {
	if r.rejections == nil {
		return false, nil
	}
	if r.rejected == nil {
		r.rejected = map[matrix.EventID]bool{}
	}
	if rej, ok := r.rejected[id]; ok {
		return rej, nil
	}
	rej, err := r.rejections.Rejected(r.ctx, id)
	if err != nil {
		return false, fmt.Errorf("rejection state of %s: %w", id, err)
	}
	r.rejected[id] = rej
	return rej, nil
}

// roomCreate returns the create event a room version 12 event's room ID
// names (rooms/v12.md: the create event is implied by the room ID and not
// listed in auth_events).
func (r *resolver) roomCreate(e *event.PDU) (*event.PDU, error) {
	if r.create != nil && r.create.RoomID() == e.RoomID() {
		return r.create, nil
	}
	id := e.RoomID()
	if len(id) < 2 {
		return nil, fmt.Errorf("room ID %q names no create event", id)
	}
	c, err := r.get(matrix.EventID("$" + string(id)[1:]))
	if err != nil {
		return nil, fmt.Errorf("create event of %s: %w", id, err)
	}
	r.create = c
	return c, nil
}

func keyOf(e *event.PDU) (StateKey, bool) {
	sk := e.StateKey()
	if sk == nil {
		return StateKey{}, false
	}
	return StateKey{Type: e.Type(), StateKey: *sk}, true
}

// authEventsFor selects the events the auth rules consult for e from
// state, falling back, key by key, to e's own auth events that were not
// rejected (v2 "Iterative auth checks"). With fallback false only state is
// used (the v1 algorithm checks events "for a room in state R").
func (r *resolver) authEventsFor(state lookup, e *event.PDU, fallback bool) ([]*event.PDU, error) {
	needed := event.AuthEventsNeededFor(e)
	out := make([]*event.PDU, 0, len(needed)+1)
	var fromAuth map[StateKey]*event.PDU
	for _, k := range needed {
		if id, ok := state(StateKey{Type: k.Type, StateKey: k.StateKey}); ok {
			ev, err := r.get(id)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
			continue
		}
		if !fallback {
			continue
		}
		if fromAuth == nil {
			fromAuth = map[StateKey]*event.PDU{}
			for _, aid := range e.AuthEventIDs() {
				a, err := r.get(aid)
				if err != nil {
					return nil, err
				}
				rej, err := r.isRejected(aid)
				if err != nil {
					return nil, err
				}
				if ak, ok := keyOf(a); ok && !rej {
					fromAuth[ak] = a
				}
			}
		}
		if a := fromAuth[StateKey{Type: k.Type, StateKey: k.StateKey}]; a != nil {
			out = append(out, a)
		}
	}
	if r.v.RoomIDFromCreate && e.Type() != event.TypeCreate {
		c, err := r.roomCreate(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// lookup reads a state: a StateMap's, or one with an override (see
// StateMap.with).
type lookup func(StateKey) (matrix.EventID, bool)

func (s StateMap) get(k StateKey) (matrix.EventID, bool) {
	id, ok := s[k]
	return id, ok
}

// with returns s with k set to id, without copying s.
func (s StateMap) with(k StateKey, id matrix.EventID) lookup {
	return func(q StateKey) (matrix.EventID, bool) {
		if q == k {
			return id, true
		}
		return s.get(q)
	}
}

// allowed reports whether e passes the auth rules against the auth events
// selected from state.
func (r *resolver) allowed(state lookup, e *event.PDU, fallback bool) (bool, error) {
	auth, err := r.authEventsFor(state, e, fallback)
	if err != nil {
		return false, err
	}
	err = authrules.Check(e, auth)
	if err == nil {
		return true, nil
	}
	var na *authrules.NotAllowedError
	if errors.As(err, &na) {
		return false, nil
	}
	return false, fmt.Errorf("auth check of %s: %w", e.EventID(), err)
}
