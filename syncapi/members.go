package syncapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// API returns the syncapi's internal API.
func (c *Component) API() api.API { return &queryAPI{db: c.db} }

// queryAPI answers from the syncapi's storage: only it knows which room
// state a stream position stands for.
type queryAPI struct{ db *storage.Storage }

// QueryMembersAt implements api.API.
func (q *queryAPI) QueryMembersAt(ctx context.Context, req api.QueryMembersAtRequest) (api.QueryMembersAtResponse, error) {
	var res api.QueryMembersAtResponse
	tok, err := streams.ParseToken(req.At)
	if err != nil {
		return res, apierr.InvalidParam("at is not a sync token of this server")
	}
	r := q.db.DB.Reader()
	cur, err := q.db.Positions.Current(ctx, r, streams.PDU)
	if err != nil {
		return res, fmt.Errorf("current position: %w", err)
	}
	// A token beyond what is stored (a client's stale token after a restore)
	// means "now": the state cannot be older than what exists.
	pos := min(tok.Get(streams.PDU), cur)
	at, err := q.visibleAt(ctx, req.RoomID, req.UserID, pos)
	if err != nil {
		return res, err
	}
	evs, err := q.db.Deltas.StateAt(ctx, r, req.RoomID, at, []string{storage.MemberEvent})
	if err != nil {
		return res, err
	}
	res.Events = make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		res.RoomVersion = e.RoomVersion
		res.Events = append(res.Events, e.JSON)
	}
	return res, nil
}

// visibleAt is the position whose state the user may see for a request at
// pos: pos itself when they were joined then or the room was world_readable,
// their latest leave or ban before pos when they had joined before it (the
// state when they left), M_FORBIDDEN otherwise. The rule is the roomserver's
// QueryStateForUser, moved to a point in the past.
func (q *queryAPI) visibleAt(ctx context.Context, roomID, userID string, pos streams.Position) (streams.Position, error) {
	r := q.db.DB.Reader()
	mem, err := q.db.Deltas.TupleHistory(ctx, r, roomID, storage.Tuple{Type: storage.MemberEvent, StateKey: userID}, pos)
	if err != nil {
		return 0, err
	}
	membership, joined := "", false
	var leftAt streams.Position // the latest leave or ban after a join
	for _, c := range mem {
		membership = c.Membership
		switch c.Membership {
		case "join":
			joined = true
		case "leave", "ban":
			if joined {
				leftAt = c.Position
			}
		}
	}
	if membership == "join" {
		return pos, nil
	}
	hv, err := q.db.Deltas.TupleHistory(ctx, r, roomID, storage.Tuple{Type: "m.room.history_visibility"}, pos)
	if err != nil {
		return 0, err
	}
	if len(hv) > 0 && historyVisibility(hv[len(hv)-1].JSON) == "world_readable" {
		return pos, nil
	}
	if leftAt > 0 {
		return leftAt, nil
	}
	return 0, apierr.Forbidden("%s was not in room %s at that point", userID, roomID)
}

// historyVisibility reads content.history_visibility of a stored event.
func historyVisibility(pduJSON []byte) string {
	var e struct {
		Content struct {
			HistoryVisibility any `json:"history_visibility"`
		} `json:"content"`
	}
	if json.Unmarshal(pduJSON, &e) != nil {
		return ""
	}
	v, _ := e.Content.HistoryVisibility.(string)
	return v
}
