// Package api is the contract of the roomserver: the room DAG's owner.
//
// Writers submit events with InputRoomEvents; the roomserver checks them
// against the auth rules, stores them, moves forward extremities and
// publishes every accepted event on OutputRoomEvent, in order per room.
// Readers ask for the latest events and state needed to build a new event.
package api

import (
	"context"
	"encoding/json"

	"github.com/axon-hs/axon/internal/eventlog"
)

// API is the roomserver internal API.
type API interface {
	// InputRoomEvents submits events of one room. They go through the room
	// input log (ordered per room) and the call waits until every event is
	// processed. An event the auth rules reject fails the call with
	// M_FORBIDDEN naming the reason; events before it in the request stay
	// accepted. Submitting an event already stored is a no-op, so a retried
	// call is safe.
	InputRoomEvents(ctx context.Context, req InputRoomEventsRequest) (InputRoomEventsResponse, error)
	// QueryLatestEventsAndState returns what building a new event in a room
	// needs: the room version, the forward extremities, the depth, and the
	// current state events for the requested (type, state_key) tuples.
	// RoomExists is false (and no error) for an unknown room.
	QueryLatestEventsAndState(ctx context.Context, req QueryLatestEventsAndStateRequest) (QueryLatestEventsAndStateResponse, error)
	// QueryCurrentState returns current state events of a room, all of them
	// when Tuples is empty. M_NOT_FOUND for an unknown room.
	QueryCurrentState(ctx context.Context, req QueryCurrentStateRequest) (QueryCurrentStateResponse, error)

	// QueryMembership returns a user's membership in the current state of a
	// room. RoomExists is false (and no error) for an unknown room.
	QueryMembership(ctx context.Context, req QueryMembershipRequest) (QueryMembershipResponse, error)
	// QueryRoomsForUser lists the rooms where the user has a membership in
	// the current state, optionally only one kind, sorted by room.
	QueryRoomsForUser(ctx context.Context, req QueryRoomsForUserRequest) (QueryRoomsForUserResponse, error)
	// QueryStateForUser returns the state of a room that a user may see:
	// the current state when joined or when the room is world_readable, the
	// state after their leave or ban otherwise. M_NOT_FOUND for an unknown
	// room, M_FORBIDDEN when the user may not see it.
	QueryStateForUser(ctx context.Context, req QueryStateForUserRequest) (QueryStateForUserResponse, error)
	// QueryEvents returns accepted events of a room by id. M_NOT_FOUND for
	// an unknown room; unknown events are left out.
	QueryEvents(ctx context.Context, req QueryEventsRequest) (QueryEventsResponse, error)
	// QueryTransaction returns the event an accepted input event with this
	// client transaction id (and a Scope) became, "" if none: the record is
	// written with the event, so it exists exactly when the event does.
	QueryTransaction(ctx context.Context, req QueryTransactionRequest) (QueryTransactionResponse, error)
	// PerformForget marks a room the user left as forgotten. M_NOT_FOUND if
	// the user has no membership there, M_UNKNOWN (400) while they are
	// joined, invited or knocking. Idempotent.
	PerformForget(ctx context.Context, req PerformForgetRequest) (PerformForgetResponse, error)

	// SetRoomAlias points a local alias at a room. M_NOT_FOUND for an
	// unknown room; 409 M_UNKNOWN when the alias exists, even if it already
	// points at the room (spec PUT /directory/room).
	SetRoomAlias(ctx context.Context, req SetRoomAliasRequest) (SetRoomAliasResponse, error)
	// GetRoomAlias resolves a local alias. M_NOT_FOUND if unknown.
	GetRoomAlias(ctx context.Context, req GetRoomAliasRequest) (GetRoomAliasResponse, error)
	// RemoveRoomAlias deletes a local alias; permission is the caller's
	// check. M_NOT_FOUND if unknown.
	RemoveRoomAlias(ctx context.Context, req RemoveRoomAliasRequest) (RemoveRoomAliasResponse, error)
	// QueryAliasesForRoom lists the local aliases pointing at a room.
	QueryAliasesForRoom(ctx context.Context, req QueryAliasesForRoomRequest) (QueryAliasesForRoomResponse, error)

	// SetRoomVisibility lists (public) or unlists (private) a room in the
	// public room directory. M_NOT_FOUND for an unknown room. Idempotent.
	SetRoomVisibility(ctx context.Context, req SetRoomVisibilityRequest) (SetRoomVisibilityResponse, error)
	// QueryRoomVisibility answers public or private. M_NOT_FOUND for an
	// unknown room.
	QueryRoomVisibility(ctx context.Context, req QueryRoomVisibilityRequest) (QueryRoomVisibilityResponse, error)
	// QueryPublicRooms pages through the public room directory, ordered by
	// joined members (most first) then room id. M_INVALID_PARAM for a Since
	// this server did not issue.
	QueryPublicRooms(ctx context.Context, req QueryPublicRoomsRequest) (QueryPublicRoomsResponse, error)

	// PerformReport stores a report of an event or a room for the
	// administrators. M_NOT_FOUND for an unknown room.
	PerformReport(ctx context.Context, req PerformReportRequest) (PerformReportResponse, error)
}

// Input kinds.
const (
	// KindNew is an event at the edge of the DAG: it moves the forward extremities.
	KindNew = "new"
	// KindOutlier is an event stored without state (e.g. auth chain events from federation).
	KindOutlier = "outlier"
)

// InputEvent is one event submitted to the roomserver.
type InputEvent struct {
	Kind  string          `json:"kind"`
	Event json.RawMessage `json:"event"` // the full signed PDU
	// TxnID lets the sender's /sync see its transaction id.
	TxnID *TransactionID `json:"txn_id,omitempty"`
}

// TransactionID ties an event to the client request that made it.
type TransactionID struct {
	UserID        string `json:"user_id"`
	DeviceID      string `json:"device_id"`
	TransactionID string `json:"transaction_id"`
	// Scope is the endpoint the id was used on (the same id may serve two);
	// when set, the roomserver records the id with the accepted event for
	// QueryTransaction.
	Scope string `json:"scope,omitempty"`
}

type QueryTransactionRequest struct {
	Txn TransactionID `json:"txn"`
}

type QueryTransactionResponse struct {
	EventID string `json:"event_id,omitempty"`
}

type InputRoomEventsRequest struct {
	RoomID      string       `json:"room_id"`
	RoomVersion string       `json:"room_version"`
	Events      []InputEvent `json:"events"`
	// Atomic: every event is stored, or none is. A rejected event rolls
	// back the whole request (a new room's events: a refused createRoom or
	// upgrade must not leave half a room). Otherwise each event is stored
	// on its own and the events before a rejected one stay.
	Atomic bool `json:"atomic,omitempty"`
}
type InputRoomEventsResponse struct {
	// TxnEvents maps a submitted event whose client transaction id (with a
	// scope) was already recorded for another event to that event's id:
	// the submitted one was not stored. A retried request built before the
	// first one's event was stored ends here.
	TxnEvents map[string]string `json:"txn_events,omitempty"`
}

// StateKeyTuple names one piece of state.
type StateKeyTuple struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
}

type QueryLatestEventsAndStateRequest struct {
	RoomID       string          `json:"room_id"`
	StateToFetch []StateKeyTuple `json:"state_to_fetch"`
}
type QueryLatestEventsAndStateResponse struct {
	RoomExists   bool              `json:"room_exists"`
	RoomVersion  string            `json:"room_version"`
	LatestEvents []string          `json:"latest_events"`
	Depth        int64             `json:"depth"` // the greatest depth of LatestEvents
	StateEvents  []json.RawMessage `json:"state_events"`
	// StateEventIDs name the events of StateEvents by tuple, so that a
	// builder that only needs their ids need not parse (and hash) them.
	StateEventIDs []StateEventID `json:"state_event_ids,omitempty"`
	// LatestEventHashes are the reference hashes (sha256) of LatestEvents,
	// for room versions 1 and 2 whose events reference others with them.
	LatestEventHashes map[string][]byte `json:"latest_event_hashes,omitempty"`
}

// StateEventID is the id of the state event holding a tuple.
type StateEventID struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
	EventID  string `json:"event_id"`
}

type QueryCurrentStateRequest struct {
	RoomID string          `json:"room_id"`
	Tuples []StateKeyTuple `json:"tuples,omitempty"`
}
type QueryCurrentStateResponse struct {
	RoomVersion string            `json:"room_version"`
	StateEvents []json.RawMessage `json:"state_events"`
}

// InputMessage is the room input log message: one InputRoomEvents request.
// Its key is the room id, so a room's input is processed in order.
type InputMessage struct {
	Request InputRoomEventsRequest `json:"request"`
	// ReplyTo identifies the waiting caller in the processing process; empty
	// for asynchronous input.
	ReplyTo string `json:"reply_to,omitempty"`
}

// InputTopic carries room input, keyed by room id.
var InputTopic = eventlog.Topic[InputMessage]{Name: "roomserver.input"}

// OutputEvent is published for every event the roomserver accepts as a new
// room event, in the order the room's state evolved. The same message may be
// delivered twice; consumers use the event id or (Stream, Seq) to ignore the
// repeat.
type OutputEvent struct {
	RoomID      string          `json:"room_id"`
	RoomVersion string          `json:"room_version"`
	Event       json.RawMessage `json:"event"`
	EventID     string          `json:"event_id"`
	// AddsState and RemovesState are the current-state changes this event
	// caused (event ids); for a linear room, a state event adds itself and
	// removes what it replaced.
	AddsState    []string       `json:"adds_state,omitempty"`
	RemovesState []string       `json:"removes_state,omitempty"`
	TxnID        *TransactionID `json:"txn_id,omitempty"`
	// Rewrite is set when the current state was recomputed (state
	// resolution after a fork): AddsState then lists the whole new state.
	Rewrite bool `json:"rewrite,omitempty"`
	// RedactedEventID is set when this event is an m.room.redaction the
	// roomserver applied (the redaction rules allowed it and the target is
	// stored): the id of the event it redacted.
	RedactedEventID string `json:"redacted_event_id,omitempty"`
	// RedactedEvent is that event after the room version's redaction
	// algorithm, with unsigned.redacted_because set to this redaction:
	// readers replace their copy with it.
	RedactedEvent json.RawMessage `json:"redacted_event,omitempty"`
}

// OutputTopic carries accepted room events, keyed by room id.
var OutputTopic = eventlog.Topic[OutputEvent]{Name: "roomserver.output"}
