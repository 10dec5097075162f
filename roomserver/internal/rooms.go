package internal

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// room loads a room or answers M_NOT_FOUND.
func (r *Roomserver) room(ctx context.Context, q sqlutil.Querier, roomID string) (storage.Room, error) {
	room, err := r.st.Rooms.Select(ctx, q, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return room, apierr.NotFound("unknown room %s", roomID)
	}
	return room, err
}

// applyRedaction records the redaction red and, when the room's redaction
// rules allow it and the target is stored, replaces the target's JSON with
// its redacted form (rooms/fragments/v3-handling-redactions.md): readers
// from then on get the redacted event. It returns the target's id and
// redacted JSON when it applied the redaction.
func (r *Roomserver) applyRedaction(ctx context.Context, tx *sql.Tx, v *event.RoomVersion, roomNID int64, red *event.PDU, before storage.State) (string, json.RawMessage, error) {
	target := string(red.Redacts())
	if target == "" {
		return "", nil, nil
	}
	rec := storage.Redaction{ID: string(red.EventID()), Redacts: target}
	rows, err := r.st.Events.SelectByIDs(ctx, tx, []string{target})
	if err != nil {
		return "", nil, err
	}
	if len(rows) == 0 || rows[0].RoomNID != roomNID || rows[0].Rejected {
		// Limitation: a redaction whose target arrives later
		// (federation) is kept unvalidated; applying it on arrival comes with
		// federation input.
		return "", nil, r.st.Redacts.Insert(ctx, tx, rec)
	}
	if _, err := r.st.Redacts.ValidatedFor(ctx, tx, target); err == nil {
		// Already redacted: the first redaction stays the one clients see.
		return "", nil, r.st.Redacts.Insert(ctx, tx, rec)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", nil, err
	}
	orig, err := event.ParseStored(rows[0].JSON, v, matrix.EventID(rows[0].EventID))
	if err != nil {
		return "", nil, fmt.Errorf("parse redaction target %s: %w", target, err)
	}
	create, pl, err := r.createAndPowerLevels(ctx, tx, v, before)
	if err != nil {
		return "", nil, err
	}
	if !authrules.RedactionAllowed(red, orig, create, pl) {
		return "", nil, r.st.Redacts.Insert(ctx, tx, rec)
	}
	redacted, err := orig.Redacted()
	if err != nil {
		return "", nil, err
	}
	if redacted, err = redacted.WithUnsigned(map[string]json.RawMessage{"redacted_because": red.JSON()}); err != nil {
		return "", nil, fmt.Errorf("mark %s redacted: %w", target, err)
	}
	if err := r.st.Events.UpdateJSON(ctx, tx, rows[0].NID, redacted.JSON()); err != nil {
		return "", nil, err
	}
	rec.Validated = true
	if err := r.st.Redacts.Insert(ctx, tx, rec); err != nil {
		return "", nil, err
	}
	return target, redacted.JSON(), nil
}

// createAndPowerLevels returns the create and power levels events of a
// state (power levels nil when absent).
func (r *Roomserver) createAndPowerLevels(ctx context.Context, q sqlutil.Querier, v *event.RoomVersion, state storage.State) (create, pl *event.PDU, err error) {
	evs, err := r.stateSubset(ctx, q, state, []storage.Tuple{{Type: event.TypeCreate}, {Type: event.TypePowerLevels}})
	if err != nil {
		return nil, nil, err
	}
	for _, row := range evs {
		e, err := event.ParseStored(row.JSON, v, matrix.EventID(row.EventID))
		if err != nil {
			return nil, nil, fmt.Errorf("parse state event %s: %w", row.EventID, err)
		}
		switch e.Type() {
		case event.TypeCreate:
			create = e
		case event.TypePowerLevels:
			pl = e
		}
	}
	return create, pl, nil
}

// stateSubset loads the events of state for the given tuples.
func (r *Roomserver) stateSubset(ctx context.Context, q sqlutil.Querier, state storage.State, tuples []storage.Tuple) ([]storage.Event, error) {
	nids, err := r.st.StateKeys.Lookup(ctx, q, tuples)
	if err != nil {
		return nil, err
	}
	var eventNIDs []int64
	for _, tn := range nids {
		if en, ok := state[tn]; ok {
			eventNIDs = append(eventNIDs, en)
		}
	}
	return r.st.Events.SelectByNIDs(ctx, q, eventNIDs)
}

// QueryMembership implements api.API.
func (r *Roomserver) QueryMembership(ctx context.Context, req api.QueryMembershipRequest) (api.QueryMembershipResponse, error) {
	var resp api.QueryMembershipResponse
	q := r.st.DB.Reader()
	room, err := r.st.Rooms.Select(ctx, q, req.RoomID)
	if errors.Is(err, storage.ErrNotFound) {
		return resp, nil
	}
	if err != nil {
		return resp, err
	}
	resp.RoomExists, resp.RoomVersion = true, room.Version
	m, err := r.st.Members.Select(ctx, q, room.NID, req.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return resp, nil
	}
	if err != nil {
		return resp, err
	}
	resp.Membership, resp.Forgotten = m.Membership, m.Forgotten
	evs, err := r.st.Events.SelectByNIDs(ctx, q, []int64{m.EventNID})
	if err != nil {
		return resp, err
	}
	if len(evs) == 1 {
		resp.Event = evs[0].JSON
	}
	return resp, nil
}

// QueryRoomsForUser implements api.API.
func (r *Roomserver) QueryRoomsForUser(ctx context.Context, req api.QueryRoomsForUserRequest) (api.QueryRoomsForUserResponse, error) {
	ms, err := r.st.Members.ByUser(ctx, r.st.DB.Reader(), req.UserID, req.Membership)
	if err != nil {
		return api.QueryRoomsForUserResponse{}, err
	}
	resp := api.QueryRoomsForUserResponse{Rooms: make([]api.UserRoom, 0, len(ms))}
	for _, m := range ms {
		resp.Rooms = append(resp.Rooms, api.UserRoom{RoomID: m.RoomID, Membership: m.Membership, Forgotten: m.Forgotten})
	}
	slices.SortFunc(resp.Rooms, func(a, b api.UserRoom) int { return cmp.Compare(a.RoomID, b.RoomID) })
	return resp, nil
}

// QueryStateForUser implements api.API. The rule is the client-server
// API's for GET /rooms/{roomId}/state: members see the current state, those
// who left see it as it was when they left, and anyone may see a
// world_readable room.
func (r *Roomserver) QueryStateForUser(ctx context.Context, req api.QueryStateForUserRequest) (api.QueryStateForUserResponse, error) {
	var resp api.QueryStateForUserResponse
	q := r.st.DB.Reader()
	room, err := r.room(ctx, q, req.RoomID)
	if err != nil {
		return resp, err
	}
	resp.RoomVersion = room.Version
	snapshot := room.SnapshotNID
	m, err := r.st.Members.Select(ctx, q, room.NID, req.UserID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return resp, err
	}
	resp.Membership = m.Membership
	switch m.Membership {
	case api.MembershipJoin:
	case api.MembershipLeave, api.MembershipBan:
		evs, err := r.st.Events.SelectByNIDs(ctx, q, []int64{m.EventNID})
		if err != nil {
			return resp, err
		}
		if len(evs) != 1 {
			return resp, fmt.Errorf("member event %d of %s is missing", m.EventNID, req.RoomID)
		}
		snapshot, resp.Historical = evs[0].SnapshotNID, true
	default:
		readable, err := r.worldReadable(ctx, q, room)
		if err != nil {
			return resp, err
		}
		if !readable {
			return resp, apierr.Forbidden("you are not a member of room %s and were not one before", req.RoomID)
		}
	}
	state, err := r.st.Snapshots.Load(ctx, q, snapshot)
	if err != nil {
		return resp, err
	}
	var rows []storage.Event
	switch {
	case len(req.Tuples) > 0:
		rows, err = r.stateSubset(ctx, q, state, storageTuples(req.Tuples))
	default:
		var tupleNIDs, eventNIDs []int64
		for t, e := range state {
			tupleNIDs, eventNIDs = append(tupleNIDs, t), append(eventNIDs, e)
		}
		if len(req.Types) > 0 {
			tuples, err := r.st.StateKeys.Tuples(ctx, q, tupleNIDs)
			if err != nil {
				return resp, err
			}
			eventNIDs = eventNIDs[:0]
			for t, e := range state {
				if slices.Contains(req.Types, tuples[t].Type) {
					eventNIDs = append(eventNIDs, e)
				}
			}
		}
		rows, err = r.st.Events.SelectByNIDs(ctx, q, eventNIDs)
	}
	if err != nil {
		return resp, err
	}
	resp.StateEvents = make([]json.RawMessage, len(rows))
	for i, e := range rows {
		resp.StateEvents[i] = e.JSON
	}
	return resp, nil
}

// worldReadable reports whether the room's current history visibility is
// world_readable.
func (r *Roomserver) worldReadable(ctx context.Context, q sqlutil.Querier, room storage.Room) (bool, error) {
	c, err := r.currentContents(ctx, q, room, event.TypeHistoryVisibility)
	if err != nil {
		return false, err
	}
	var hv struct {
		V string `json:"history_visibility"`
	}
	_ = json.Unmarshal(c[event.TypeHistoryVisibility], &hv)
	return hv.V == "world_readable", nil
}

// currentContents returns the contents of state events with an empty state
// key in a room's current state, by type.
func (r *Roomserver) currentContents(ctx context.Context, q sqlutil.Querier, room storage.Room, types ...string) (map[string]json.RawMessage, error) {
	state, err := r.st.Snapshots.Load(ctx, q, room.SnapshotNID)
	if err != nil {
		return nil, err
	}
	tuples := make([]storage.Tuple, len(types))
	for i, t := range types {
		tuples[i] = storage.Tuple{Type: t}
	}
	rows, err := r.stateSubset(ctx, q, state, tuples)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(rows))
	for _, row := range rows {
		var e struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(row.JSON, &e); err != nil {
			return nil, fmt.Errorf("decode state event %s: %w", row.EventID, err)
		}
		out[e.Type] = e.Content
	}
	return out, nil
}

// QueryTransaction implements api.API.
func (r *Roomserver) QueryTransaction(ctx context.Context, req api.QueryTransactionRequest) (api.QueryTransactionResponse, error) {
	t := req.Txn
	if t.UserID == "" || t.Scope == "" || t.TransactionID == "" {
		return api.QueryTransactionResponse{}, apierr.InvalidParam("a transaction needs a user, a scope and an id")
	}
	id, err := r.st.Txns.Select(ctx, r.st.DB.Reader(), storage.Txn{UserID: t.UserID, DeviceID: t.DeviceID, Scope: t.Scope, TxnID: t.TransactionID})
	if err != nil {
		return api.QueryTransactionResponse{}, err
	}
	return api.QueryTransactionResponse{EventID: id}, nil
}

// QueryEvents implements api.API.
func (r *Roomserver) QueryEvents(ctx context.Context, req api.QueryEventsRequest) (api.QueryEventsResponse, error) {
	var resp api.QueryEventsResponse
	q := r.st.DB.Reader()
	room, err := r.room(ctx, q, req.RoomID)
	if err != nil {
		return resp, err
	}
	resp.RoomVersion = room.Version
	rows, err := r.st.Events.SelectByIDs(ctx, q, req.EventIDs)
	if err != nil {
		return resp, err
	}
	resp.Events = []json.RawMessage{}
	for _, e := range rows {
		if e.RoomNID == room.NID && !e.Rejected {
			resp.Events = append(resp.Events, e.JSON)
		}
	}
	return resp, nil
}

// PerformForget implements api.API.
func (r *Roomserver) PerformForget(ctx context.Context, req api.PerformForgetRequest) (api.PerformForgetResponse, error) {
	var resp api.PerformForgetResponse
	room, err := r.room(ctx, r.st.DB.Reader(), req.RoomID)
	if err != nil {
		return resp, err
	}
	m, err := r.st.Members.Select(ctx, r.st.DB.Reader(), room.NID, req.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return resp, apierr.NotFound("%s has never been in room %s", req.UserID, req.RoomID)
	}
	if err != nil {
		return resp, err
	}
	switch m.Membership {
	case api.MembershipLeave, api.MembershipBan:
	default:
		return resp, apierr.New(apierr.CodeUnknown, "%s has not left room %s (membership %s)", req.UserID, req.RoomID, m.Membership)
	}
	_, err = r.st.Members.SetForgotten(ctx, r.st.DB, room.NID, req.UserID)
	return resp, err
}

// SetRoomAlias implements api.API.
func (r *Roomserver) SetRoomAlias(ctx context.Context, req api.SetRoomAliasRequest) (api.SetRoomAliasResponse, error) {
	var resp api.SetRoomAliasResponse
	if _, err := r.room(ctx, r.st.DB.Reader(), req.RoomID); err != nil {
		return resp, err
	}
	ok, err := r.st.Aliases.Insert(ctx, r.st.DB, storage.Alias{Alias: req.Alias, RoomID: req.RoomID, Creator: req.UserID})
	if err != nil {
		return resp, err
	}
	if !ok {
		return resp, apierr.WithStatus(http.StatusConflict, apierr.CodeUnknown, "room alias %s already exists", req.Alias)
	}
	return resp, nil
}

// GetRoomAlias implements api.API.
func (r *Roomserver) GetRoomAlias(ctx context.Context, req api.GetRoomAliasRequest) (api.GetRoomAliasResponse, error) {
	a, err := r.st.Aliases.Select(ctx, r.st.DB.Reader(), req.Alias)
	if errors.Is(err, storage.ErrNotFound) {
		return api.GetRoomAliasResponse{}, apierr.NotFound("room alias %s not found", req.Alias)
	}
	return api.GetRoomAliasResponse{RoomID: a.RoomID, Creator: a.Creator}, err
}

// RemoveRoomAlias implements api.API.
func (r *Roomserver) RemoveRoomAlias(ctx context.Context, req api.RemoveRoomAliasRequest) (api.RemoveRoomAliasResponse, error) {
	a, err := r.st.Aliases.Select(ctx, r.st.DB, req.Alias)
	if errors.Is(err, storage.ErrNotFound) {
		return api.RemoveRoomAliasResponse{}, apierr.NotFound("room alias %s not found", req.Alias)
	}
	if err != nil {
		return api.RemoveRoomAliasResponse{}, err
	}
	return api.RemoveRoomAliasResponse{RoomID: a.RoomID}, r.st.Aliases.Delete(ctx, r.st.DB, req.Alias)
}

// QueryAliasesForRoom implements api.API.
func (r *Roomserver) QueryAliasesForRoom(ctx context.Context, req api.QueryAliasesForRoomRequest) (api.QueryAliasesForRoomResponse, error) {
	as, err := r.st.Aliases.ByRoom(ctx, r.st.DB.Reader(), req.RoomID)
	return api.QueryAliasesForRoomResponse{Aliases: as}, err
}

// SetRoomVisibility implements api.API.
func (r *Roomserver) SetRoomVisibility(ctx context.Context, req api.SetRoomVisibilityRequest) (api.SetRoomVisibilityResponse, error) {
	var resp api.SetRoomVisibilityResponse
	if req.Visibility != api.VisibilityPublic && req.Visibility != api.VisibilityPrivate {
		return resp, apierr.BadJSON("visibility must be public or private")
	}
	if _, err := r.room(ctx, r.st.DB.Reader(), req.RoomID); err != nil {
		return resp, err
	}
	return resp, r.st.Published.Set(ctx, r.st.DB, req.RoomID, req.Visibility == api.VisibilityPublic)
}

// QueryRoomVisibility implements api.API.
func (r *Roomserver) QueryRoomVisibility(ctx context.Context, req api.QueryRoomVisibilityRequest) (api.QueryRoomVisibilityResponse, error) {
	q := r.st.DB.Reader()
	if _, err := r.room(ctx, q, req.RoomID); err != nil {
		return api.QueryRoomVisibilityResponse{}, err
	}
	pub, err := r.st.Published.Has(ctx, q, req.RoomID)
	if err != nil {
		return api.QueryRoomVisibilityResponse{}, err
	}
	if pub {
		return api.QueryRoomVisibilityResponse{Visibility: api.VisibilityPublic}, nil
	}
	return api.QueryRoomVisibilityResponse{Visibility: api.VisibilityPrivate}, nil
}

// QueryPublicRooms implements api.API. Batch tokens are offsets into the
// ordered, filtered list ("p" followed by the offset): the list is built on
// every call, so a page boundary can shift when rooms are published or
// members join in between, as any offset directory does.
func (r *Roomserver) QueryPublicRooms(ctx context.Context, req api.QueryPublicRoomsRequest) (api.QueryPublicRoomsResponse, error) {
	resp := api.QueryPublicRoomsResponse{Chunk: []api.PublicRoom{}}
	offset := 0
	if req.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Since, "p"))
		if !strings.HasPrefix(req.Since, "p") || err != nil || n < 0 {
			return resp, apierr.InvalidParam("unknown since token %q", req.Since)
		}
		offset = n
	}
	if req.Limit < 0 {
		return resp, apierr.InvalidParam("limit must not be negative")
	}
	q := r.st.DB.Reader()
	ids, err := r.st.Published.All(ctx, q)
	if err != nil {
		return resp, err
	}
	filter := strings.ToLower(req.Filter)
	var all []api.PublicRoom
	for _, id := range ids {
		pr, err := r.publicRoom(ctx, q, id, req.RoomTypes)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return resp, err
		}
		if filter != "" && !strings.Contains(strings.ToLower(pr.Name), filter) && !strings.Contains(strings.ToLower(pr.Topic), filter) &&
			!strings.Contains(strings.ToLower(pr.CanonicalAlias), filter) && !strings.Contains(strings.ToLower(pr.RoomID), filter) {
			continue
		}
		all = append(all, pr)
	}
	slices.SortFunc(all, func(a, b api.PublicRoom) int {
		if c := cmp.Compare(b.NumJoinedMembers, a.NumJoinedMembers); c != 0 {
			return c
		}
		return cmp.Compare(a.RoomID, b.RoomID)
	})
	resp.Total = len(all)
	if offset > len(all) {
		offset = len(all)
	}
	end := len(all)
	if req.Limit > 0 && offset+req.Limit < end {
		end = offset + req.Limit
		resp.NextBatch = "p" + strconv.Itoa(end)
	}
	if offset > 0 {
		resp.PrevBatch = "p" + strconv.Itoa(max(0, offset-max(req.Limit, 1)))
		if req.Limit == 0 {
			resp.PrevBatch = "p0"
		}
	}
	resp.Chunk = append(resp.Chunk, all[offset:end]...)
	return resp, nil
}

var errSkip = errors.New("skip")

// summaryContent holds the content fields of the state events a directory
// entry shows.
type summaryContent struct {
	Name        string `json:"name"`
	Topic       string `json:"topic"`
	Alias       string `json:"alias"`
	URL         string `json:"url"`
	JoinRule    string `json:"join_rule"`
	HistoryVis  string `json:"history_visibility"`
	GuestAccess string `json:"guest_access"`
	Type        string `json:"type"`
}

// publicRoom summarises a room for the directory; errSkip when the room is
// gone or not of the wanted types.
func (r *Roomserver) publicRoom(ctx context.Context, q sqlutil.Querier, roomID string, types []string) (api.PublicRoom, error) {
	pr := api.PublicRoom{RoomID: roomID}
	room, err := r.st.Rooms.Select(ctx, q, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return pr, errSkip
	}
	if err != nil {
		return pr, err
	}
	c, err := r.currentContents(ctx, q, room, event.TypeCreate, "m.room.name", "m.room.topic", "m.room.canonical_alias",
		"m.room.avatar", event.TypeJoinRules, event.TypeHistoryVisibility, "m.room.guest_access")
	if err != nil {
		return pr, err
	}
	var v summaryContent
	get := func(typ string) {
		v = summaryContent{}
		_ = json.Unmarshal(c[typ], &v) // malformed content counts as absent
	}
	get(event.TypeCreate)
	pr.RoomType = v.Type
	if len(types) > 0 && !slices.Contains(types, pr.RoomType) {
		return pr, errSkip
	}
	get("m.room.name")
	pr.Name = v.Name
	get("m.room.topic")
	pr.Topic = v.Topic
	get("m.room.canonical_alias")
	pr.CanonicalAlias = v.Alias
	get("m.room.avatar")
	pr.AvatarURL = v.URL
	get(event.TypeJoinRules)
	pr.JoinRule = v.JoinRule
	get(event.TypeHistoryVisibility)
	pr.WorldReadable = v.HistoryVis == "world_readable"
	get("m.room.guest_access")
	pr.GuestCanJoin = v.GuestAccess == "can_join"
	if pr.NumJoinedMembers, err = r.st.Members.CountJoined(ctx, q, room.NID); err != nil {
		return pr, err
	}
	return pr, nil
}

// PerformReport implements api.API.
func (r *Roomserver) PerformReport(ctx context.Context, req api.PerformReportRequest) (api.PerformReportResponse, error) {
	if _, err := r.room(ctx, r.st.DB.Reader(), req.RoomID); err != nil {
		return api.PerformReportResponse{}, err
	}
	_, err := r.st.Reports.Insert(ctx, r.st.DB, storage.Report{RoomID: req.RoomID, EventID: req.EventID, ReporterID: req.ReporterID,
		Reason: req.Reason, Score: req.Score, ReceivedTS: time.Now().UnixMilli()})
	return api.PerformReportResponse{}, err
}
