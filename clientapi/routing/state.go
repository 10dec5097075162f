package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerState(mux *http.ServeMux) {
	// {stateKey...} also matches the empty key after a trailing slash.
	mux.HandleFunc("PUT "+v3+"/rooms/{roomId}/state/{eventType}", rt.authed(rt.putState))
	mux.HandleFunc("PUT "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", rt.authed(rt.putState))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/state/{eventType}", rt.authed(rt.getStateEvent))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", rt.authed(rt.getStateEvent))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/state", rt.authed(rt.getState))
	mux.HandleFunc("GET "+v3+"/joined_rooms", rt.authed(rt.listJoinedRooms))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/members", rt.authed(rt.members))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/joined_members", rt.authed(rt.joinedMembers))
}

func pathEventType(r *http.Request) (string, error) {
	t := r.PathValue("eventType")
	if t == "" || len(t) > 255 {
		return "", apierr.InvalidParam("invalid event type")
	}
	return t, nil
}

// putState is PUT /rooms/{roomId}/state/{eventType}/{stateKey}.
func (rt *Routes) putState(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	evType, err := pathEventType(r)
	if err != nil {
		return err
	}
	stateKey := r.PathValue("stateKey")
	var content map[string]json.RawMessage
	if err := httputil.DecodeJSON(r, &content); err != nil {
		return err
	}
	if content == nil {
		return apierr.BadJSON("content must be an object")
	}
	if evType == "m.room.canonical_alias" && stateKey == "" {
		if err := rt.checkCanonicalAlias(ctx, roomID, content); err != nil {
			return err
		}
	}
	if _, err := rt.knownRoom(ctx, roomID, dev.UserID); err != nil {
		return err
	}
	e, err := rt.sendEvent(ctx, event.Proto{Type: evType, StateKey: &stateKey, Sender: matrix.UserID(dev.UserID), RoomID: roomID, Content: content})
	if err != nil {
		return err
	}
	if evType == typeGuestAccess && stateKey == "" && !isCanJoin(e.Content()) {
		rt.removeGuests(ctx, roomID)
	}
	return httputil.JSON(w, map[string]string{"event_id": string(e.EventID())})
}

// checkCanonicalAlias applies the m.room.canonical_alias rules (spec
// m.room.canonical_alias, PUT state 400): every alias must be valid
// (M_INVALID_PARAM) and point at this room (M_BAD_ALIAS). Aliases of other
// servers cannot be checked without federation and are refused.
func (rt *Routes) checkCanonicalAlias(ctx context.Context, roomID matrix.RoomID, content map[string]json.RawMessage) error {
	var aliases []string
	if raw, ok := content["alias"]; ok && string(raw) != "null" {
		var a string
		if json.Unmarshal(raw, &a) != nil {
			return apierr.BadJSON("alias must be a string")
		}
		aliases = append(aliases, a)
	}
	if raw, ok := content["alt_aliases"]; ok && string(raw) != "null" {
		var alt []string
		if json.Unmarshal(raw, &alt) != nil {
			return apierr.BadJSON("alt_aliases must be an array of strings")
		}
		aliases = append(aliases, alt...)
	}
	for _, s := range aliases {
		a, err := matrix.ParseRoomAlias(s)
		if err != nil {
			return apierr.InvalidParam("invalid alias %q: %v", s, err)
		}
		if a.Server() != rt.cfg.ServerName {
			return apierr.New("M_BAD_ALIAS", "alias %s is on another server and cannot be checked", s)
		}
		res, err := rt.rs.GetRoomAlias(ctx, rsapi.GetRoomAliasRequest{Alias: s})
		if apierr.HasCode(err, apierr.CodeNotFound) || (err == nil && res.RoomID != string(roomID)) {
			return apierr.New("M_BAD_ALIAS", "alias %s does not point to room %s", s, roomID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// getStateEvent is GET /rooms/{roomId}/state/{eventType}/{stateKey}.
func (rt *Routes) getStateEvent(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	evType, err := pathEventType(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "content" && format != "event" {
		return apierr.InvalidParam("format must be content or event")
	}
	res, err := rt.rs.QueryStateForUser(r.Context(), rsapi.QueryStateForUserRequest{RoomID: string(roomID), UserID: dev.UserID,
		Tuples: []rsapi.StateKeyTuple{{Type: evType, StateKey: r.PathValue("stateKey")}}})
	if err != nil {
		return err
	}
	if len(res.StateEvents) == 0 {
		return apierr.NotFound("room %s has no state %s with key %q", roomID, evType, r.PathValue("stateKey"))
	}
	ce, err := clientEvent(res.StateEvents[0], res.RoomVersion)
	if err != nil {
		return err
	}
	if format == "event" {
		return httputil.JSON(w, ce)
	}
	return httputil.JSON(w, ce["content"])
}

// getState is GET /rooms/{roomId}/state.
func (rt *Routes) getState(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	res, err := rt.rs.QueryStateForUser(r.Context(), rsapi.QueryStateForUserRequest{RoomID: string(roomID), UserID: dev.UserID})
	if err != nil {
		return err
	}
	evs, err := clientEvents(res.StateEvents, res.RoomVersion)
	if err != nil {
		return err
	}
	return httputil.JSON(w, evs)
}

// listJoinedRooms is GET /joined_rooms.
func (rt *Routes) listJoinedRooms(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.rs.QueryRoomsForUser(r.Context(), rsapi.QueryRoomsForUserRequest{UserID: dev.UserID, Membership: rsapi.MembershipJoin})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(res.Rooms))
	for _, room := range res.Rooms {
		ids = append(ids, room.RoomID)
	}
	return httputil.JSON(w, map[string][]string{"joined_rooms": ids})
}

var memberships = []string{rsapi.MembershipJoin, rsapi.MembershipInvite, rsapi.MembershipKnock, rsapi.MembershipLeave, rsapi.MembershipBan}

// WithSyncAPI sets the syncapi, which maps sync tokens to room state.
func (rt *Routes) WithSyncAPI(s syncapi.API) *Routes {
	rt.sync = s
	return rt
}

// members is GET /rooms/{roomId}/members. Without `at` the roomserver
// answers (current state, or the state when the user left); with it, the
// syncapi, the only one that knows which state a sync token stands for.
func (rt *Routes) members(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	at, hasAt := q["at"]
	if hasAt && !isSyncToken(at[0]) {
		return apierr.InvalidParam("at is not a sync token of this server")
	}
	want, notWant := q.Get("membership"), q.Get("not_membership")
	if (want != "" && !slices.Contains(memberships, want)) || (notWant != "" && !slices.Contains(memberships, notWant)) {
		return apierr.InvalidParam("membership and not_membership must be one of %s", strings.Join(memberships, ", "))
	}
	var res rsapi.QueryStateForUserResponse
	if hasAt && rt.sync != nil {
		s, err := rt.sync.QueryMembersAt(r.Context(), syncapi.QueryMembersAtRequest{RoomID: string(roomID), UserID: dev.UserID, At: at[0]})
		if err != nil {
			return err
		}
		res.RoomVersion, res.StateEvents = s.RoomVersion, s.Events
	} else if res, err = rt.rs.QueryStateForUser(r.Context(), rsapi.QueryStateForUserRequest{RoomID: string(roomID), UserID: dev.UserID,
		Types: []string{event.TypeMember}}); err != nil {
		return err
	}
	chunk := make([]map[string]json.RawMessage, 0, len(res.StateEvents))
	for _, raw := range res.StateEvents {
		ce, err := clientEvent(raw, res.RoomVersion)
		if err != nil {
			return err
		}
		var c struct {
			Membership string `json:"membership"`
		}
		_ = json.Unmarshal(ce["content"], &c)
		// Both filters given: membership is want OR is not notWant (spec).
		keep := true
		switch {
		case want != "" && notWant != "":
			keep = c.Membership == want || c.Membership != notWant
		case want != "":
			keep = c.Membership == want
		case notWant != "":
			keep = c.Membership != notWant
		}
		if keep {
			chunk = append(chunk, ce)
		}
	}
	return httputil.JSON(w, map[string]any{"chunk": chunk})
}

// joinedMembers is GET /rooms/{roomId}/joined_members: only for members of
// the room (or anyone in a world_readable room).
func (rt *Routes) joinedMembers(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	res, err := rt.rs.QueryStateForUser(r.Context(), rsapi.QueryStateForUserRequest{RoomID: string(roomID), UserID: dev.UserID,
		Types: []string{event.TypeMember}})
	if err != nil {
		return err
	}
	if res.Historical {
		return apierr.Forbidden("you are not in room %s", roomID)
	}
	type member struct {
		DisplayName *string `json:"display_name"`
		AvatarURL   *string `json:"avatar_url"`
	}
	joined := map[string]member{}
	for _, raw := range res.StateEvents {
		var e struct {
			StateKey string `json:"state_key"`
			Content  struct {
				Membership  string  `json:"membership"`
				DisplayName *string `json:"displayname"`
				AvatarURL   *string `json:"avatar_url"`
			} `json:"content"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Content.Membership != rsapi.MembershipJoin {
			continue
		}
		joined[e.StateKey] = member{DisplayName: e.Content.DisplayName, AvatarURL: e.Content.AvatarURL}
	}
	// "The current user must be in the room for it to work", even in a
	// world_readable room whose state anyone may read.
	if _, ok := joined[dev.UserID]; !ok {
		return apierr.Forbidden("you are not in room %s", roomID)
	}
	return httputil.JSON(w, map[string]any{"joined": joined})
}

// clientEventKeys are the PDU keys of the client event format
// (ClientEvent); the federation-only ones are dropped.
var clientEventKeys = []string{"content", "origin_server_ts", "sender", "state_key", "type", "redacts", "room_id", "unsigned"}

// clientEvent renders a PDU in the client format, with its event id (which
// room versions 3 and later do not carry in the JSON).
func clientEvent(raw json.RawMessage, roomVersion string) (map[string]json.RawMessage, error) {
	v, ok := event.Version(roomVersion)
	if !ok {
		return nil, fmt.Errorf("room version %q is unknown", roomVersion)
	}
	pdu, err := event.Parse(raw, v)
	if err != nil {
		return nil, fmt.Errorf("parse stored event: %w", err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", pdu.EventID(), err)
	}
	out := make(map[string]json.RawMessage, len(clientEventKeys)+1)
	for _, k := range clientEventKeys {
		if val, ok := all[k]; ok {
			out[k] = val
		}
	}
	if _, ok := out["content"]; !ok {
		out["content"] = json.RawMessage(`{}`)
	}
	if out["event_id"], err = json.Marshal(pdu.EventID()); err != nil {
		return nil, err
	}
	if red, ok := out["unsigned"]; ok {
		out["unsigned"] = clientUnsigned(red, v)
	}
	return out, nil
}

// clientUnsigned renders unsigned for clients: a redacted_because held as a
// PDU becomes a client event.
func clientUnsigned(raw json.RawMessage, v *event.RoomVersion) json.RawMessage {
	var u map[string]json.RawMessage
	if json.Unmarshal(raw, &u) != nil {
		return json.RawMessage(`{}`)
	}
	delete(u, "age_ts")
	if rb, ok := u["redacted_because"]; ok {
		if ce, err := clientEvent(rb, v.ID); err == nil {
			if b, err := json.Marshal(ce); err == nil {
				u["redacted_because"] = b
			}
		}
	}
	b, err := json.Marshal(u)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

func clientEvents(raws []json.RawMessage, roomVersion string) ([]map[string]json.RawMessage, error) {
	out := make([]map[string]json.RawMessage, 0, len(raws))
	for _, raw := range raws {
		ce, err := clientEvent(raw, roomVersion)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

// maxSyncTokenLen bounds the `at` token; the syncapi's tokens (s followed by
// "_"-separated decimal positions, one per stream) are far shorter.
const maxSyncTokenLen = 32 * 19

// isSyncToken reports whether s has the form of the syncapi's stream tokens:
// "s", then one or more "_"-separated runs of at most 18 decimal digits.
func isSyncToken(s string) bool {
	if len(s) < 2 || len(s) > maxSyncTokenLen || s[0] != 's' {
		return false
	}
	run := 0
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if run++; run > 18 {
				return false
			}
		case c == '_' && run > 0:
			run = 0
		default:
			return false
		}
	}
	return run > 0
}
