// Package internal holds the clientapi's logic below its routes: building
// and signing events against the roomserver's view of a room.
package internal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// Builder builds events as this server.
type Builder struct {
	ServerName matrix.ServerName
	Key        signing.Key
	RS         rsapi.API
}

// maxPrevEvents bounds how many forward extremities one event references.
const maxPrevEvents = 10

// Build fills in prev_events, auth_events and depth of p from the room's
// latest events and current state, then hashes and signs it. M_NOT_FOUND if
// the room is unknown here.
func (b *Builder) Build(ctx context.Context, p event.Proto) (*event.PDU, *event.RoomVersion, error) {
	// The room version decides which auth events are needed, and the query
	// returns the version: ask for a superset (create is needed by some versions).
	want := []rsapi.StateKeyTuple{{Type: event.TypeCreate}}
	if dv, ok := event.Version(event.DefaultRoomVersion); ok {
		for _, t := range event.AuthEventsNeeded(p, dv) {
			want = append(want, rsapi.StateKeyTuple{Type: t.Type, StateKey: t.StateKey})
		}
	}
	res, err := b.RS.QueryLatestEventsAndState(ctx, rsapi.QueryLatestEventsAndStateRequest{RoomID: string(p.RoomID), StateToFetch: want})
	if err != nil {
		return nil, nil, fmt.Errorf("query room %s: %w", p.RoomID, err)
	}
	if !res.RoomExists {
		return nil, nil, apierr.NotFound("unknown room %s", p.RoomID)
	}
	v, ok := event.Version(res.RoomVersion)
	if !ok {
		return nil, nil, apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", res.RoomVersion)
	}
	state := map[event.StateKeyTuple]matrix.EventID{}
	// Room versions 1 and 2 reference events with their reference hashes.
	withHashes := v.EventIDInJSON()
	if withHashes {
		p.RefHashes = map[matrix.EventID][]byte{}
		for id, h := range res.LatestEventHashes {
			p.RefHashes[matrix.EventID(id)] = h
		}
	}
	if len(res.StateEventIDs) == len(res.StateEvents) && !withHashes {
		// The ids are all that is needed: parsing would hash every event again.
		for _, id := range res.StateEventIDs {
			state[event.StateKeyTuple{Type: id.Type, StateKey: id.StateKey}] = matrix.EventID(id.EventID)
		}
	} else {
		for _, raw := range res.StateEvents {
			e, err := event.Parse(raw, v)
			if err != nil {
				return nil, nil, fmt.Errorf("parse state event of %s: %w", p.RoomID, err)
			}
			state[event.StateKeyTuple{Type: e.Type(), StateKey: *e.StateKey()}] = e.EventID()
			if withHashes {
				h, err := event.ReferenceHash(raw, v)
				if err != nil {
					return nil, nil, fmt.Errorf("reference hash of %s: %w", e.EventID(), err)
				}
				p.RefHashes[e.EventID()] = h
			}
		}
	}
	p.AuthEvents = p.AuthEvents[:0]
	for _, t := range event.AuthEventsNeeded(p, v) {
		if id, ok := state[t]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	p.PrevEvents = p.PrevEvents[:0]
	for i, id := range res.LatestEvents {
		if i == maxPrevEvents {
			break
		}
		p.PrevEvents = append(p.PrevEvents, matrix.EventID(id))
	}
	p.Depth = res.Depth + 1
	e, err := p.Build(v, b.ServerName, b.Key)
	if err != nil {
		return nil, nil, buildError(err)
	}
	return e, v, nil
}

// Chain builds a sequence of events where each follows the previous, as
// createRoom does, keeping the state locally instead of asking the
// roomserver after every event.
type Chain struct {
	b       *Builder
	v       *event.RoomVersion
	RoomID  matrix.RoomID
	state   map[event.StateKeyTuple]matrix.EventID
	prev    matrix.EventID
	depth   int64
	Events  []*event.PDU
	created bool
	// hashes are the reference hashes of the chain's events (room
	// versions 1 and 2 only).
	hashes map[matrix.EventID][]byte
}

// NewChain starts a chain in a room of version v that does not exist yet.
func (b *Builder) NewChain(v *event.RoomVersion, roomID matrix.RoomID) *Chain {
	return &Chain{b: b, v: v, RoomID: roomID, state: map[event.StateKeyTuple]matrix.EventID{}}
}

// Add builds the next event of the chain.
func (c *Chain) Add(p event.Proto) (*event.PDU, error) {
	if c.created {
		p.RoomID = c.RoomID
	} else if !c.v.RoomIDFromCreate {
		p.RoomID = c.RoomID
	}
	p.AuthEvents = nil
	for _, t := range event.AuthEventsNeeded(p, c.v) {
		if id, ok := c.state[t]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	p.PrevEvents = nil
	if c.prev != "" {
		p.PrevEvents = []matrix.EventID{c.prev}
	}
	p.RefHashes = c.hashes
	c.depth++
	p.Depth = c.depth
	e, err := p.Build(c.v, c.b.ServerName, c.b.Key)
	if err != nil {
		return nil, buildError(err)
	}
	if !c.created {
		c.created = true
		c.RoomID = e.RoomID()
	}
	c.prev = e.EventID()
	if c.v.EventIDInJSON() {
		h, err := event.ReferenceHash(e.JSON(), c.v)
		if err != nil {
			return nil, fmt.Errorf("reference hash of %s: %w", e.EventID(), err)
		}
		if c.hashes == nil {
			c.hashes = map[matrix.EventID][]byte{}
		}
		c.hashes[e.EventID()] = h
	}
	if sk := e.StateKey(); sk != nil {
		c.state[event.StateKeyTuple{Type: e.Type(), StateKey: *sk}] = e.EventID()
	}
	c.Events = append(c.Events, e)
	return e, nil
}

// Input returns the chain as roomserver input, stored all or nothing: a
// refused event must not leave half a room.
func (c *Chain) Input() rsapi.InputRoomEventsRequest {
	req := rsapi.InputRoomEventsRequest{RoomID: string(c.RoomID), RoomVersion: c.v.ID, Atomic: true}
	for _, e := range c.Events {
		req.Events = append(req.Events, rsapi.InputEvent{Kind: rsapi.KindNew, Event: json.RawMessage(e.JSON())})
	}
	return req
}

func buildError(err error) error {
	if errors.Is(err, event.ErrTooLarge) {
		return apierr.New(apierr.CodeTooLarge, "event is too large: %v", err)
	}
	if errors.Is(err, event.ErrFormat) {
		return apierr.BadJSON("invalid event: %v", err)
	}
	return fmt.Errorf("build event: %w", err)
}

// SingleInput is roomserver input of one new event.
func SingleInput(e *event.PDU, v *event.RoomVersion) rsapi.InputRoomEventsRequest {
	return rsapi.InputRoomEventsRequest{RoomID: string(e.RoomID()), RoomVersion: v.ID,
		Events: []rsapi.InputEvent{{Kind: rsapi.KindNew, Event: json.RawMessage(e.JSON())}}}
}
