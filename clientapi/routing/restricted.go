package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// joinRulesContent is the part of m.room.join_rules a restricted join reads.
type joinRulesContent struct {
	JoinRule any `json:"join_rule"`
	// Allow is decoded entry by entry: a malformed entry is ignored rather
	// than closing the room to everyone the others would let in.
	Allow any `json:"allow"`
}

// rule is the join rule, "" when it is not a string.
func (c joinRulesContent) rule() string {
	s, _ := c.JoinRule.(string)
	return s
}

// allowedRooms are the room ids of the m.room_membership entries of allow.
func (c joinRulesContent) allowedRooms() []string {
	entries, _ := c.Allow.([]any)
	var out []string
	for _, e := range entries {
		m, _ := e.(map[string]any)
		typ, _ := m["type"].(string)
		room, _ := m["room_id"].(string)
		if typ == "m.room_membership" && room != "" {
			out = append(out, room)
		}
	}
	return out
}

// mayBeRestricted reports whether a stored m.room.join_rules event names a
// restricted join rule (the room version is checked later).
func mayBeRestricted(raw json.RawMessage) bool {
	var e struct {
		Content joinRulesContent `json:"content"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	return e.Content.rule() == "restricted" || e.Content.rule() == "knock_restricted"
}

// restrictedAuthoriser decides a join of userID to a room whose join rule
// may be restricted or knock_restricted (spec: Restricted rooms). It returns
// the local user to name in join_authorised_via_users_server, or "" when the
// join needs none (another join rule, or the user is invited already, which
// the auth rules accept on their own). A user who is in none of the allowed
// rooms gets M_FORBIDDEN; knock_restricted still lets them knock.
func (rt *Routes) restrictedAuthoriser(ctx context.Context, roomID matrix.RoomID, userID string) (string, error) {
	// Most joins are to rooms of other join rules: read the join rule alone
	// first, and the whole state (for the members) only when it is restricted.
	jrOnly, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{RoomID: string(roomID),
		Tuples: []rsapi.StateKeyTuple{{Type: event.TypeJoinRules}}})
	if err != nil {
		return "", err
	}
	if len(jrOnly.StateEvents) == 0 || !mayBeRestricted(jrOnly.StateEvents[0]) {
		return "", nil
	}
	st, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{RoomID: string(roomID)})
	if err != nil {
		return "", err
	}
	v, ok := event.Version(st.RoomVersion)
	if !ok {
		return "", apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", st.RoomVersion)
	}
	var create, pl, jr *event.PDU
	var members []*event.PDU
	for _, raw := range st.StateEvents {
		e, err := event.Parse(raw, v)
		if err != nil {
			return "", fmt.Errorf("parse state of %s: %w", roomID, err)
		}
		switch sk := *e.StateKey(); {
		case e.Type() == event.TypeCreate && sk == "":
			create = e
		case e.Type() == event.TypePowerLevels && sk == "":
			pl = e
		case e.Type() == event.TypeJoinRules && sk == "":
			jr = e
		case e.Type() == event.TypeMember:
			members = append(members, e)
		}
	}
	if jr == nil || !v.Restricted {
		return "", nil
	}
	var rules joinRulesContent
	if json.Unmarshal(jr.Content(), &rules) != nil {
		return "", nil // the auth rules will judge a malformed join rule
	}
	jrule := rules.rule()
	if jrule != "restricted" && !(v.KnockRestricted && jrule == "knock_restricted") {
		return "", nil
	}
	allowed := false
	for _, room := range rules.allowedRooms() {
		if _, err := matrix.ParseRoomID(room); err != nil {
			continue
		}
		m, err := rt.rs.QueryMembership(ctx, rsapi.QueryMembershipRequest{RoomID: room, UserID: userID})
		if err != nil {
			return "", err
		}
		if m.Membership == rsapi.MembershipJoin {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", apierr.Forbidden("join rule is %s and %s is not in any of the rooms it allows", jrule, userID)
	}
	invite := int64(0)
	if pl != nil {
		var c struct {
			Invite *json.Number `json:"invite"`
		}
		if json.Unmarshal(pl.Content(), &c) == nil && c.Invite != nil {
			if n, err := c.Invite.Int64(); err == nil {
				invite = n
			}
		}
	}
	// Any joined local user with the invite level will do; the most
	// powerful is the least likely to lose it before the join is accepted,
	// and sorting by user id keeps the choice stable.
	type cand struct {
		id    string
		level int64
	}
	var cands []cand
	for _, m := range members {
		u, err := matrix.ParseUserID(*m.StateKey())
		if err != nil || u.Server() != rt.cfg.ServerName || string(u) == userID {
			continue
		}
		var c struct {
			Membership string `json:"membership"`
		}
		if json.Unmarshal(m.Content(), &c) != nil || c.Membership != rsapi.MembershipJoin {
			continue
		}
		if l := authrules.PowerLevel(u, create, pl); l >= invite {
			cands = append(cands, cand{string(u), l})
		}
	}
	if len(cands) == 0 {
		return "", apierr.Forbidden("no user of this server in room %s can authorise the join", roomID)
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].level != cands[j].level {
			return cands[i].level > cands[j].level
		}
		return cands[i].id < cands[j].id
	})
	return cands[0].id, nil
}
