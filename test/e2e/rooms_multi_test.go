package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// The multi-user rooms scenarios run on the monolith with both databases;
// the polylith runs the ones that cross component boundaries most.
func TestRoomsMultiMonolith(t *testing.T) {
	engines := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return storagetest.PostgresDSN(t) }},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := startMonolith(t, e.dsn(t))
			t.Run("power levels", func(t *testing.T) { powerLevelsScenario(t, s) })
			t.Run("membership", func(t *testing.T) { membershipScenario(t, s) })
			t.Run("knock and restricted", func(t *testing.T) { knockRestrictedScenario(t, s) })
			t.Run("history visibility", func(t *testing.T) { historyVisibilityScenario(t, s) })
			t.Run("createRoom", func(t *testing.T) { createRoomScenario(t, s) })
			t.Run("members", func(t *testing.T) { membersScenario(t, s) })
		})
	}
}

func TestRoomsMultiPolylith(t *testing.T) {
	s := startPolylith(t).server
	t.Run("power levels", func(t *testing.T) { powerLevelsScenario(t, s) })
	t.Run("knock and restricted", func(t *testing.T) { knockRestrictedScenario(t, s) })
	t.Run("history visibility", func(t *testing.T) { historyVisibilityScenario(t, s) })
	// /members?at= crosses from the clientapi to the syncapi's internal API.
	t.Run("members", func(t *testing.T) { membersScenario(t, s) })
}

// newUser registers a user with a name unique on the server, so
// scenarios can share one server.
var (
	userSeqMu sync.Mutex
	userSeq   = map[string]int{}
)

func newUser(t *testing.T, s *server, name string) *mautrix.Client {
	t.Helper()
	userSeqMu.Lock()
	userSeq[s.URL]++
	n := userSeq[s.URL]
	userSeqMu.Unlock()
	return userClient(t, s, fmt.Sprintf("%s%d", name, n))
}

// powerLevels reads the room's power levels content.
func powerLevels(t *testing.T, cli *mautrix.Client, roomID id.RoomID) map[string]any {
	t.Helper()
	var pl map[string]any
	must(t, "StateEvent(power_levels)", cli.StateEvent(t.Context(), roomID, event.StatePowerLevels, "", &pl))
	return pl
}

func setUserLevel(t *testing.T, cli *mautrix.Client, roomID id.RoomID, user id.UserID, level int) error {
	t.Helper()
	pl := powerLevels(t, cli, roomID)
	users, _ := pl["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	users[user.String()] = level
	pl["users"] = users
	_, err := cli.SendStateEvent(t.Context(), roomID, event.StatePowerLevels, "", pl)
	return err
}

// powerLevelsScenario: a user below a level cannot send state, kick, ban
// or redact others; raised to it, they can; they never exceed their own
// level or act on someone at or above it.
func powerLevelsScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob, carol := newUser(t, s, "pla"), newUser(t, s, "plb"), newUser(t, s, "plc")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "10"})
	must(t, "CreateRoom", err)
	for _, c := range []*mautrix.Client{bob, carol} {
		_, err := c.JoinRoomByID(ctx, room.RoomID)
		must(t, "JoinRoomByID", err)
	}
	note, err := carol.SendText(ctx, room.RoomID, "carol's note")
	must(t, "SendText(carol)", err)
	aliceMsg, err := alice.SendText(ctx, room.RoomID, "alice's note")
	must(t, "SendText(alice)", err)

	// bob is at 0: state, kick, ban, redact of others and power are refused.
	_, err = bob.SendStateEvent(ctx, room.RoomID, event.StateRoomName, "", map[string]string{"name": "bob's"})
	mustErr(t, "name by bob (0)", err, "M_FORBIDDEN")
	_, err = bob.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: carol.UserID})
	mustErr(t, "kick by bob (0)", err, "M_FORBIDDEN")
	_, err = bob.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID})
	mustErr(t, "ban by bob (0)", err, "M_FORBIDDEN")
	_, err = bob.RedactEvent(ctx, room.RoomID, note.EventID)
	mustErr(t, "redact by bob (0)", err, "M_FORBIDDEN")
	mustErr(t, "bob raises himself", setUserLevel(t, bob, room.RoomID, bob.UserID, 50), "M_FORBIDDEN")
	if n, _ := powerLevels(t, alice, room.RoomID)["users"].(map[string]any)[bob.UserID.String()]; n != nil {
		t.Fatalf("bob's level after a refused change = %v", n)
	}

	// Raised to 50 (the state, kick, ban and redact level), bob can.
	must(t, "alice raises bob", setUserLevel(t, alice, room.RoomID, bob.UserID, 50))
	_, err = bob.SendStateEvent(ctx, room.RoomID, event.StateRoomName, "", map[string]string{"name": "bob's"})
	must(t, "name by bob (50)", err)
	_, err = bob.RedactEvent(ctx, room.RoomID, note.EventID)
	must(t, "redact carol's by bob (50)", err)
	_, err = bob.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "out"})
	must(t, "kick by bob (50)", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	must(t, "carol rejoins a public room", err)
	_, err = bob.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID})
	must(t, "ban by bob (50)", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "banned carol joins", err, "M_FORBIDDEN")
	_, err = bob.UnbanUser(ctx, room.RoomID, &mautrix.ReqUnbanUser{UserID: carol.UserID})
	must(t, "unban by bob (50)", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	must(t, "carol joins after unban", err)

	// Power 50 still cannot touch alice (100), reach 100, or send a 100-level event.
	_, err = bob.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: alice.UserID})
	mustErr(t, "kick of alice by bob", err, "M_FORBIDDEN")
	_, err = bob.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: alice.UserID})
	mustErr(t, "ban of alice by bob", err, "M_FORBIDDEN")
	mustErr(t, "power levels (100) by bob", setUserLevel(t, bob, room.RoomID, carol.UserID, 10), "M_FORBIDDEN")
	_, err = bob.SendStateEvent(ctx, room.RoomID, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "joined"})
	mustErr(t, "history_visibility (100) by bob", err, "M_FORBIDDEN")
	// The redact level covers everyone's events, whatever the sender's level.
	_, err = bob.RedactEvent(ctx, room.RoomID, aliceMsg.EventID)
	must(t, "redact alice's by bob (50)", err)
	// With power levels editable at 50, bob may grant up to his own level
	// but neither exceed it nor change anyone at or above it.
	pl := powerLevels(t, alice, room.RoomID)
	pl["events"].(map[string]any)["m.room.power_levels"] = 50
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", pl)
	must(t, "power levels editable at 50", err)
	must(t, "bob raises carol to 50", setUserLevel(t, bob, room.RoomID, carol.UserID, 50))
	mustErr(t, "bob raises himself to 100", setUserLevel(t, bob, room.RoomID, bob.UserID, 100), "M_FORBIDDEN")
	mustErr(t, "bob demotes alice", setUserLevel(t, bob, room.RoomID, alice.UserID, 0), "M_FORBIDDEN")
	mustErr(t, "bob lowers carol (equal)", setUserLevel(t, bob, room.RoomID, carol.UserID, 0), "M_FORBIDDEN")
	must(t, "bob lowers himself", setUserLevel(t, bob, room.RoomID, bob.UserID, 40))

	// Lowered again, bob loses what he had.
	must(t, "alice lowers bob", setUserLevel(t, alice, room.RoomID, bob.UserID, 0))
	_, err = bob.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]string{"topic": "nope"})
	mustErr(t, "topic by bob (0 again)", err, "M_FORBIDDEN")

	// events_default raised: an ordinary message needs power too.
	pl = powerLevels(t, alice, room.RoomID)
	pl["events_default"] = 10
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", pl)
	must(t, "events_default 10", err)
	_, err = bob.SendText(ctx, room.RoomID, "muted")
	mustErr(t, "message by bob below events_default", err, "M_FORBIDDEN")
	_, err = carol.SendText(ctx, room.RoomID, "carol at 50")
	must(t, "message by carol (50)", err)

	// Room version 12: the creator outranks every level, even 100.
	v12, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "12"})
	must(t, "CreateRoom(v12)", err)
	_, err = bob.JoinRoomByID(ctx, v12.RoomID)
	must(t, "bob joins v12", err)
	must(t, "alice raises bob to 100 (v12)", setUserLevel(t, alice, v12.RoomID, bob.UserID, 100))
	_, err = bob.KickUser(ctx, v12.RoomID, &mautrix.ReqKickUser{UserID: alice.UserID})
	mustErr(t, "kick of the v12 creator", err, "M_FORBIDDEN")
	mustErr(t, "listing the v12 creator in users", setUserLevel(t, bob, v12.RoomID, alice.UserID, 0), "M_FORBIDDEN")
	_, err = bob.SendStateEvent(ctx, v12.RoomID, event.StateRoomName, "", map[string]string{"name": "bob at 100"})
	must(t, "name by bob (100, v12)", err)
	_, err = alice.KickUser(ctx, v12.RoomID, &mautrix.ReqKickUser{UserID: bob.UserID})
	must(t, "the creator kicks a 100", err)
}

// memberships returns user → membership from /members.
func memberships(t *testing.T, cli *mautrix.Client, roomID id.RoomID, req ...mautrix.ReqMembers) map[string]string {
	t.Helper()
	res, err := cli.Members(t.Context(), roomID, req...)
	must(t, "Members", err)
	out := map[string]string{}
	for _, e := range res.Chunk {
		out[e.GetStateKey()] = string(e.Content.AsMember().Membership)
	}
	return out
}

func wantMemberships(t *testing.T, what string, got map[string]string, want map[id.UserID]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: memberships %v, want %v", what, got, want)
	}
	for u, m := range want {
		if got[u.String()] != m {
			t.Fatalf("%s: memberships %v, want %v", what, got, want)
		}
	}
}

// membershipScenario: invite, join, leave, kick, ban, unban and forget
// between three users, checked through /members, /joined_members,
// /joined_rooms and /sync.
func membershipScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob, carol := newUser(t, s, "ma"), newUser(t, s, "mb"), newUser(t, s, "mc")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "members"})
	must(t, "CreateRoom", err)

	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "carol joins uninvited", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	must(t, "invite bob", err)
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	must(t, "invite bob again", err)
	// The invitee sees the invite in /sync with the room's stripped state.
	syncUntil(t, bob, "", func(r *mautrix.RespSync) error {
		if _, ok := r.Rooms.Invite[room.RoomID]; !ok {
			return fmt.Errorf("no invite in %v", r.Rooms.Invite)
		}
		return nil
	})
	// bob rejects the invite; invited again he accepts.
	_, err = bob.LeaveRoom(ctx, room.RoomID)
	must(t, "bob rejects the invite", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "bob joins after rejecting", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	must(t, "invite bob once more", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	must(t, "bob joins", err)
	// bob (power 0, invite level 0) invites carol; alice withdraws it by kicking.
	_, err = bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	must(t, "bob invites carol", err)
	wantMemberships(t, "after invites", memberships(t, alice, room.RoomID),
		map[id.UserID]string{alice.UserID: "join", bob.UserID: "join", carol.UserID: "invite"})
	_, err = alice.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "withdrawn"})
	must(t, "withdraw carol's invite", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "carol joins a withdrawn invite", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	must(t, "invite carol", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	must(t, "carol joins", err)
	jm, err := bob.JoinedMembers(ctx, room.RoomID)
	if err != nil || len(jm.Joined) != 3 {
		t.Fatalf("JoinedMembers = %+v, %v", jm, err)
	}

	// Kick: carol is out and cannot come back without an invite.
	_, err = alice.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: carol.UserID})
	must(t, "kick carol", err)
	_, err = carol.SendText(ctx, room.RoomID, "still here?")
	mustErr(t, "kicked carol sends", err, "M_FORBIDDEN")
	jr, err := carol.JoinedRooms(ctx)
	if err != nil || slices.Contains(jr.JoinedRooms, room.RoomID) {
		t.Fatalf("JoinedRooms(carol) after kick = %v, %v", jr, err)
	}
	// Ban of a user who left; unban leaves them out (leave), not in.
	_, err = alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "enough"})
	must(t, "ban carol", err)
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	mustErr(t, "invite banned carol", err, "M_FORBIDDEN")
	_, err = carol.LeaveRoom(ctx, room.RoomID)
	if err == nil {
		// A banned user's leave must not lift the ban.
		if m := memberships(t, alice, room.RoomID)[carol.UserID.String()]; m != "ban" {
			t.Fatalf("carol after leaving while banned = %q", m)
		}
	}
	wantMemberships(t, "ban filter", memberships(t, alice, room.RoomID, mautrix.ReqMembers{Membership: event.MembershipBan}),
		map[id.UserID]string{carol.UserID: "ban"})
	_, err = alice.UnbanUser(ctx, room.RoomID, &mautrix.ReqUnbanUser{UserID: carol.UserID})
	must(t, "unban carol", err)
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "unbanned carol joins uninvited", err, "M_FORBIDDEN")

	// Ban of a joined member removes them at once.
	_, err = alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: bob.UserID})
	must(t, "ban joined bob", err)
	_, err = bob.SendText(ctx, room.RoomID, "hi")
	mustErr(t, "banned bob sends", err, "M_FORBIDDEN")
	_, err = alice.UnbanUser(ctx, room.RoomID, &mautrix.ReqUnbanUser{UserID: bob.UserID})
	must(t, "unban bob", err)

	// Forget: only after leaving; a forgotten room leaves bob's /sync.
	_, err = alice.ForgetRoom(ctx, room.RoomID)
	mustErr(t, "alice forgets while joined", err, "M_UNKNOWN")
	_, err = bob.ForgetRoom(ctx, room.RoomID)
	must(t, "bob forgets", err)
	_, err = bob.ForgetRoom(ctx, room.RoomID)
	must(t, "bob forgets again", err)
	// The syncapi follows the room's events asynchronously: once it has
	// seen the ban, the forgotten room must be gone from an initial sync.
	syncUntil(t, bob, "", func(r *mautrix.RespSync) error {
		if _, ok := r.Rooms.Leave[room.RoomID]; ok {
			return fmt.Errorf("forgotten room in bob's initial sync leave section")
		}
		if _, ok := r.Rooms.Join[room.RoomID]; ok {
			return fmt.Errorf("forgotten room in bob's joined rooms")
		}
		return nil
	})
	_, err = alice.SendText(ctx, room.RoomID, "alone")
	must(t, "alice still sends", err)

	// alice leaves last; the room stays (membership leave) and she may forget it.
	_, err = alice.LeaveRoom(ctx, room.RoomID)
	must(t, "alice leaves", err)
	_, err = alice.SendText(ctx, room.RoomID, "gone")
	mustErr(t, "alice sends after leaving", err, "M_FORBIDDEN")
	_, err = alice.ForgetRoom(ctx, room.RoomID)
	must(t, "alice forgets", err)
	_, err = alice.ForgetRoom(ctx, id.RoomID("!nothere:"+s.ServerName))
	if err == nil {
		t.Fatalf("forget of an unknown room succeeded")
	}
}

// memberEvent returns the content of a user's member event.
func memberEvent(t *testing.T, cli *mautrix.Client, roomID id.RoomID, user id.UserID) map[string]any {
	t.Helper()
	var c map[string]any
	must(t, "StateEvent(member)", cli.StateEvent(t.Context(), roomID, event.StateMember, user.String(), &c))
	return c
}

func joinRules(rule string, allow ...id.RoomID) *event.Event {
	c := map[string]any{"join_rule": rule}
	if len(allow) > 0 {
		var a []map[string]any
		for _, r := range allow {
			a = append(a, map[string]any{"type": "m.room_membership", "room_id": r})
		}
		c["allow"] = a
	}
	return &event.Event{Type: event.StateJoinRules, StateKey: ptr(""), Content: event.Content{Raw: c}}
}

func ptr[T any](v T) *T { return &v }

// knockRestrictedScenario: knock, rescind, invite after knock; restricted
// and knock_restricted joins through membership of an allowed room.
func knockRestrictedScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob, carol, dave := newUser(t, s, "ka"), newUser(t, s, "kb"), newUser(t, s, "kc"), newUser(t, s, "kd")

	// The club: bob and dave are in it, carol is not.
	club, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "club"})
	must(t, "CreateRoom(club)", err)
	for _, c := range []*mautrix.Client{bob, dave} {
		_, err := c.JoinRoomByID(ctx, club.RoomID)
		must(t, "join club", err)
	}

	for _, version := range []id.RoomVersion{"8", "10", "12"} {
		t.Run("restricted v"+string(version), func(t *testing.T) {
			r, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: version,
				InitialState: []*event.Event{joinRules("restricted", club.RoomID)}})
			must(t, "CreateRoom(restricted)", err)
			_, err = carol.JoinRoomByID(ctx, r.RoomID)
			mustErr(t, "carol (not in club) joins", err, "M_FORBIDDEN")
			_, err = carol.KnockRoom(ctx, r.RoomID.String(), nil)
			mustErr(t, "carol knocks on restricted", err, "M_FORBIDDEN")
			_, err = bob.JoinRoomByID(ctx, r.RoomID)
			must(t, "bob (in club) joins", err)
			c := memberEvent(t, alice, r.RoomID, bob.UserID)
			if c["membership"] != "join" || c["join_authorised_via_users_server"] != alice.UserID.String() {
				t.Fatalf("bob's join = %v, want one authorised via %s", c, alice.UserID)
			}
			// Once joined, a rejoin after leaving goes the same way.
			_, err = bob.LeaveRoom(ctx, r.RoomID)
			must(t, "bob leaves", err)
			_, err = bob.JoinRoomByID(ctx, r.RoomID)
			must(t, "bob rejoins", err)
			// An invite lets carol in without the club.
			_, err = alice.InviteUser(ctx, r.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
			must(t, "invite carol", err)
			_, err = carol.JoinRoomByID(ctx, r.RoomID)
			must(t, "invited carol joins", err)
			if c := memberEvent(t, alice, r.RoomID, carol.UserID); c["join_authorised_via_users_server"] != nil {
				t.Fatalf("invited join carries an authoriser: %v", c)
			}
		})
	}

	// Before room version 8 the join rule restricted lets nobody in.
	r7, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "7",
		InitialState: []*event.Event{joinRules("restricted", club.RoomID)}})
	must(t, "CreateRoom(restricted v7)", err)
	_, err = bob.JoinRoomByID(ctx, r7.RoomID)
	mustErr(t, "bob joins a v7 'restricted' room", err, "M_FORBIDDEN")

	// Leaving the club takes the way in away.
	r, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10",
		InitialState: []*event.Event{joinRules("restricted", club.RoomID)}})
	must(t, "CreateRoom(restricted 2)", err)
	_, err = dave.LeaveRoom(ctx, club.RoomID)
	must(t, "dave leaves the club", err)
	_, err = dave.JoinRoomByID(ctx, r.RoomID)
	mustErr(t, "dave (left the club) joins", err, "M_FORBIDDEN")

	// The authoriser needs the invite level: when only the creator has it,
	// the join names the creator even if others are joined.
	pl := map[string]any{"invite": 50}
	r2, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "10"})
	must(t, "CreateRoom(restricted 3)", err)
	_, err = bob.JoinRoomByID(ctx, r2.RoomID)
	must(t, "bob joins while public", err)
	cur := powerLevels(t, alice, r2.RoomID)
	for k, v := range pl {
		cur[k] = v
	}
	_, err = alice.SendStateEvent(ctx, r2.RoomID, event.StatePowerLevels, "", cur)
	must(t, "invite level 50", err)
	_, err = alice.SendStateEvent(ctx, r2.RoomID, event.StateJoinRules, "", joinRules("restricted", club.RoomID).Content.Raw)
	must(t, "join rule restricted", err)
	_, err = dave.JoinRoomByID(ctx, club.RoomID)
	must(t, "dave rejoins the club", err)
	_, err = dave.JoinRoomByID(ctx, r2.RoomID)
	must(t, "dave joins via the club", err)
	if c := memberEvent(t, bob, r2.RoomID, dave.UserID); c["join_authorised_via_users_server"] != alice.UserID.String() {
		t.Fatalf("dave's join = %v, want authorised via %s (bob lacks the invite level)", c, alice.UserID)
	}

	// Through an alias, as through the id; a ban still wins over the club.
	aliasName := "restricted-" + alice.UserID.Localpart()
	r3, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10", RoomAliasName: aliasName,
		InitialState: []*event.Event{joinRules("restricted", club.RoomID)}})
	must(t, "CreateRoom(restricted with alias)", err)
	_, err = alice.BanUser(ctx, r3.RoomID, &mautrix.ReqBanUser{UserID: dave.UserID})
	must(t, "ban dave", err)
	_, err = dave.JoinRoom(ctx, "#"+aliasName+":"+s.ServerName, nil)
	mustErr(t, "banned dave joins via the club", err, "M_FORBIDDEN")
	joined, err := bob.JoinRoom(ctx, "#"+aliasName+":"+s.ServerName, nil)
	if err != nil || joined.RoomID != r3.RoomID {
		t.Fatalf("bob joins by alias = %+v, %v", joined, err)
	}
	// With nobody left who may invite, the club no longer opens the door.
	pl3 := powerLevels(t, alice, r3.RoomID)
	pl3["invite"] = 100
	_, err = alice.SendStateEvent(ctx, r3.RoomID, event.StatePowerLevels, "", pl3)
	must(t, "invite level 100", err)
	_, err = alice.LeaveRoom(ctx, r3.RoomID)
	must(t, "alice leaves", err)
	_, err = alice.UnbanUser(ctx, r3.RoomID, &mautrix.ReqUnbanUser{UserID: dave.UserID})
	mustErr(t, "unban by a user who left", err, "M_FORBIDDEN")
	_, err = bob.LeaveRoom(ctx, r3.RoomID)
	must(t, "bob leaves", err)
	_, err = bob.JoinRoomByID(ctx, r3.RoomID)
	mustErr(t, "bob rejoins with no authoriser left", err, "M_FORBIDDEN")

	// Knock: a plain knock room (v7+), rescinding with leave, then invite.
	k, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "7",
		InitialState: []*event.Event{joinRules("knock")}})
	must(t, "CreateRoom(knock)", err)
	_, err = carol.JoinRoomByID(ctx, k.RoomID)
	mustErr(t, "carol joins a knock room", err, "M_FORBIDDEN")
	_, err = carol.KnockRoom(ctx, k.RoomID.String(), &mautrix.ReqKnockRoom{Reason: "please"})
	must(t, "carol knocks", err)
	if c := memberEvent(t, alice, k.RoomID, carol.UserID); c["membership"] != "knock" || c["reason"] != "please" {
		t.Fatalf("carol's knock = %v", c)
	}
	syncUntil(t, carol, "", func(r *mautrix.RespSync) error {
		if _, ok := r.Rooms.Knock[k.RoomID]; !ok {
			return fmt.Errorf("knock not in carol's sync")
		}
		return nil
	})
	_, err = carol.LeaveRoom(ctx, k.RoomID)
	must(t, "carol rescinds her knock", err)
	if c := memberEvent(t, alice, k.RoomID, carol.UserID); c["membership"] != "leave" {
		t.Fatalf("carol after rescinding = %v", c)
	}
	_, err = carol.KnockRoom(ctx, k.RoomID.String(), nil)
	must(t, "carol knocks again", err)
	_, err = carol.KnockRoom(ctx, k.RoomID.String(), nil)
	if err != nil && !isErrcode(err, "M_FORBIDDEN") {
		t.Fatalf("second knock = %v", err)
	}
	_, err = bob.InviteUser(ctx, k.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	mustErr(t, "non-member invites the knocker", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, k.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	must(t, "alice accepts the knock with an invite", err)
	_, err = carol.JoinRoomByID(ctx, k.RoomID)
	must(t, "carol joins", err)
	// A knock is refused: by a member, before v7, and in a banned state.
	_, err = carol.KnockRoom(ctx, k.RoomID.String(), nil)
	mustErr(t, "member knocks", err, "M_FORBIDDEN")
	k6, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "6"})
	must(t, "CreateRoom(v6)", err)
	_, err = carol.KnockRoom(ctx, k6.RoomID.String(), nil)
	mustErr(t, "knock on v6", err, "M_FORBIDDEN")
	_, err = alice.BanUser(ctx, k.RoomID, &mautrix.ReqBanUser{UserID: dave.UserID})
	must(t, "ban dave", err)
	_, err = dave.KnockRoom(ctx, k.RoomID.String(), nil)
	mustErr(t, "banned dave knocks", err, "M_FORBIDDEN")
	// A kick of a knocker denies the knock.
	_, err = bob.KnockRoom(ctx, k.RoomID.String(), nil)
	must(t, "bob knocks", err)
	_, err = alice.KickUser(ctx, k.RoomID, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "no"})
	must(t, "alice denies bob's knock", err)
	if c := memberEvent(t, alice, k.RoomID, bob.UserID); c["membership"] != "leave" {
		t.Fatalf("bob after a denied knock = %v", c)
	}

	// knock_restricted (v10+): club members join, others knock.
	for _, version := range []id.RoomVersion{"10", "12"} {
		t.Run("knock_restricted v"+string(version), func(t *testing.T) {
			kr, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: version,
				InitialState: []*event.Event{joinRules("knock_restricted", club.RoomID)}})
			must(t, "CreateRoom(knock_restricted)", err)
			_, err = bob.JoinRoomByID(ctx, kr.RoomID)
			must(t, "bob (club) joins", err)
			if c := memberEvent(t, alice, kr.RoomID, bob.UserID); c["join_authorised_via_users_server"] != alice.UserID.String() {
				t.Fatalf("bob's join = %v", c)
			}
			_, err = carol.JoinRoomByID(ctx, kr.RoomID)
			mustErr(t, "carol (not in club) joins", err, "M_FORBIDDEN")
			_, err = carol.KnockRoom(ctx, kr.RoomID.String(), &mautrix.ReqKnockRoom{Reason: "hi"})
			must(t, "carol knocks", err)
			_, err = carol.LeaveRoom(ctx, kr.RoomID)
			must(t, "carol rescinds", err)
			_, err = carol.KnockRoom(ctx, kr.RoomID.String(), nil)
			must(t, "carol knocks again", err)
			// bob (power 0, invite 0) may accept the knock.
			_, err = bob.InviteUser(ctx, kr.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
			must(t, "bob invites the knocker", err)
			_, err = carol.JoinRoomByID(ctx, kr.RoomID)
			must(t, "carol joins", err)
			jm, err := alice.JoinedMembers(ctx, kr.RoomID)
			if err != nil || len(jm.Joined) != 3 {
				t.Fatalf("JoinedMembers = %+v, %v", jm, err)
			}
		})
	}
	// knock_restricted before v10 is no join rule at all.
	kr9, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "9",
		InitialState: []*event.Event{joinRules("knock_restricted", club.RoomID)}})
	must(t, "CreateRoom(knock_restricted v9)", err)
	_, err = bob.JoinRoomByID(ctx, kr9.RoomID)
	mustErr(t, "join knock_restricted v9", err, "M_FORBIDDEN")
	_, err = carol.KnockRoom(ctx, kr9.RoomID.String(), nil)
	mustErr(t, "knock knock_restricted v9", err, "M_FORBIDDEN")
}

// timelineBodies returns the bodies of the messages in a joined room's
// timeline of a sync response.
func timelineBodies(resp *mautrix.RespSync, roomID id.RoomID) []string {
	var out []string
	for _, e := range messages(resp, roomID) {
		if b, ok := e.Content.Raw["body"].(string); ok {
			out = append(out, b)
		}
	}
	return out
}

// historyVisibilityScenario: what a late joiner's initial /sync shows of
// the messages before their join, per history_visibility; world_readable
// state for a non-member.
func historyVisibilityScenario(t *testing.T, s *server) {
	ctx := t.Context()
	const filter = `{"room":{"timeline":{"limit":50}}}`
	for _, tc := range []struct {
		vis         string
		wantBefore  bool // messages before the invite
		wantInvited bool // messages between invite and join
	}{
		{"joined", false, false},
		{"invited", false, true},
		{"shared", true, true},
		{"world_readable", true, true},
	} {
		t.Run(tc.vis, func(t *testing.T) {
			alice, bob := newUser(t, s, "hva"), newUser(t, s, "hvb")
			room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
				InitialState: []*event.Event{{Type: event.StateHistoryVisibility, StateKey: ptr(""),
					Content: event.Content{Raw: map[string]any{"history_visibility": tc.vis}}}}})
			must(t, "CreateRoom", err)
			early, err := alice.SendText(ctx, room.RoomID, "before invite")
			must(t, "SendText", err)
			_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
			must(t, "invite", err)
			_, err = alice.SendText(ctx, room.RoomID, "while invited")
			must(t, "SendText", err)
			_, err = bob.JoinRoomByID(ctx, room.RoomID)
			must(t, "join", err)
			_, err = alice.SendText(ctx, room.RoomID, "after join")
			must(t, "SendText", err)
			var bodies []string
			waitFor(t, 15*time.Second, func() error {
				resp, err := bob.SyncRequest(ctx, 0, "", filter, false, event.PresenceOffline)
				if err != nil {
					return err
				}
				bodies = timelineBodies(resp, room.RoomID)
				if !slices.Contains(bodies, "after join") {
					return fmt.Errorf("timeline %v lacks the message after the join", bodies)
				}
				return nil
			})
			if got := slices.Contains(bodies, "before invite"); got != tc.wantBefore {
				t.Errorf("%s: message before the invite visible = %v, want %v (timeline %v)", tc.vis, got, tc.wantBefore, bodies)
			}
			if got := slices.Contains(bodies, "while invited"); got != tc.wantInvited {
				t.Errorf("%s: message while invited visible = %v, want %v (timeline %v)", tc.vis, got, tc.wantInvited, bodies)
			}

			// /messages (back from the end) hides the same events as /sync.
			status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+
				"/messages?dir=b&limit=50", bob.AccessToken, nil)
			var page struct {
				Chunk []*event.Event `json:"chunk"`
			}
			if status != 200 || json.Unmarshal(body, &page) != nil {
				t.Fatalf("/messages = %d %s", status, body)
			}
			var paged []string
			for _, e := range page.Chunk {
				if b, ok := e.Content.Raw["body"].(string); ok && e.Type == event.EventMessage {
					paged = append(paged, b)
				}
			}
			if slices.Contains(paged, "before invite") != tc.wantBefore || slices.Contains(paged, "while invited") != tc.wantInvited ||
				!slices.Contains(paged, "after join") {
				t.Errorf("%s: /messages bodies %v", tc.vis, paged)
			}

			// Once bob leaves, nothing after his leave reaches him, whatever
			// the visibility; an incremental sync shows him the leave.
			first, err := bob.SyncRequest(ctx, 0, "", filter, false, event.PresenceOffline)
			must(t, "bob's sync before leaving", err)
			_, err = bob.LeaveRoom(ctx, room.RoomID)
			must(t, "bob leaves", err)
			_, err = alice.SendText(ctx, room.RoomID, "after leave")
			must(t, "SendText", err)
			marker, err := alice.SendText(ctx, room.RoomID, "marker")
			must(t, "SendText", err)
			// alice's sync shows the marker: everything before it is stored.
			syncUntil(t, alice, "", func(r *mautrix.RespSync) error {
				for _, e := range messages(r, room.RoomID) {
					if e.ID == marker.EventID {
						return nil
					}
				}
				return fmt.Errorf("marker not synced")
			})
			const leaveFilter = `{"room":{"include_leave":true,"timeline":{"limit":50}}}`
			for _, since := range []string{"", first.NextBatch} {
				resp, err := bob.SyncRequest(ctx, 0, since, leaveFilter, false, event.PresenceOffline)
				must(t, "bob's sync after leaving", err)
				lr, ok := resp.Rooms.Leave[room.RoomID]
				if !ok {
					t.Fatalf("since %q: room not in bob's leave section", since)
				}
				sawLeave := false
				for _, e := range lr.Timeline.Events {
					if b, _ := e.Content.Raw["body"].(string); b == "after leave" || b == "marker" {
						t.Fatalf("since %q: bob sees %q sent after he left", since, b)
					}
					if e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String() && e.Content.Raw["membership"] == "leave" {
						sawLeave = true
					}
				}
				if since != "" && !sawLeave {
					t.Fatalf("incremental sync after leaving lacks bob's leave: %d events", len(lr.Timeline.Events))
				}
			}

			// A non-member reads the state of a world_readable room only.
			carol := newUser(t, s, "hvc")
			var name map[string]any
			err = carol.StateEvent(ctx, room.RoomID, event.StateHistoryVisibility, "", &name)
			evURL := s.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String()) + "/event/" + url.PathEscape(early.EventID.String())
			evStatus, evBody, _ := do(t, http.MethodGet, evURL, carol.AccessToken, nil)
			if tc.vis == "world_readable" {
				if evStatus != 200 {
					t.Errorf("non-member GET /event of world_readable = %d %s", evStatus, evBody)
				}
				must(t, "non-member reads world_readable state", err)
				if _, err := carol.State(ctx, room.RoomID); err != nil {
					t.Fatalf("non-member GET /state of world_readable = %v", err)
				}
				if _, err := carol.Members(ctx, room.RoomID); err != nil {
					t.Fatalf("non-member GET /members of world_readable = %v", err)
				}
				// /joined_members is for members only, whatever the visibility.
				_, err := carol.JoinedMembers(ctx, room.RoomID)
				mustErr(t, "non-member GET /joined_members of world_readable", err, "M_FORBIDDEN")
			} else {
				mustErr(t, "non-member reads "+tc.vis+" state", err, "M_FORBIDDEN")
				if evStatus != 404 && evStatus != 403 {
					t.Errorf("non-member GET /event of %s = %d %s, want 404", tc.vis, evStatus, evBody)
				}
			}
		})
	}
}

// createRoomScenario: each createRoom option, as the spec describes it.
func createRoomScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob := newUser(t, s, "cra"), newUser(t, s, "crb")
	post := func(body string) (int, []byte) {
		status, res, _ := do(t, http.MethodPost, s.URL+"/_matrix/client/v3/createRoom", alice.AccessToken, []byte(body))
		return status, res
	}
	create := func(t *testing.T, body string) id.RoomID {
		t.Helper()
		status, res := post(body)
		var r struct {
			RoomID id.RoomID `json:"room_id"`
		}
		if status != 200 || json.Unmarshal(res, &r) != nil || r.RoomID == "" {
			t.Fatalf("createRoom %s = %d %s", body, status, res)
		}
		return r.RoomID
	}
	stateOf := func(t *testing.T, roomID id.RoomID, typ, key string) map[string]any {
		t.Helper()
		var c map[string]any
		must(t, "StateEvent("+typ+")", alice.StateEvent(ctx, roomID, event.NewEventType(typ), key, &c))
		return c
	}

	t.Run("presets", func(t *testing.T) {
		for _, tc := range []struct {
			body                      string
			joinRule, guests, history string
			bobLevel                  any // bob's users entry (v11 rooms)
			published                 bool
		}{
			{`{"preset":"private_chat","room_version":"11","invite":["BOB"]}`, "invite", "can_join", "shared", nil, false},
			{`{"preset":"trusted_private_chat","room_version":"11","invite":["BOB"]}`, "invite", "can_join", "shared", 100.0, false},
			{`{"preset":"public_chat","room_version":"11"}`, "public", "forbidden", "shared", nil, false},
			{`{"visibility":"public","room_version":"11"}`, "public", "forbidden", "shared", nil, true},
			{`{"visibility":"private","room_version":"11"}`, "invite", "can_join", "shared", nil, false},
		} {
			body := replaceBob(tc.body, bob.UserID)
			roomID := create(t, body)
			if got := stateOf(t, roomID, "m.room.join_rules", "")["join_rule"]; got != tc.joinRule {
				t.Errorf("%s: join_rule %v, want %s", body, got, tc.joinRule)
			}
			if got := stateOf(t, roomID, "m.room.guest_access", "")["guest_access"]; got != tc.guests {
				t.Errorf("%s: guest_access %v, want %s", body, got, tc.guests)
			}
			if got := stateOf(t, roomID, "m.room.history_visibility", "")["history_visibility"]; got != tc.history {
				t.Errorf("%s: history_visibility %v, want %s", body, got, tc.history)
			}
			users := stateOf(t, roomID, "m.room.power_levels", "")["users"].(map[string]any)
			if users[alice.UserID.String()] != 100.0 || users[bob.UserID.String()] != tc.bobLevel {
				t.Errorf("%s: users %v", body, users)
			}
			status, res, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/directory/list/room/"+url.PathEscape(roomID.String()), "", nil)
			if want := map[bool]string{true: "public", false: "private"}[tc.published]; status != 200 || !json.Valid(res) ||
				!strings.Contains(string(res), want) {
				t.Errorf("%s: directory visibility %d %s, want %s", body, status, res, want)
			}
		}
	})

	t.Run("trusted_private_chat v12", func(t *testing.T) {
		roomID := create(t, replaceBob(`{"preset":"trusted_private_chat","invite":["BOB"],"is_direct":true}`, bob.UserID))
		c := stateOf(t, roomID, "m.room.create", "")
		if c["room_version"] != "12" || fmt.Sprint(c["additional_creators"]) != fmt.Sprint([]any{bob.UserID.String()}) {
			t.Fatalf("v12 trusted create = %v", c)
		}
		users := stateOf(t, roomID, "m.room.power_levels", "")["users"].(map[string]any)
		if len(users) != 0 {
			t.Fatalf("v12 power levels list creators: %v", users)
		}
		inv := stateOf(t, roomID, "m.room.member", bob.UserID.String())
		if inv["membership"] != "invite" || inv["is_direct"] != true {
			t.Fatalf("direct invite = %v", inv)
		}
		_, err := bob.JoinRoomByID(ctx, roomID)
		must(t, "bob joins", err)
		// As an additional creator bob has unlimited power.
		_, err = bob.SendStateEvent(ctx, roomID, event.StatePowerLevels, "", map[string]any{"users_default": 0})
		must(t, "creator bob sets power levels", err)
	})

	t.Run("name topic alias initial_state overrides", func(t *testing.T) {
		aliasName := "cr-" + alice.UserID.Localpart()
		roomID := create(t, `{"name":"The name","topic":"The topic","room_alias_name":"`+aliasName+`",
			"preset":"public_chat",
			"initial_state":[{"type":"m.room.name","content":{"name":"overridden"}},
			  {"type":"m.room.history_visibility","content":{"history_visibility":"joined"}},
			  {"type":"m.room.join_rules","state_key":"","content":{"join_rule":"invite"}},
			  {"type":"org.example.custom","state_key":"k","content":{"x":1}}],
			"creation_content":{"m.federate":false,"type":"org.example.kind"},
			"power_level_content_override":{"events_default":5,"users":{"`+bob.UserID.String()+`":60}}}`)
		if got := stateOf(t, roomID, "m.room.name", "")["name"]; got != "The name" {
			t.Errorf("name %v: the name key must win over initial_state", got)
		}
		topic := stateOf(t, roomID, "m.room.topic", "")
		if topic["topic"] != "The topic" || topic["m.topic"] == nil {
			t.Errorf("topic %v", topic)
		}
		if got := stateOf(t, roomID, "m.room.history_visibility", "")["history_visibility"]; got != "joined" {
			t.Errorf("history_visibility %v: initial_state must win over the preset", got)
		}
		if got := stateOf(t, roomID, "m.room.join_rules", "")["join_rule"]; got != "invite" {
			t.Errorf("join_rule %v: initial_state must win over the preset", got)
		}
		if got := stateOf(t, roomID, "org.example.custom", "k")["x"]; got != 1.0 {
			t.Errorf("custom state %v", got)
		}
		c := stateOf(t, roomID, "m.room.create", "")
		if c["m.federate"] != false || c["type"] != "org.example.kind" {
			t.Errorf("create %v", c)
		}
		pl := stateOf(t, roomID, "m.room.power_levels", "")
		// Room version 12: the creator is not listed (creators outrank every level).
		if pl["events_default"] != 5.0 || pl["users"].(map[string]any)[bob.UserID.String()] != 60.0 || pl["state_default"] != 50.0 ||
			pl["users"].(map[string]any)[alice.UserID.String()] != nil {
			t.Errorf("power levels %v", pl)
		}
		ca := stateOf(t, roomID, "m.room.canonical_alias", "")
		if ca["alias"] != "#"+aliasName+":"+s.ServerName {
			t.Errorf("canonical alias %v", ca)
		}
	})

	t.Run("room versions", func(t *testing.T) {
		for v := 1; v <= 12; v++ {
			roomID := create(t, fmt.Sprintf(`{"room_version":"%d","preset":"public_chat","name":"v%d"}`, v, v))
			if got := stateOf(t, roomID, "m.room.create", "")["room_version"]; got != fmt.Sprint(v) {
				t.Fatalf("room_version %v, want %d", got, v)
			}
			_, err := bob.JoinRoomByID(ctx, roomID)
			must(t, fmt.Sprintf("join v%d", v), err)
			_, err = bob.SendText(ctx, roomID, "hello")
			must(t, fmt.Sprintf("message in v%d", v), err)
		}
		roomID := create(t, `{}`)
		if got := stateOf(t, roomID, "m.room.create", "")["room_version"]; got != "12" {
			t.Fatalf("default room_version %v", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		before, err := alice.JoinedRooms(ctx)
		must(t, "JoinedRooms", err)
		for _, tc := range []struct {
			body   string
			status int
			code   string
		}{
			{`{"room_version":"13"}`, 400, "M_UNSUPPORTED_ROOM_VERSION"},
			{`{"room_version":"org.example.v1"}`, 400, "M_UNSUPPORTED_ROOM_VERSION"},
			{`{"room_version":1}`, 400, "M_BAD_JSON"},
			{`{"preset":"nonsense"}`, 400, "M_BAD_JSON"},
			{`{"visibility":"secret"}`, 400, "M_BAD_JSON"},
			{`{"invite":["not a user"]}`, 400, "M_INVALID_PARAM"},
			{`{"initial_state":[{"type":"m.room.topic","content":"x"}]}`, 400, "M_BAD_JSON"},
			{`{"initial_state":[{"content":{}}]}`, 400, "M_BAD_JSON"},
			{`{"room_alias_name":"bad:name"}`, 400, "M_INVALID_PARAM"},
			// Without a users entry the creator of a v11 room has no power to name it.
			{`{"room_version":"11","power_level_content_override":{"users":{}},"name":"x"}`, 400, "M_INVALID_ROOM_STATE"},
			// Room version 12 forbids listing a creator in users.
			{`{"power_level_content_override":{"users":{"ALICE":100}}}`, 400, "M_INVALID_ROOM_STATE"},
			{`{`, 400, "M_NOT_JSON"},
			{`[]`, 400, "M_BAD_JSON"},
		} {
			body := strings.ReplaceAll(tc.body, "ALICE", alice.UserID.String())
			status, res := post(body)
			if status != tc.status || !isCode(res, tc.code) {
				t.Errorf("createRoom %s = %d %s, want %d %s", body, status, res, tc.status, tc.code)
			}
		}
		// A refused createRoom leaves no room behind.
		if after, err := alice.JoinedRooms(ctx); err != nil || len(after.JoinedRooms) != len(before.JoinedRooms) {
			t.Errorf("joined rooms %d after refused createRooms, %d before (%v)", len(after.JoinedRooms), len(before.JoinedRooms), err)
		}
		// Inviting oneself is ignored, not an error.
		roomID := create(t, `{"invite":["`+alice.UserID.String()+`","`+bob.UserID.String()+`","`+bob.UserID.String()+`"]}`)
		wantMemberships(t, "self and duplicate invite", memberships(t, alice, roomID),
			map[id.UserID]string{alice.UserID: "join", bob.UserID: "invite"})
	})
}

func replaceBob(s string, bob id.UserID) string { return strings.ReplaceAll(s, "BOB", bob.String()) }

// membersScenario: /members with membership filters and at, /joined_members.
func membersScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob, carol := newUser(t, s, "mma"), newUser(t, s, "mmb"), newUser(t, s, "mmc")
	room := publicRoom(t, alice, bob)
	// The sync token after bob's join: /members at it shows alice and bob joined.
	first := syncUntil(t, alice, "", func(r *mautrix.RespSync) error {
		jr := r.Rooms.Join[room.RoomID]
		if jr == nil {
			return fmt.Errorf("room not synced yet")
		}
		for _, e := range jr.Timeline.Events {
			if e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String() {
				return nil
			}
		}
		return fmt.Errorf("bob's join not synced yet")
	})
	_, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	must(t, "invite carol", err)
	_, err = bob.LeaveRoom(ctx, room.RoomID)
	must(t, "bob leaves", err)

	all := map[id.UserID]string{alice.UserID: "join", bob.UserID: "leave", carol.UserID: "invite"}
	wantMemberships(t, "all", memberships(t, alice, room.RoomID), all)
	wantMemberships(t, "membership=join", memberships(t, alice, room.RoomID, mautrix.ReqMembers{Membership: "join"}),
		map[id.UserID]string{alice.UserID: "join"})
	wantMemberships(t, "not_membership=leave", memberships(t, alice, room.RoomID, mautrix.ReqMembers{NotMembership: "leave"}),
		map[id.UserID]string{alice.UserID: "join", carol.UserID: "invite"})
	wantMemberships(t, "membership=invite", memberships(t, alice, room.RoomID, mautrix.ReqMembers{Membership: "invite"}),
		map[id.UserID]string{carol.UserID: "invite"})
	wantMemberships(t, "membership=ban", memberships(t, alice, room.RoomID, mautrix.ReqMembers{Membership: "ban"}),
		map[id.UserID]string{})
	// Both given, they are an "or": membership is membership, or is not not_membership.
	wantMemberships(t, "membership=join&not_membership=join", memberships(t, alice, room.RoomID,
		mautrix.ReqMembers{Membership: "join", NotMembership: "join"}), all)
	wantMemberships(t, "membership=leave&not_membership=join", memberships(t, alice, room.RoomID,
		mautrix.ReqMembers{Membership: "leave", NotMembership: "join"}), map[id.UserID]string{bob.UserID: "leave", carol.UserID: "invite"})
	wantMemberships(t, "membership=invite&not_membership=invite", memberships(t, alice, room.RoomID,
		mautrix.ReqMembers{Membership: "invite", NotMembership: "invite"}), all)

	// at: the membership as of a sync token, filters applied on top.
	wantMemberships(t, "at the first sync", memberships(t, alice, room.RoomID, mautrix.ReqMembers{At: first.NextBatch}),
		map[id.UserID]string{alice.UserID: "join", bob.UserID: "join"})
	wantMemberships(t, "at the first sync, not join", memberships(t, alice, room.RoomID, mautrix.ReqMembers{At: first.NextBatch, NotMembership: "join"}),
		map[id.UserID]string{})
	// bob, who left after it, sees that point too; carol, never joined, does not.
	wantMemberships(t, "bob at the first sync", memberships(t, bob, room.RoomID, mautrix.ReqMembers{At: first.NextBatch}),
		map[id.UserID]string{alice.UserID: "join", bob.UserID: "join"})
	_, err = carol.Members(ctx, room.RoomID, mautrix.ReqMembers{At: first.NextBatch})
	mustErr(t, "members at a token for the never joined", err, "M_FORBIDDEN")
	status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/members?at=garbage",
		alice.AccessToken, nil)
	if status != 400 || !isCode(body, "M_INVALID_PARAM") {
		t.Fatalf("members at=garbage = %d %s", status, body)
	}
	status, body, _ = do(t, http.MethodGet, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/members?membership=joined",
		alice.AccessToken, nil)
	if status != 400 || !isCode(body, "M_INVALID_PARAM") {
		t.Fatalf("members membership=joined = %d %s", status, body)
	}
	// bob left: he sees the members as they were when he left, and no later changes.
	wantMemberships(t, "bob after leaving", memberships(t, bob, room.RoomID),
		map[id.UserID]string{alice.UserID: "join", bob.UserID: "leave", carol.UserID: "invite"})
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	must(t, "carol joins", err)
	wantMemberships(t, "bob after carol joined", memberships(t, bob, room.RoomID),
		map[id.UserID]string{alice.UserID: "join", bob.UserID: "leave", carol.UserID: "invite"})
	_, err = bob.JoinedMembers(ctx, room.RoomID)
	mustErr(t, "joined_members of a left user", err, "M_FORBIDDEN")
	jm, err := carol.JoinedMembers(ctx, room.RoomID)
	if err != nil || len(jm.Joined) != 2 || jm.Joined[carol.UserID].DisplayName == "" {
		t.Fatalf("JoinedMembers = %+v, %v", jm, err)
	}
	stranger := newUser(t, s, "mms")
	_, err = stranger.Members(ctx, room.RoomID)
	mustErr(t, "members for a stranger", err, "M_FORBIDDEN")
}

// TestRoomsRestart: messages and room state acknowledged before a SIGTERM
// are all there after a restart on the same data directory.
func TestRoomsRestart(t *testing.T) {
	onBothEngines(t, restartScenario)
}

func restartScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob := newUser(t, s, "ra"), newUser(t, s, "rb")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "durable"})
	must(t, "CreateRoom", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	must(t, "join", err)
	const n = 30
	var ids []id.EventID
	for i := range n {
		cli := alice
		if i%2 == 1 {
			cli = bob
		}
		res, err := cli.SendText(ctx, room.RoomID, fmt.Sprintf("m%d", i))
		must(t, "SendText", err)
		ids = append(ids, res.EventID)
	}
	topic, err := alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]string{"topic": "last word"})
	must(t, "topic", err)
	// More messages go out while the SIGTERM arrives: every one the server
	// acknowledged must survive, whatever happened to the ones in flight.
	p := s.procs["axon"]
	acked := make(chan id.EventID, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			res, err := bob.SendText(ctx, room.RoomID, fmt.Sprintf("inflight %d", i))
			if err != nil {
				return
			}
			acked <- res.EventID
		}
	}()
	for range 5 {
		ids = append(ids, <-acked)
	}
	stopStart := time.Now()
	p.stop(15) // SIGTERM
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
	t.Logf("SIGTERM to exit: %s", time.Since(stopStart))
	// Requests in flight at the SIGTERM finish before the listener closes:
	// no shutdown step runs out of time waiting for them.
	if l := p.log(); strings.Contains(l, "shutdown step failed") {
		t.Errorf("shutdown under load: %s", l[strings.Index(l, "shutdown step failed"):])
	}
	<-done
	close(acked)
	inflight := 5
	for id := range acked {
		ids = append(ids, id)
		inflight++
	}
	t.Logf("%d messages acknowledged while the SIGTERM arrived", inflight)
	p.start()
	waitHTTP(t, s.URL+"/_matrix/client/versions")
	t.Logf("restart to first /versions: %s", time.Since(p.started))

	full, err := bob.FullStateEvent(ctx, room.RoomID, event.StateTopic, "")
	if err != nil || full.ID != topic.EventID {
		t.Fatalf("topic after restart = %+v, %v", full, err)
	}
	jm, err := alice.JoinedMembers(ctx, room.RoomID)
	if err != nil || len(jm.Joined) != 2 {
		t.Fatalf("JoinedMembers after restart = %+v, %v", jm, err)
	}
	// The syncapi catches up from the log: wait until it has, then every
	// message must be there.
	var r *mautrix.RespSync
	waitFor(t, 15*time.Second, func() error {
		var err error
		r, err = bob.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":100}}}`, false, event.PresenceOffline)
		if err != nil {
			return err
		}
		got := map[id.EventID]bool{}
		for _, e := range messages(r, room.RoomID) {
			got[e.ID] = true
		}
		for i, id := range ids {
			if !got[id] {
				return fmt.Errorf("message m%d (%s) missing after restart", i, id)
			}
		}
		return nil
	})
	// The room keeps working: a new message after the restart reaches bob.
	after, err := alice.SendText(ctx, room.RoomID, "after restart")
	must(t, "SendText after restart", err)
	syncUntil(t, bob, r.NextBatch, func(r *mautrix.RespSync) error {
		for _, e := range messages(r, room.RoomID) {
			if e.ID == after.EventID {
				return nil
			}
		}
		return fmt.Errorf("message after restart not synced")
	})
}
