package routing

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// registerRoomArea adds the rooms area: membership, state, redactions,
// aliases, the public room directory, upgrades and reports.
func (rt *Routes) registerRoomArea(mux *http.ServeMux) {
	rt.registerMembership(mux)
	rt.registerState(mux)
	rt.registerRedaction(mux)
	rt.registerAliases(mux)
	rt.registerDirectory(mux)
	rt.registerUpgrade(mux)
	rt.registerReport(mux)
}

func (rt *Routes) registerMembership(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/join", rt.authed(rt.joinRoomByID))
	mux.HandleFunc("POST "+v3+"/join/{roomIdOrAlias}", rt.authed(rt.joinRoom))
	mux.HandleFunc("POST "+v3+"/knock/{roomIdOrAlias}", rt.authed(rt.knockRoom))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/leave", rt.authed(rt.leaveRoom))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/forget", rt.authed(rt.forgetRoom))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/invite", rt.authed(rt.membershipOf(rsapi.MembershipInvite)))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/kick", rt.authed(rt.membershipOf("kick")))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/ban", rt.authed(rt.membershipOf(rsapi.MembershipBan)))
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/unban", rt.authed(rt.membershipOf("unban")))
}

// reasonBody is the body of join, knock and leave.
type reasonBody struct {
	Reason           *string         `json:"reason"`
	ThirdPartySigned json.RawMessage `json:"third_party_signed"`
}

// targetBody is the body of invite, kick, ban and unban.
type targetBody struct {
	UserID *string `json:"user_id"`
	Reason *string `json:"reason"`
	// Third-party invites (id_server, medium, address) share /invite.
	IDServer *string `json:"id_server"`
	Medium   *string `json:"medium"`
	Address  *string `json:"address"`
}

func pathRoomID(r *http.Request) (matrix.RoomID, error) {
	id, err := matrix.ParseRoomID(r.PathValue("roomId"))
	if err != nil {
		return "", apierr.InvalidParam("invalid room id: %v", err)
	}
	return id, nil
}

// resolveRoom turns a room ID or alias into a room ID. Aliases of other
// servers need federation, which this server does not speak yet: they are
// answered like unknown aliases.
func (rt *Routes) resolveRoom(ctx context.Context, s string) (matrix.RoomID, error) {
	if strings.HasPrefix(s, "#") {
		alias, err := matrix.ParseRoomAlias(s)
		if err != nil {
			return "", apierr.InvalidParam("invalid room alias: %v", err)
		}
		if alias.Server() != rt.cfg.ServerName {
			return "", apierr.NotFound("room alias %s is on another server, and this server cannot ask it yet", alias)
		}
		res, err := rt.rs.GetRoomAlias(ctx, rsapi.GetRoomAliasRequest{Alias: string(alias)})
		if err != nil {
			return "", err
		}
		return matrix.RoomID(res.RoomID), nil
	}
	id, err := matrix.ParseRoomID(s)
	if err != nil {
		return "", apierr.InvalidParam("invalid room id or alias %q: %v", s, err)
	}
	return id, nil
}

// knownRoom checks that this server has the room. A room it does not have
// would need a join over federation, which it cannot do yet: that is the
// spec's 404 for a room no known server can join us to.
func (rt *Routes) knownRoom(ctx context.Context, roomID matrix.RoomID, userID string) (rsapi.QueryMembershipResponse, error) {
	m, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: userID})
	if err != nil {
		return m, err
	}
	if !m.RoomExists {
		return m, apierr.NotFound("no known servers for room %s", roomID)
	}
	return m, nil
}

func (rt *Routes) joinRoomByID(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	return rt.join(w, r, dev, roomID, rsapi.MembershipJoin)
}

func (rt *Routes) joinRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := rt.resolveRoom(r.Context(), r.PathValue("roomIdOrAlias"))
	if err != nil {
		return err
	}
	return rt.join(w, r, dev, roomID, rsapi.MembershipJoin)
}

func (rt *Routes) knockRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := rt.resolveRoom(r.Context(), r.PathValue("roomIdOrAlias"))
	if err != nil {
		return err
	}
	return rt.join(w, r, dev, roomID, rsapi.MembershipKnock)
}

// join is a join or a knock of the requesting user.
func (rt *Routes) join(w http.ResponseWriter, r *http.Request, dev userapi.Device, roomID matrix.RoomID, membership string) error {
	ctx := r.Context()
	var body reasonBody
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if len(body.ThirdPartySigned) > 0 && string(body.ThirdPartySigned) != "null" {
		return unrecognized("third-party invites are not supported by this server yet")
	}
	m, err := rt.knownRoom(ctx, roomID, dev.UserID)
	if err != nil {
		return err
	}
	if membership == rsapi.MembershipJoin && m.Membership == rsapi.MembershipJoin {
		// Already joined: nothing changes (the spec allows join → join for profile changes only).
		return httputil.JSON(w, map[string]string{"room_id": string(roomID)})
	}
	if membership == rsapi.MembershipKnock {
		if v, ok := event.Version(m.RoomVersion); ok && !v.Knocking {
			return apierr.Forbidden("room version %s does not support knocking", m.RoomVersion)
		}
	}
	content, err := rt.ownMemberContent(ctx, dev.UserID, membership, body.Reason)
	if err != nil {
		return err
	}
	if membership == rsapi.MembershipJoin && m.Membership != rsapi.MembershipInvite {
		// A restricted room lets members of its allowed rooms in, vouched
		// for by a local user who could have invited them.
		via, err := rt.restrictedAuthoriser(ctx, roomID, dev.UserID)
		if err != nil {
			return err
		}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	if _, err := rt.sendMember(ctx, dev, roomID, dev.UserID, content); err != nil {
		return err
	}
	if dev.AccountType == userapi.AccountGuest && membership == rsapi.MembershipJoin {
		// guestGate checked can_join before the join; a withdrawal that
		// raced it may have swept the members before the join landed.
		// Checking again after it closes the gap: of the two, the later
		// to commit sees the other.
		if err := rt.guestsCanJoin(ctx, roomID); err != nil {
			rt.removeGuests(ctx, roomID)
			return err
		}
	}
	return httputil.JSON(w, map[string]string{"room_id": string(roomID)})
}

// ownMemberContent is the content of a member event about the sender, with
// their profile.
func (rt *Routes) ownMemberContent(ctx context.Context, userID, membership string, reason *string) (map[string]any, error) {
	content := map[string]any{"membership": membership}
	p, err := rt.users.QueryProfile(ctx, userapi.QueryProfileRequest{UserID: userID})
	if err != nil && !apierr.HasCode(err, apierr.CodeNotFound) {
		return nil, err
	}
	if p.DisplayName != "" {
		content["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		content["avatar_url"] = p.AvatarURL
	}
	if reason != nil {
		content["reason"] = *reason
	}
	return content, nil
}

// sendMember builds, signs and submits an m.room.member event; the
// roomserver's auth rules decide, and a refusal is 403 M_FORBIDDEN with
// their reason.
func (rt *Routes) sendMember(ctx context.Context, dev userapi.Device, roomID matrix.RoomID, target string, content map[string]any) (*event.PDU, error) {
	return rt.sendEvent(ctx, event.Proto{Type: event.TypeMember, StateKey: strp(target), Sender: matrix.UserID(dev.UserID),
		RoomID: roomID, Content: content})
}

// sendEvent builds p against the room's current state and submits it.
func (rt *Routes) sendEvent(ctx context.Context, p event.Proto) (*event.PDU, error) {
	e, _, err := rt.sendInRoom(ctx, p, nil)
	return e, err
}

func (rt *Routes) leaveRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	var body reasonBody
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	m, err := rt.knownRoom(ctx, roomID, dev.UserID)
	if err != nil {
		return err
	}
	switch m.Membership {
	case rsapi.MembershipLeave:
		return httputil.JSON(w, struct{}{}) // already left: leaving again changes nothing
	case "":
		return apierr.Forbidden("%s is not in room %s", dev.UserID, roomID)
	}
	content := map[string]any{"membership": rsapi.MembershipLeave}
	if body.Reason != nil {
		content["reason"] = *body.Reason
	}
	if _, err := rt.sendMember(ctx, dev, roomID, dev.UserID, content); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) forgetRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	if _, err := rt.rs.PerformForget(r.Context(), rsapi.PerformForgetRequest{RoomID: string(roomID), UserID: dev.UserID}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// membershipOf handles invite, kick, ban and unban: the sender changes
// another user's membership.
func (rt *Routes) membershipOf(action string) func(http.ResponseWriter, *http.Request, userapi.Device) error {
	return func(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
		ctx := r.Context()
		roomID, err := pathRoomID(r)
		if err != nil {
			return err
		}
		var body targetBody
		if err := httputil.DecodeJSON(r, &body); err != nil {
			return err
		}
		if action == rsapi.MembershipInvite && body.UserID == nil && (body.IDServer != nil || body.Medium != nil || body.Address != nil) {
			return unrecognized("third-party invites are not supported by this server yet")
		}
		if body.UserID == nil {
			return apierr.New(apierr.CodeMissingParam, "user_id is required")
		}
		target, err := matrix.ParseUserID(*body.UserID)
		if err != nil {
			return apierr.InvalidParam("invalid user_id: %v", err)
		}
		if _, err := rt.knownRoom(ctx, roomID, dev.UserID); err != nil {
			return err
		}
		cur, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: string(target)})
		if err != nil {
			return err
		}
		membership := action
		switch action {
		case "kick":
			membership = rsapi.MembershipLeave
			switch cur.Membership {
			case rsapi.MembershipJoin, rsapi.MembershipInvite, rsapi.MembershipKnock:
			default:
				return apierr.Forbidden("%s is not in room %s", target, roomID)
			}
		case "unban":
			membership = rsapi.MembershipLeave
			if cur.Membership != rsapi.MembershipBan {
				return apierr.Forbidden("%s is not banned from room %s", target, roomID)
			}
		case rsapi.MembershipInvite:
			if target.Server() != rt.cfg.ServerName {
				return apierr.Forbidden("inviting %s needs federation, which this server does not speak yet", target)
			}
			switch cur.Membership {
			case rsapi.MembershipJoin:
				return apierr.Forbidden("%s is already in room %s", target, roomID)
			case rsapi.MembershipBan:
				return apierr.Forbidden("%s is banned from room %s", target, roomID)
			case rsapi.MembershipInvite:
				return httputil.JSON(w, struct{}{}) // invited already
			}
		}
		content := map[string]any{"membership": membership}
		if action == rsapi.MembershipInvite && target.Server() == rt.cfg.ServerName {
			// The invitee's profile lets their client show who is invited.
			if p, err := rt.users.QueryProfile(ctx, userapi.QueryProfileRequest{UserID: string(target)}); err == nil {
				if p.DisplayName != "" {
					content["displayname"] = p.DisplayName
				}
				if p.AvatarURL != "" {
					content["avatar_url"] = p.AvatarURL
				}
			}
		}
		if body.Reason != nil {
			content["reason"] = *body.Reason
		}
		if _, err := rt.sendMember(ctx, dev, roomID, string(target), content); err != nil {
			return err
		}
		return httputil.JSON(w, struct{}{})
	}
}
