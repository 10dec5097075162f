package routing

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// guestRoute is the route of r as the guest list keys it
// (httputil.GuestRoute); the profile and join rules below switch on it.
func guestRoute(r *http.Request) string { return httputil.GuestRoute(r.Pattern) }

// guestGate refuses a guest what the guest access module does not allow:
// routes outside the list, profile fields but the display name, and joins
// of rooms whose m.room.guest_access is not can_join.
func (rt *Routes) guestGate(r *http.Request, dev userapi.Device) error {
	if dev.AccountType != userapi.AccountGuest {
		return nil
	}
	if !httputil.GuestAllowed(r.Pattern) {
		return apierr.New(apierr.CodeGuestAccessForbided, "guests cannot use this endpoint")
	}
	switch guestRoute(r) {
	case "PUT /profile/{userId}/{keyName}", "DELETE /profile/{userId}/{keyName}":
		if r.PathValue("keyName") != "displayname" {
			return apierr.New(apierr.CodeGuestAccessForbided, "guests may only change their display name")
		}
	case "POST /rooms/{roomId}/join", "POST /join/{roomIdOrAlias}":
		s := r.PathValue("roomId")
		if s == "" {
			s = r.PathValue("roomIdOrAlias")
		}
		roomID, err := rt.resolveRoom(r.Context(), s)
		if err != nil {
			return err
		}
		return rt.guestsCanJoin(r.Context(), roomID)
	}
	return nil
}

// typeGuestAccess is the state event that lets guests join a room.
const typeGuestAccess = "m.room.guest_access"

// guestsCanJoin is the spec's rule: guests join only rooms whose
// m.room.guest_access state has guest_access can_join.
func (rt *Routes) guestsCanJoin(ctx context.Context, roomID matrix.RoomID) error {
	cur, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{
		RoomID: string(roomID), Tuples: []rsapi.StateKeyTuple{{Type: typeGuestAccess, StateKey: ""}}})
	if err != nil {
		return err
	}
	for _, raw := range cur.StateEvents {
		var ev struct {
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &ev) == nil && isCanJoin(ev.Content) {
			return nil
		}
	}
	return apierr.New(apierr.CodeGuestAccessForbided, "guests cannot join this room")
}

// isCanJoin reports whether an m.room.guest_access content lets guests join.
func isCanJoin(content json.RawMessage) bool {
	var c struct {
		GuestAccess any `json:"guest_access"`
	}
	return json.Unmarshal(content, &c) == nil && c.GuestAccess == "can_join"
}

// removeGuests is the guest access module's "If the m.room.guest_access
// event is changed to stop this from being the case, the server MUST set
// those users' m.room.member state to leave": every joined guest of this
// server leaves the room, unless the room's current guest access is
// can_join (again). Callers run it after a change of the room's
// m.room.guest_access state (PUT state, its redaction); createRoom's
// initial_state and room upgrades need no call, as the new room's only
// member is its creator, never a guest (guests can create no room).
//
// This server signs for its own users, so each leave is the guest's own.
// The change that led here succeeded: a failed leave is logged, not
// returned to its sender.
func (rt *Routes) removeGuests(ctx context.Context, roomID matrix.RoomID) {
	// The leaves must happen even if the client that changed the state
	// goes away.
	ctx = context.WithoutCancel(ctx)
	log := rt.log.With("room_id", roomID)
	cur, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{RoomID: string(roomID)})
	if err != nil {
		log.WarnContext(ctx, "guest access withdrawn, but the room state is unreadable: guests stay", "err", err)
		return
	}
	var joined []string
	for _, raw := range cur.StateEvents {
		var ev struct {
			Type     string          `json:"type"`
			StateKey *string         `json:"state_key"`
			Content  json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &ev) != nil || ev.StateKey == nil {
			continue
		}
		switch ev.Type {
		case typeGuestAccess:
			if *ev.StateKey == "" && isCanJoin(ev.Content) {
				return // allowed again since: nobody has to leave
			}
		case event.TypeMember:
			var c struct {
				Membership string `json:"membership"`
			}
			if json.Unmarshal(ev.Content, &c) != nil || c.Membership != rsapi.MembershipJoin {
				continue
			}
			// Other servers' users may be guests there, which this
			// server cannot know (the module leaves them to their server).
			if uid, err := matrix.ParseUserID(*ev.StateKey); err == nil && uid.Server() == rt.cfg.ServerName {
				joined = append(joined, *ev.StateKey)
			}
		}
	}
	if len(joined) == 0 {
		return
	}
	types, err := rt.users.QueryAccountTypes(ctx, userapi.QueryAccountTypesRequest{UserIDs: joined})
	if err != nil {
		log.WarnContext(ctx, "guest access withdrawn, but account types are unknown: guests stay", "err", err)
		return
	}
	for _, userID := range joined {
		if types.AccountTypes[userID] != userapi.AccountGuest {
			continue
		}
		dev := userapi.Device{UserID: userID, AccountType: userapi.AccountGuest}
		if _, err := rt.sendMember(ctx, dev, roomID, userID, map[string]any{"membership": rsapi.MembershipLeave}); err != nil {
			log.WarnContext(ctx, "guest not made to leave after guest access was withdrawn", "user_id", userID, "err", err)
		}
	}
}

// registerGuest is POST /register?kind=guest: an account of kind guest,
// with a random localpart and no password, logged in at once, without
// user-interactive auth.
func (rt *Routes) registerGuest(w http.ResponseWriter, r *http.Request) error {
	if !rt.cfg.GuestAccess {
		return apierr.New(apierr.CodeGuestAccessForbided, "guest access is disabled on this server")
	}
	var req registerRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	acc, err := rt.users.CreateAccount(r.Context(), userapi.CreateAccountRequest{Localpart: randomLocalpart(), AccountType: userapi.AccountGuest})
	if err != nil {
		return err
	}
	// The spec: every field but initial_device_display_name is ignored, and
	// the server picks the device id. (A guest has no password, so this
	// device is its only way in.)
	return rt.registered(w, r, acc.UserID, registerRequest{InitialDeviceDisplayName: req.InitialDeviceDisplayName})
}

// upgradableGuest checks a registration that upgrades a guest (POST
// /register with guest_access_token) and returns the guest's user id.
//
// The guest access module: guests "upgrade their account by going through
// the ordinary register flow, but specifying the additional POST parameter
// guest_access_token containing the guest's access token. They are also
// required to specify the username parameter to the value of the local
// part of their username". So the upgraded account keeps the guest's user
// id (as Synapse does), and a username that is missing or names someone
// else is refused rather than turned into another account. The rest of
// the flow (user-interactive auth, registration tokens) is the ordinary
// one.
func (rt *Routes) upgradableGuest(ctx context.Context, token, username, localpart string) (string, error) {
	res, err := rt.users.QueryAccessToken(ctx, userapi.QueryAccessTokenRequest{AccessToken: token})
	if apierr.HasCode(err, apierr.CodeUnknownToken) || (err == nil && res.Device.AccountType != userapi.AccountGuest) {
		return "", apierr.Forbidden("guest_access_token is not the access token of a guest")
	}
	if err != nil {
		return "", err
	}
	if username == "" {
		return "", apierr.New(apierr.CodeMissingParam, "upgrading a guest needs username: the guest's localpart")
	}
	if string(matrix.NewUserID(localpart, rt.cfg.ServerName)) != res.Device.UserID {
		return "", apierr.New(apierr.CodeInvalidUsername, "username must be the guest's own localpart")
	}
	return res.Device.UserID, nil
}
