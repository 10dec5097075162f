// Package internal implements the roomserver API: room input (through the
// log, in order per room), state storage and the queries that event builders
// need. It knows nothing of HTTP.
package internal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	waiters  sync.Map // reply id → chan inputResult
	heads    *headCache
	authEvs  *authEventCache
	// headHits counts input events stored on the cached head
	// (cachedHead), for tests.
	headHits atomic.Int64
	// nids numbers pipelined events (storePipelined, PostgreSQL).
	nids      *nidPool
	pipelined atomic.Int64 // batches storePipelined stored, for tests
}

// New returns the roomserver implementation.
func New(st *storage.Storage, log eventlog.Log, logger *slog.Logger, auth AuthChecker) *Roomserver {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Roomserver{st: st, log: log, logger: logger, auth: auth, instance: hex.EncodeToString(b[:]), heads: newHeadCache(),
		authEvs: newAuthEventCache(), nids: &nidPool{st: st}}
}

var _ api.API = (*Roomserver)(nil)

// ForgetCached drops what the roomserver cached from committed rows (heads,
// auth events, reserved event numbers, snapshots and state keys): the
// commits may have been lost (sqlutil.DeferredCommits calls it). What an
// input batch of the ended epoch would cache after this is fenced off
// (HandleInput). A read that began before the crash and fills the cache
// after this could bring a lost row back; the crash, the recovery and the
// next write that notices it take far longer than such a read.
func (r *Roomserver) ForgetCached() {
	r.heads.clear()
	r.authEvs.clear()
	r.nids.reset()
	r.st.ForgetCached()
}

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
	ch := make(chan inputResult, 1)
	r.waiters.Store(id, ch)
	defer r.waiters.Delete(id)
	if _, err := eventlog.Publish(ctx, r.log, api.InputTopic, req.RoomID, api.InputMessage{Request: req, ReplyTo: id}); err != nil {
		return api.InputRoomEventsResponse{}, fmt.Errorf("publish room input for %s: %w", req.RoomID, err)
	}
	timer := time.NewTimer(inputTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		return api.InputRoomEventsResponse{TxnEvents: res.txnEvents}, res.err
	case <-ctx.Done():
		return api.InputRoomEventsResponse{}, ctx.Err()
	case <-timer.C:
		return api.InputRoomEventsResponse{}, fmt.Errorf("room input for %s not processed within %s", req.RoomID, inputTimeout)
	}
}

// inputResult is what the input consumer answers a waiting caller.
type inputResult struct {
	err       error
	txnEvents map[string]string // see api.InputRoomEventsResponse
}

// reply hands a processing result to the waiting caller, if it is here.
func (r *Roomserver) reply(id string, res inputResult) {
	if id == "" {
		return
	}
	if ch, ok := r.waiters.Load(id); ok {
		select {
		case ch.(chan inputResult) <- res:
		default:
		}
	}
}

// QueryLatestEventsAndState implements api.API. It answers from the head
// cache (head.go) when that has the room and the tuples, and fills it from
// committed rows otherwise.
func (r *Roomserver) QueryLatestEventsAndState(ctx context.Context, req api.QueryLatestEventsAndStateRequest) (api.QueryLatestEventsAndStateResponse, error) {
	want := storageTuples(req.StateToFetch)
	resp, hit, miss := r.heads.lookup(req.RoomID, want)
	if hit {
		return resp, nil
	}
	q := r.st.DB.Reader()
	if miss.head != nil {
		// The head is known, some of the state is not: it is read from the
		// head's snapshot, which never changes.
		state, _, err := r.readState(ctx, q, miss.head.room.SnapshotNID, miss.missing, nil)
		if err != nil {
			return resp, err
		}
		r.heads.addState(req.RoomID, miss.e, state)
		maps.Copy(miss.have, state)
		return miss.head.response(want, miss.have), nil
	}
	head, err := r.readHead(ctx, q, req.RoomID, want)
	if err != nil {
		r.heads.drop(req.RoomID, miss.e)
		if errors.Is(err, storage.ErrNotFound) {
			return api.QueryLatestEventsAndStateResponse{}, nil
		}
		return resp, err
	}
	r.heads.fill(req.RoomID, miss.e, head)
	return head.response(want, head.state), nil
}

// readHead reads a room's head and the state events of tuples in it from
// q; storage.ErrNotFound for an unknown room.
func (r *Roomserver) readHead(ctx context.Context, q sqlutil.Querier, roomID string, tuples []storage.Tuple) (*headEntry, error) {
	room, err := r.st.Rooms.Select(ctx, q, roomID)
	if err != nil {
		return nil, err
	}
	h := &headEntry{filled: true, room: room}
	// The latest events and the state events in one query (a round trip
	// fewer on PostgreSQL); an event may be both.
	var latest []storage.Event
	if h.state, latest, err = r.readState(ctx, q, room.SnapshotNID, tuples, room.LatestEvents); err != nil {
		return nil, err
	}
	v, _ := event.Version(room.Version)
	for _, nid := range room.LatestEvents {
		i := slices.IndexFunc(latest, func(e storage.Event) bool { return e.NID == nid })
		if i < 0 {
			continue
		}
		e := latest[i]
		h.latestIDs = append(h.latestIDs, e.EventID)
		h.latestSnaps = append(h.latestSnaps, e.SnapshotNID)
		if v != nil && v.EventIDInJSON() {
			hash, err := event.ReferenceHash(e.JSON, v)
			if err != nil {
				return nil, fmt.Errorf("reference hash of %s: %w", e.EventID, err)
			}
			if h.hashes == nil {
				h.hashes = map[string][]byte{}
			}
			h.hashes[e.EventID] = hash
		}
	}
	return h, nil
}

// readState reads the state events of tuples in a snapshot, a zero
// stateEvent for each tuple the snapshot lacks, and in the same query the
// events extra.
func (r *Roomserver) readState(ctx context.Context, q sqlutil.Querier, snapshot int64, tuples []storage.Tuple, extra []int64) (map[storage.Tuple]stateEvent, []storage.Event, error) {
	nids, tupleOf, err := r.stateNIDs(ctx, q, snapshot, tuples)
	if err != nil {
		return nil, nil, err
	}
	rows, err := r.st.Events.SelectByNIDs(ctx, q, append(slices.Clone(extra), nids...))
	if err != nil {
		return nil, nil, err
	}
	state := make(map[storage.Tuple]stateEvent, len(tuples))
	for _, t := range tuples {
		state[t] = stateEvent{}
	}
	var extraRows []storage.Event
	for _, e := range rows {
		if t, ok := tupleOf[e.NID]; ok {
			state[t] = stateEvent{id: e.EventID, json: e.JSON}
		}
		if slices.Contains(extra, e.NID) {
			extraRows = append(extraRows, e)
		}
	}
	return state, extraRows, nil
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
	nids, _, err := r.stateNIDs(ctx, r.st.DB.Reader(), snapshot, storageTuples(tuples))
	if err != nil {
		return nil, err
	}
	return r.eventJSON(ctx, nids)
}

// stateNIDs returns the nids of the events holding the tuples in a
// snapshot, and the tuple of each.
func (r *Roomserver) stateNIDs(ctx context.Context, q sqlutil.Querier, snapshot int64, tuples []storage.Tuple) ([]int64, map[int64]storage.Tuple, error) {
	if len(tuples) == 0 || snapshot == 0 {
		return nil, nil, nil
	}
	state, err := r.st.Snapshots.Load(ctx, q, snapshot)
	if err != nil {
		return nil, nil, err
	}
	nids, err := r.st.StateKeys.Lookup(ctx, q, tuples)
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

// storageTuples are the API's (type, state key) pairs as storage names them.
func storageTuples(ts []api.StateKeyTuple) []storage.Tuple {
	out := make([]storage.Tuple, len(ts))
	for i, t := range ts {
		out[i] = storage.Tuple{Type: t.Type, StateKey: t.StateKey}
	}
	return out
}
