package routing

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerRedaction(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+v3+"/rooms/{roomId}/redact/{eventId}/{txnId}", rt.authed(rt.redact))
}

// redact is PUT /rooms/{roomId}/redact/{eventId}/{txnId}. The sender must
// be allowed to redact the event (its sender, or the redact power level);
// a repeated transaction id returns the first redaction.
func (rt *Routes) redact(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	target, err := matrix.ParseEventID(r.PathValue("eventId"))
	if err != nil {
		return apierr.InvalidParam("invalid event id: %v", err)
	}
	var body struct {
		Reason *string `json:"reason"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	txn := rsapi.TransactionID{UserID: dev.UserID, DeviceID: dev.DeviceID, Scope: "redact:" + string(roomID), TransactionID: r.PathValue("txnId")}
	unlock, err := rt.startTxn(ctx, txn)
	if err != nil {
		return err
	}
	defer unlock()
	// Looked up first here: the checks below answer before the roomserver
	// could, and a retry must get the first request's event even if the
	// sender may no longer redact (redactions are rare; sends skip this).
	if prior, err := rt.rs.QueryTransaction(ctx, rsapi.QueryTransactionRequest{Txn: txn}); err != nil {
		return err
	} else if prior.EventID != "" {
		return httputil.JSON(w, map[string]string{"event_id": prior.EventID})
	}

	if _, err := rt.knownRoom(ctx, roomID, dev.UserID); err != nil {
		return err
	}
	found, err := rt.rs.QueryEvents(ctx, rsapi.QueryEventsRequest{RoomID: string(roomID), EventIDs: []string{string(target)}})
	if err != nil {
		return err
	}
	if len(found.Events) == 0 {
		return apierr.NotFound("event %s is not in room %s", target, roomID)
	}
	v, ok := event.Version(found.RoomVersion)
	if !ok {
		return apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", found.RoomVersion)
	}
	orig, err := event.Parse(found.Events[0], v)
	if err != nil {
		return err
	}
	content := map[string]any{}
	if body.Reason != nil {
		content["reason"] = *body.Reason
	}
	create, pl, err := rt.createAndPowerLevels(r, roomID)
	if err != nil {
		return err
	}
	// Own events may always be redacted; others' need the redact level
	// (client-server API, "Redactions": the server-level rule in
	// RedactionAllowed is for events arriving over federation).
	sender := matrix.UserID(dev.UserID)
	if orig.Sender() != sender && authrules.PowerLevel(sender, create, pl) < redactLevel(pl) {
		return apierr.Forbidden("you may not redact event %s: it was sent by someone else and your power level is below redact", target)
	}
	// Its turn in the room ends before removeGuests sends there again.
	red, res, err := rt.sendInRoom(ctx, event.Proto{Type: event.TypeRedaction, Sender: sender, RoomID: roomID,
		Redacts: target, Content: content}, &txn)
	if err != nil {
		return err
	}
	if orig.Type() == typeGuestAccess && orig.StateKeyEquals("") {
		// Redacting the guest access event strips its guest_access:
		// removeGuests checks what the current state says now.
		rt.removeGuests(ctx, roomID)
	}
	return httputil.JSON(w, map[string]json.RawMessage{"event_id": mustJSON(txnEvent(res, string(red.EventID())))})
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// redactLevel is the power levels' redact level, 50 by default; a
// malformed value counts as absent.
func redactLevel(pl *event.PDU) int64 {
	if pl == nil {
		return 50
	}
	var c struct {
		Redact json.RawMessage `json:"redact"`
	}
	if json.Unmarshal(pl.Content(), &c) != nil || len(c.Redact) == 0 {
		return 50
	}
	var n int64
	if json.Unmarshal(c.Redact, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(c.Redact, &s) == nil {
		// Room versions before 10 allow levels as strings.
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return v
		}
	}
	return 50
}
