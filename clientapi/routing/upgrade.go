package routing

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerUpgrade(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/rooms/{roomId}/upgrade", rt.authed(rt.upgradeRoom))
}

// transferredState is the state copied into a replacement room (room
// upgrades, "Server behaviour" step 3: the recommended list).
var transferredState = []string{"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.guest_access", event.TypeHistoryVisibility, event.TypeJoinRules}

// upgradeRoom is POST /rooms/{roomId}/upgrade, in the spec's steps: check
// the power to send m.room.tombstone, create the replacement room with
// predecessor and the old room's type, copy transferable state and power
// levels, move local aliases and directory listing, tombstone the old room
// and restrict its power levels.
func (rt *Routes) upgradeRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	oldID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	var body struct {
		NewVersion         *string  `json:"new_version"`
		AdditionalCreators []string `json:"additional_creators"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.NewVersion == nil {
		return apierr.BadJSON("new_version is required")
	}
	v, ok := event.Version(*body.NewVersion)
	if !ok {
		return apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", *body.NewVersion)
	}
	var extraCreators []string
	for _, s := range body.AdditionalCreators {
		if _, err := matrix.ParseUserID(s); err != nil {
			return apierr.InvalidParam("invalid user id in additional_creators: %q", s)
		}
		if s != dev.UserID && !slices.Contains(extraCreators, s) {
			extraCreators = append(extraCreators, s)
		}
	}
	m, err := rt.knownRoom(ctx, oldID, dev.UserID)
	if err != nil {
		return err
	}
	// The old room's create and power levels decide both the tombstone (step
	// 1) and whether the upgrader may restrict the old room (step 6).
	sender := matrix.UserID(dev.UserID)
	oldCreate, oldPL, err := rt.createAndPowerLevels(r, oldID)
	if err != nil {
		return err
	}
	if m.Membership != rsapi.MembershipJoin ||
		authrules.PowerLevel(sender, oldCreate, oldPL) < authrules.RequiredPowerLevel("m.room.tombstone", true, oldPL) {
		return apierr.Forbidden("you may not send m.room.tombstone in room %s", oldID)
	}

	want := []rsapi.StateKeyTuple{{Type: event.TypeCreate}, {Type: event.TypePowerLevels}, {Type: "m.room.canonical_alias"}}
	for _, t := range transferredState {
		want = append(want, rsapi.StateKeyTuple{Type: t})
	}
	old, err := rt.rs.QueryLatestEventsAndState(ctx, rsapi.QueryLatestEventsAndStateRequest{RoomID: string(oldID), StateToFetch: want})
	if err != nil {
		return err
	}
	contents := map[string]map[string]any{}
	for _, raw := range old.StateEvents {
		var e struct {
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Content != nil {
			contents[e.Type] = e.Content
		}
	}

	// 2. The create event: predecessor, room version, the old room's type.
	create := map[string]any{"room_version": v.ID}
	pred := map[string]any{"room_id": string(oldID)}
	if len(old.LatestEvents) > 0 {
		pred["event_id"] = old.LatestEvents[0]
	}
	create["predecessor"] = pred
	for _, k := range []string{"type", "m.federate"} {
		if val, ok := contents[event.TypeCreate][k]; ok {
			create[k] = val
		}
	}
	if v.CreateRequiresCreator {
		create["creator"] = dev.UserID
	}
	creators := []string{dev.UserID}
	if v.PrivilegedCreators && len(extraCreators) > 0 {
		create["additional_creators"] = extraCreators
		creators = append(creators, extraCreators...)
	}
	var newID matrix.RoomID
	if !v.RoomIDFromCreate {
		newID = matrix.RoomID("!" + randomID(18) + ":" + string(rt.cfg.ServerName))
	}
	chain := rt.builder.NewChain(v, newID)
	steps := []event.Proto{{Type: event.TypeCreate, StateKey: strp(""), Content: create}}
	member, err := rt.ownMemberContent(ctx, dev.UserID, rsapi.MembershipJoin, nil)
	if err != nil {
		return err
	}
	steps = append(steps, event.Proto{Type: event.TypeMember, StateKey: strp(dev.UserID), Content: member})

	// 3. Power levels, then the transferable state.
	pl := contents[event.TypePowerLevels]
	if pl == nil {
		pl = map[string]any{}
	}
	users, _ := pl["users"].(map[string]any)
	users = maps.Clone(users)
	if users == nil {
		users = map[string]any{}
	}
	if v.PrivilegedCreators {
		// Creators have infinite power in room v12 and must not be listed.
		for _, c := range creators {
			delete(users, c)
		}
	} else if lvl, _ := users[dev.UserID].(float64); lvl < maxLevel(pl) {
		// The upgrader keeps full control: a level for every event the old
		// room's power levels name (room v12 creators had it unlisted).
		users[dev.UserID] = maxLevel(pl)
	}
	newPL := maps.Clone(pl)
	newPL["users"] = users
	steps = append(steps, event.Proto{Type: event.TypePowerLevels, StateKey: strp(""), Content: newPL})
	for _, t := range transferredState {
		if c, ok := contents[t]; ok {
			steps = append(steps, event.Proto{Type: t, StateKey: strp(""), Content: c})
		}
	}
	if c, ok := contents["m.room.canonical_alias"]; ok {
		steps = append(steps, event.Proto{Type: "m.room.canonical_alias", StateKey: strp(""), Content: c})
	}
	for _, p := range steps {
		p.Sender = matrix.UserID(dev.UserID)
		if _, err := chain.Add(p); err != nil {
			return err
		}
	}
	if _, err := rt.rs.InputRoomEvents(ctx, chain.Input()); err != nil {
		if e, ok := apierr.As(err); ok && e.Code == apierr.CodeForbidden {
			return apierr.New(apierr.CodeInvalidRoomState, "the replacement room's state is not allowed: %s", e.Msg)
		}
		return err
	}
	newID = chain.RoomID

	// 4. Local aliases and the directory listing move to the new room.
	aliases, err := rt.rs.QueryAliasesForRoom(ctx, rsapi.QueryAliasesForRoomRequest{RoomID: string(oldID)})
	if err != nil {
		return err
	}
	for _, a := range aliases.Aliases {
		res, err := rt.rs.GetRoomAlias(ctx, rsapi.GetRoomAliasRequest{Alias: a})
		if err != nil {
			return err
		}
		if _, err := rt.rs.RemoveRoomAlias(ctx, rsapi.RemoveRoomAliasRequest{Alias: a}); err != nil {
			return err
		}
		if _, err := rt.rs.SetRoomAlias(ctx, rsapi.SetRoomAliasRequest{Alias: a, RoomID: string(newID), UserID: res.Creator}); err != nil {
			return err
		}
	}
	vis, err := rt.rs.QueryRoomVisibility(ctx, rsapi.QueryRoomVisibilityRequest{RoomID: string(oldID)})
	if err != nil {
		return err
	}
	if vis.Visibility == rsapi.VisibilityPublic {
		for room, v := range map[matrix.RoomID]string{newID: rsapi.VisibilityPublic, oldID: rsapi.VisibilityPrivate} {
			if _, err := rt.rs.SetRoomVisibility(ctx, rsapi.SetRoomVisibilityRequest{RoomID: string(room), Visibility: v}); err != nil {
				return err
			}
		}
	}

	// 5. The tombstone.
	if _, err := rt.sendEvent(ctx, event.Proto{Type: "m.room.tombstone", StateKey: strp(""), Sender: sender, RoomID: oldID,
		Content: map[string]string{"body": "This room has been replaced", "replacement_room": string(newID)}}); err != nil {
		return err
	}
	// 6. Restrict the old room, where the upgrader may: sending and inviting
	// need more than an ordinary user has.
	if authrules.PowerLevel(sender, oldCreate, oldPL) >= authrules.RequiredPowerLevel(event.TypePowerLevels, true, oldPL) {
		restricted := maps.Clone(pl)
		usersDefault, _ := pl["users_default"].(float64)
		level := max(50, usersDefault+1)
		restricted["events_default"], restricted["invite"] = level, level
		if _, err := rt.sendEvent(ctx, event.Proto{Type: event.TypePowerLevels, StateKey: strp(""), Sender: sender, RoomID: oldID,
			Content: restricted}); err != nil {
			rt.log.WarnContext(ctx, "could not restrict the upgraded room", "room_id", oldID, "err", err)
		}
	}
	return httputil.JSON(w, map[string]string{"replacement_room": string(newID)})
}

// maxLevel is the greatest level power levels content requires for
// anything, and at least 100.
func maxLevel(pl map[string]any) float64 {
	m := 100.0
	for _, k := range []string{"ban", "kick", "redact", "invite", "state_default", "events_default"} {
		if n, ok := pl[k].(float64); ok {
			m = max(m, n)
		}
	}
	if evs, ok := pl["events"].(map[string]any); ok {
		for _, val := range evs {
			if n, ok := val.(float64); ok {
				m = max(m, n)
			}
		}
	}
	return m
}
