// Package internal implements the roomserver API: room input (through the
// log, in order per room), state storage and the queries that event builders
// need. It knows nothing of HTTP.
package internal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// inputTimeout bounds how long InputRoomEvents waits for its input to be
// processed; past it the input may still be applied later.
const inputTimeout = 60 * time.Second

// AuthChecker checks an event against the auth rules given the auth events
// selected from the state before it.
type AuthChecker func(e *event.PDU, authEvents []*event.PDU) error

// Roomserver implements api.API.
type Roomserver struct {
	st       *storage.Storage
	log      eventlog.Log
	logger   *slog.Logger
	auth     AuthChecker
	instance string
	next     atomic.Uint64
	waiters  sync.Map // reply id → chan error
}

// New returns the roomserver implementation.
func New(st *storage.Storage, log eventlog.Log, logger *slog.Logger, auth AuthChecker) *Roomserver {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Roomserver{st: st, log: log, logger: logger, auth: auth, instance: hex.EncodeToString(b[:])}
}

var _ api.API = (*Roomserver)(nil)

// InputRoomEvents publishes the request on the room input log and waits for
// this process' input consumer to report the result.
//
// NOTSPEC-free design note: the waiter is process-local, so the process
// serving the call must also consume the room's input. With one roomserver
// process (or one per room partition) that holds.
func (r *Roomserver) InputRoomEvents(ctx context.Context, req api.InputRoomEventsRequest) (api.InputRoomEventsResponse, error) {
	if req.RoomID == "" || len(req.Events) == 0 {
		return api.InputRoomEventsResponse{}, apierr.BadJSON("input needs a room id and events")
	}
	id := fmt.Sprintf("%s.%d", r.instance, r.next.Add(1))
	ch := make(chan error, 1)
	r.waiters.Store(id, ch)
	defer r.waiters.Delete(id)
	if _, err := eventlog.Publish(ctx, r.log, api.InputTopic, req.RoomID, api.InputMessage{Request: req, ReplyTo: id}); err != nil {
		return api.InputRoomEventsResponse{}, fmt.Errorf("publish room input for %s: %w", req.RoomID, err)
	}
	timer := time.NewTimer(inputTimeout)
	defer timer.Stop()
	select {
	case err := <-ch:
		return api.InputRoomEventsResponse{}, err
	case <-ctx.Done():
		return api.InputRoomEventsResponse{}, ctx.Err()
	case <-timer.C:
		return api.InputRoomEventsResponse{}, fmt.Errorf("room input for %s not processed within %s", req.RoomID, inputTimeout)
	}
}

// reply hands a processing result to the waiting caller, if it is here.
func (r *Roomserver) reply(id string, err error) {
	if id == "" {
		return
	}
	if ch, ok := r.waiters.Load(id); ok {
		select {
		case ch.(chan error) <- err:
		default:
		}
	}
}

// QueryLatestEventsAndState implements api.API.
func (r *Roomserver) QueryLatestEventsAndState(ctx context.Context, req api.QueryLatestEventsAndStateRequest) (api.QueryLatestEventsAndStateResponse, error) {
	var resp api.QueryLatestEventsAndStateResponse
	q := r.st.DB.Reader()
	room, err := r.st.Rooms.Select(ctx, q, req.RoomID)
	if err == storage.ErrNotFound {
		return resp, nil
	}
	if err != nil {
		return resp, err
	}
	resp.RoomExists, resp.RoomVersion, resp.Depth = true, room.Version, room.Depth
	// The latest events and the state events in one query (a round trip
	// fewer per send on PostgreSQL); an event may be both.
	stateNIDs, tupleOf, err := r.stateNIDs(ctx, q, room.SnapshotNID, req.StateToFetch)
	if err != nil {
		return resp, err
	}
	isLatest := make(map[int64]bool, len(room.LatestEvents))
	for _, n := range room.LatestEvents {
		isLatest[n] = true
	}
	rows, err := r.st.Events.SelectByNIDs(ctx, q, append(slices.Clone(room.LatestEvents), stateNIDs...))
	if err != nil {
		return resp, err
	}
	v, _ := event.Version(room.Version)
	for _, e := range rows {
		if tu, ok := tupleOf[e.NID]; ok {
			resp.StateEvents = append(resp.StateEvents, e.JSON)
			resp.StateEventIDs = append(resp.StateEventIDs, api.StateEventID{Type: tu.Type, StateKey: tu.StateKey, EventID: e.EventID})
		}
		if !isLatest[e.NID] {
			continue
		}
		resp.LatestEvents = append(resp.LatestEvents, e.EventID)
		if v != nil && v.EventIDInJSON() {
			h, err := event.ReferenceHash(e.JSON, v)
			if err != nil {
				return resp, fmt.Errorf("reference hash of %s: %w", e.EventID, err)
			}
			if resp.LatestEventHashes == nil {
				resp.LatestEventHashes = map[string][]byte{}
			}
			resp.LatestEventHashes[e.EventID] = h
		}
	}
	return resp, nil
}

// QueryCurrentState implements api.API.
func (r *Roomserver) QueryCurrentState(ctx context.Context, req api.QueryCurrentStateRequest) (api.QueryCurrentStateResponse, error) {
	var resp api.QueryCurrentStateResponse
	room, err := r.st.Rooms.Select(ctx, r.st.DB.Reader(), req.RoomID)
	if err == storage.ErrNotFound {
		return resp, apierr.NotFound("unknown room %s", req.RoomID)
	}
	if err != nil {
		return resp, err
	}
	resp.RoomVersion = room.Version
	if len(req.Tuples) == 0 {
		resp.StateEvents, err = r.allState(ctx, room.SnapshotNID)
	} else {
		resp.StateEvents, err = r.stateEvents(ctx, room.SnapshotNID, req.Tuples)
	}
	return resp, err
}

func (r *Roomserver) stateEvents(ctx context.Context, snapshot int64, tuples []api.StateKeyTuple) ([]json.RawMessage, error) {
	nids, _, err := r.stateNIDs(ctx, r.st.DB.Reader(), snapshot, tuples)
	if err != nil {
		return nil, err
	}
	return r.eventJSON(ctx, nids)
}

// stateNIDs returns the nids of the events holding the tuples in a
// snapshot, and the tuple of each.
func (r *Roomserver) stateNIDs(ctx context.Context, q sqlutil.Querier, snapshot int64, tuples []api.StateKeyTuple) ([]int64, map[int64]storage.Tuple, error) {
	if len(tuples) == 0 || snapshot == 0 {
		return nil, nil, nil
	}
	state, err := r.st.Snapshots.Load(ctx, q, snapshot)
	if err != nil {
		return nil, nil, err
	}
	want := make([]storage.Tuple, len(tuples))
	for i, t := range tuples {
		want[i] = storage.Tuple{Type: t.Type, StateKey: t.StateKey}
	}
	nids, err := r.st.StateKeys.Lookup(ctx, q, want)
	if err != nil {
		return nil, nil, err
	}
	var eventNIDs []int64
	tupleOf := make(map[int64]storage.Tuple, len(nids))
	for tu, tn := range nids {
		if en, ok := state[tn]; ok {
			eventNIDs = append(eventNIDs, en)
			tupleOf[en] = tu
		}
	}
	return eventNIDs, tupleOf, nil
}

func (r *Roomserver) allState(ctx context.Context, snapshot int64) ([]json.RawMessage, error) {
	if snapshot == 0 {
		return nil, nil
	}
	state, err := r.st.Snapshots.Load(ctx, r.st.DB.Reader(), snapshot)
	if err != nil {
		return nil, err
	}
	nids := make([]int64, 0, len(state))
	for _, en := range state {
		nids = append(nids, en)
	}
	return r.eventJSON(ctx, nids)
}

func (r *Roomserver) eventJSON(ctx context.Context, nids []int64) ([]json.RawMessage, error) {
	evs, err := r.st.Events.SelectByNIDs(ctx, r.st.DB.Reader(), nids)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		out[i] = e.JSON
	}
	return out, nil
}
