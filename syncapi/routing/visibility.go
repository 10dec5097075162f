package routing

import (
	"context"
	"encoding/json"

	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// History visibility values (client-server API, "Room History Visibility").
const (
	worldReadable = "world_readable"
	shared        = "shared"
	invited       = "invited"
	joined        = "joined"
)

const historyVisibilityEvent = "m.room.history_visibility"

// change is a value of one piece of state from a position on.
type change struct {
	pos   streams.Position
	value string
}

// valueAt is the value in force at position p, def before any change.
func valueAt(cs []change, p streams.Position, def string) string {
	v := def
	for _, c := range cs {
		if c.pos > p {
			break
		}
		v = c.value
	}
	return v
}

// visibility decides which events of one room one user may see, from the
// room's history_visibility changes and the user's membership changes.
type visibility struct {
	userID     string
	history    []change
	membership []change
}

// loadVisibility reads what visibility needs for a room up to upTo.
func (b *builder) loadVisibility(ctx context.Context, roomID string, upTo streams.Position) (*visibility, error) {
	hv, err := b.db.Deltas.TupleHistory(ctx, b.q, roomID, storage.Tuple{Type: historyVisibilityEvent}, upTo)
	if err != nil {
		return nil, err
	}
	mem, err := b.db.Deltas.TupleHistory(ctx, b.q, roomID, storage.Tuple{Type: storage.MemberEvent, StateKey: b.dev.UserID}, upTo)
	if err != nil {
		return nil, err
	}
	v := &visibility{userID: b.dev.UserID}
	for _, c := range hv {
		v.history = append(v.history, change{pos: c.Position, value: historyVisibilityOf(c.JSON)})
	}
	for _, c := range mem {
		v.membership = append(v.membership, change{pos: c.Position, value: c.Membership})
	}
	return v, nil
}

// historyVisibilityOf reads content.history_visibility; absent or unknown
// values are shared (the spec's default).
func historyVisibilityOf(pduJSON []byte) string {
	var e struct {
		Content struct {
			HistoryVisibility any `json:"history_visibility"`
		} `json:"content"`
	}
	if len(pduJSON) == 0 || json.Unmarshal(pduJSON, &e) != nil {
		return shared
	}
	switch v, _ := e.Content.HistoryVisibility.(string); v {
	case worldReadable, shared, invited, joined:
		return v
	}
	return shared
}

// allowed applies the spec's rules ("Server behaviour", 1 to 5) for an event
// at position p given the visibility and membership at the event.
func (v *visibility) allowed(hv, membership string, p streams.Position) bool {
	switch {
	case hv == worldReadable:
		return true
	case membership == join:
		return true
	case hv == shared && v.joinedAfter(p):
		return true
	case membership == invite && hv == invited:
		return true
	}
	return false
}

// joinedAfter reports whether the user joined the room after position p.
func (v *visibility) joinedAfter(p streams.Position) bool {
	for _, c := range v.membership {
		if c.pos > p && c.value == join {
			return true
		}
	}
	return false
}

// visible reports whether the user may see e. The state "at the event" is
// the state before it; history_visibility events and the user's own
// membership events are also visible if the state after them allows it.
func (v *visibility) visible(e storage.Event) bool {
	before := e.Position - 1
	hv := valueAt(v.history, before, shared)
	mem := valueAt(v.membership, before, leave)
	if v.allowed(hv, mem, e.Position) {
		return true
	}
	if e.StateKey == nil {
		return false
	}
	switch {
	case e.Type == historyVisibilityEvent && *e.StateKey == "":
		return v.allowed(valueAt(v.history, e.Position, shared), mem, e.Position)
	case e.Type == storage.MemberEvent && *e.StateKey == v.userID:
		return v.allowed(hv, valueAt(v.membership, e.Position, leave), e.Position)
	}
	return false
}

// visibleSuffix returns the events after the last one the user may not see.
// Only a contiguous run can be returned: the state sent with a timeline is
// the state at its start, and a hidden state event inside it would leave the
// client's state wrong.
func (v *visibility) visibleSuffix(evs []storage.Event) []storage.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if !v.visible(evs[i]) {
			return evs[i+1:]
		}
	}
	return evs
}
