package routing

import (
	"context"
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerAliases(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+v3+"/directory/room/{roomAlias}", rt.authed(rt.putAlias))
	mux.HandleFunc("GET "+v3+"/directory/room/{roomAlias}", rt.a.H(rt.getAlias))
	mux.HandleFunc("DELETE "+v3+"/directory/room/{roomAlias}", rt.authed(rt.deleteAlias))
	mux.HandleFunc("GET "+v3+"/rooms/{roomId}/aliases", rt.authed(rt.roomAliases))
}

// localAlias parses the path's alias; M_INVALID_PARAM if it is malformed,
// and, when own is set, if it belongs to another server (aliases are only
// created and deleted on their own server).
func (rt *Routes) localAlias(r *http.Request, own bool) (matrix.RoomAlias, error) {
	a, err := matrix.ParseRoomAlias(r.PathValue("roomAlias"))
	if err != nil {
		return "", apierr.InvalidParam("invalid room alias: %v", err)
	}
	if own && a.Server() != rt.cfg.ServerName {
		return "", apierr.InvalidParam("room alias %s is not on this server", a)
	}
	return a, nil
}

// putAlias is PUT /directory/room/{roomAlias}: any member of the room may
// add an alias for it.
func (rt *Routes) putAlias(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	alias, err := rt.localAlias(r, true)
	if err != nil {
		return err
	}
	var body struct {
		RoomID *string `json:"room_id"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.RoomID == nil {
		return apierr.BadJSON("room_id is required")
	}
	roomID, err := matrix.ParseRoomID(*body.RoomID)
	if err != nil {
		return apierr.InvalidParam("invalid room_id: %v", err)
	}
	if err := rt.createAlias(r, dev, alias, roomID); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// createAlias points alias at roomID for a member of the room.
func (rt *Routes) createAlias(r *http.Request, dev userapi.Device, alias matrix.RoomAlias, roomID matrix.RoomID) error {
	ctx := r.Context()
	m, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: dev.UserID})
	if err != nil {
		return err
	}
	if !m.RoomExists {
		return apierr.NotFound("unknown room %s", roomID)
	}
	if m.Membership != rsapi.MembershipJoin {
		return apierr.Forbidden("you are not in room %s", roomID)
	}
	_, err = rt.rs.SetRoomAlias(ctx, rsapi.SetRoomAliasRequest{Alias: string(alias), RoomID: string(roomID), UserID: dev.UserID})
	return err
}

// getAlias is GET /directory/room/{roomAlias} (no authentication). Aliases
// of other servers would need a federation query, which this server cannot
// make yet: they are not found.
func (rt *Routes) getAlias(w http.ResponseWriter, r *http.Request) error {
	alias, err := rt.localAlias(r, false)
	if err != nil {
		return err
	}
	if alias.Server() != rt.cfg.ServerName {
		return apierr.NotFound("room alias %s is on another server, and this server cannot ask it yet", alias)
	}
	res, err := rt.rs.GetRoomAlias(r.Context(), rsapi.GetRoomAliasRequest{Alias: string(alias)})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]any{"room_id": res.RoomID, "servers": []string{string(rt.cfg.ServerName)}})
}

// deleteAlias is DELETE /directory/room/{roomAlias}: the alias' creator, a
// server admin, or a member with power to send m.room.canonical_alias may
// remove it.
func (rt *Routes) deleteAlias(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	alias, err := rt.localAlias(r, true)
	if err != nil {
		return err
	}
	res, err := rt.rs.GetRoomAlias(ctx, rsapi.GetRoomAliasRequest{Alias: string(alias)})
	if err != nil {
		return err
	}
	if res.Creator != dev.UserID {
		ok, err := rt.mayChangeState(r, dev.UserID, matrix.RoomID(res.RoomID), "m.room.canonical_alias")
		if err != nil {
			return err
		}
		if !ok {
			return apierr.Forbidden("you did not create alias %s and may not change the room's canonical alias", alias)
		}
	}
	if _, err := rt.rs.RemoveRoomAlias(ctx, rsapi.RemoveRoomAliasRequest{Alias: string(alias)}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// mayChangeState reports whether a joined user has the power to send the
// state event type in a room.
func (rt *Routes) mayChangeState(r *http.Request, userID string, roomID matrix.RoomID, evType string) (bool, error) {
	ctx := r.Context()
	m, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: userID})
	if err != nil || m.Membership != rsapi.MembershipJoin {
		return false, err
	}
	create, pl, err := rt.createAndPowerLevels(r, roomID)
	if err != nil {
		return false, err
	}
	return authrules.PowerLevel(matrix.UserID(userID), create, pl) >= authrules.RequiredPowerLevel(evType, true, pl), nil
}

// createAndPowerLevels loads a room's create and power levels events.
func (rt *Routes) createAndPowerLevels(r *http.Request, roomID matrix.RoomID) (create, pl *event.PDU, err error) {
	state, err := rt.rs.QueryCurrentState(r.Context(), rsapi.QueryCurrentStateRequest{RoomID: string(roomID),
		Tuples: []rsapi.StateKeyTuple{{Type: event.TypeCreate}, {Type: event.TypePowerLevels}}})
	if err != nil {
		return nil, nil, err
	}
	v, ok := event.Version(state.RoomVersion)
	if !ok {
		return nil, nil, apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", state.RoomVersion)
	}
	for _, raw := range state.StateEvents {
		e, err := event.Parse(raw, v)
		if err != nil {
			return nil, nil, err
		}
		if e.Type() == event.TypeCreate {
			create = e
		} else {
			pl = e
		}
	}
	return create, pl, nil
}

// roomAliases is GET /rooms/{roomId}/aliases: for members, or anyone when
// the room is world_readable.
func (rt *Routes) roomAliases(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	st, err := rt.rs.QueryStateForUser(r.Context(), rsapi.QueryStateForUserRequest{RoomID: string(roomID), UserID: dev.UserID,
		Tuples: []rsapi.StateKeyTuple{{Type: event.TypeCreate}}})
	if err != nil {
		return err
	}
	if st.Historical {
		return apierr.Forbidden("you are not in room %s", roomID)
	}
	res, err := rt.rs.QueryAliasesForRoom(r.Context(), rsapi.QueryAliasesForRoomRequest{RoomID: string(roomID)})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string][]string{"aliases": res.Aliases})
}

// newRoomAlias checks createRoom's room_alias_name: a valid localpart whose
// alias on this server is free (M_INVALID_PARAM, 400 M_ROOM_IN_USE).
func (rt *Routes) newRoomAlias(ctx context.Context, name string) (matrix.RoomAlias, error) {
	if strings.ContainsAny(name, ":# \t\n") {
		return "", apierr.InvalidParam("room_alias_name must be the alias' localpart")
	}
	alias, err := matrix.ParseRoomAlias("#" + name + ":" + string(rt.cfg.ServerName))
	if err != nil {
		return "", apierr.InvalidParam("invalid room_alias_name: %v", err)
	}
	_, err = rt.rs.GetRoomAlias(ctx, rsapi.GetRoomAliasRequest{Alias: string(alias)})
	switch {
	case err == nil:
		return "", apierr.New(apierr.CodeRoomInUse, "room alias %s already exists", alias)
	case !apierr.HasCode(err, apierr.CodeNotFound):
		return "", err
	}
	return alias, nil
}

// publishNewRoom records a new room's alias and directory visibility
// (createRoom room_alias_name and visibility). The alias was free when the
// request was checked; one taken meanwhile is M_ROOM_IN_USE.
func (rt *Routes) publishNewRoom(ctx context.Context, dev userapi.Device, roomID matrix.RoomID, alias matrix.RoomAlias, visibility string) error {
	if alias != "" {
		_, err := rt.rs.SetRoomAlias(ctx, rsapi.SetRoomAliasRequest{Alias: string(alias), RoomID: string(roomID), UserID: dev.UserID})
		if e, ok := apierr.As(err); ok && e.Code == apierr.CodeUnknown {
			return apierr.New(apierr.CodeRoomInUse, "room alias %s already exists", alias)
		}
		if err != nil {
			return err
		}
	}
	if visibility == rsapi.VisibilityPublic {
		if _, err := rt.rs.SetRoomVisibility(ctx, rsapi.SetRoomVisibilityRequest{RoomID: string(roomID), Visibility: visibility}); err != nil {
			return err
		}
	}
	return nil
}
