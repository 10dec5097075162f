package routing

import (
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerReport(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/report/{eventId}", rt.authed(rt.reportEvent))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/report", rt.authed(rt.reportRoom))
}

type reportBody struct {
	Reason *string `json:"reason"`
	// Score was removed in v1.18; older clients still send it.
	Score *int64 `json:"score"`
}

// reportEvent is POST /rooms/{roomId}/report/{eventId}: only a joined
// member may report, and an event that is not there (or a room the
// reporter is not in) is 404 M_NOT_FOUND.
func (rt *Routes) reportEvent(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	eventID, err := matrix.ParseEventID(r.PathValue("eventId"))
	if err != nil {
		return apierr.InvalidParam("invalid event id: %v", err)
	}
	var body reportBody
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	m, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: dev.UserID})
	if err != nil {
		return err
	}
	if m.Membership != rsapi.MembershipJoin {
		return apierr.NotFound("the event was not found or you are not joined to the room")
	}
	found, err := rt.rs.QueryEvents(ctx, rsapi.QueryEventsRequest{RoomID: string(roomID), EventIDs: []string{string(eventID)}})
	if err != nil {
		return err
	}
	if len(found.Events) == 0 {
		return apierr.NotFound("the event was not found or you are not joined to the room")
	}
	req := rsapi.PerformReportRequest{RoomID: string(roomID), EventID: string(eventID), ReporterID: dev.UserID}
	if body.Reason != nil {
		req.Reason = *body.Reason
	}
	if body.Score != nil {
		req.Score = *body.Score
	}
	if _, err := rt.rs.PerformReport(ctx, req); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// reportRoom is POST /rooms/{roomId}/report; reason is required (it may be
// empty).
func (rt *Routes) reportRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	var body reportBody
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.Reason == nil {
		return apierr.New(apierr.CodeMissingParam, "reason is required")
	}
	if _, err := rt.rs.PerformReport(r.Context(), rsapi.PerformReportRequest{RoomID: string(roomID), ReporterID: dev.UserID,
		Reason: *body.Reason}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}
