package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestRoomsMonolith(t *testing.T) {
	onBothEngines(t, roomsScenario)
}

// userClient registers a user with the shared secret and returns a client.
func userClient(t *testing.T, s *server, name string) *mautrix.Client {
	t.Helper()
	reg := registerShared(t, s, name, "password-"+name, false)
	cli, err := mautrix.NewClient(s.URL, id.UserID(reg.UserID), reg.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// mustErr fails unless err is a Matrix error with code.
func mustErr(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !isErrcode(err, code) {
		t.Fatalf("%s = %v, want %s", what, err, code)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v", what, err)
	}
}

// roomsScenario walks the rooms area with three users: membership with
// its power rules, state, redactions, aliases, the directory and reports.
func roomsScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob, carol := userClient(t, s, "alice"), userClient(t, s, "bob"), userClient(t, s, "carol")
	lobbyAlias := id.RoomAlias("#lobby:" + s.ServerName)

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Lobby", RoomAliasName: "lobby", Visibility: "public"})
	must(t, "CreateRoom(lobby)", err)
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "lobby"})
	mustErr(t, "CreateRoom(taken alias)", err, "M_ROOM_IN_USE")
	res, err := bob.ResolveAlias(ctx, lobbyAlias)
	if err != nil || res.RoomID != room.RoomID {
		t.Fatalf("ResolveAlias = %+v, %v", res, err)
	}
	var ca struct {
		Alias string `json:"alias"`
	}
	must(t, "StateEvent(canonical_alias)", alice.StateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", &ca))
	if ca.Alias != string(lobbyAlias) {
		t.Fatalf("canonical alias = %q", ca.Alias)
	}

	// Invite-only: bob needs an invite.
	_, err = bob.JoinRoom(ctx, string(lobbyAlias), nil)
	mustErr(t, "JoinRoom(invite only)", err, "M_FORBIDDEN")
	_, err = bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	mustErr(t, "InviteUser(by a non-member)", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID, Reason: "welcome"})
	must(t, "InviteUser(bob)", err)
	joined, err := bob.JoinRoom(ctx, string(lobbyAlias), nil)
	if err != nil || joined.RoomID != room.RoomID {
		t.Fatalf("JoinRoom(alias) = %+v, %v", joined, err)
	}
	jr, err := bob.JoinedRooms(ctx)
	if err != nil || len(jr.JoinedRooms) != 1 || jr.JoinedRooms[0] != room.RoomID {
		t.Fatalf("JoinedRooms(bob) = %+v, %v", jr, err)
	}
	jm, err := alice.JoinedMembers(ctx, room.RoomID)
	if err != nil || len(jm.Joined) != 2 {
		t.Fatalf("JoinedMembers = %+v, %v", jm, err)
	}
	_, err = carol.JoinedMembers(ctx, room.RoomID)
	mustErr(t, "JoinedMembers(stranger)", err, "M_FORBIDDEN")

	// State: power levels decide who may change what.
	_, err = bob.SendStateEvent(ctx, room.RoomID, event.StateRoomName, "", map[string]string{"name": "Bob's"})
	mustErr(t, "SendStateEvent(name by bob)", err, "M_FORBIDDEN")
	topic, err := alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]string{"topic": "tea"})
	must(t, "SendStateEvent(topic)", err)
	var tc struct {
		Topic string `json:"topic"`
	}
	must(t, "StateEvent(topic)", bob.StateEvent(ctx, room.RoomID, event.StateTopic, "", &tc))
	if tc.Topic != "tea" {
		t.Fatalf("topic = %q", tc.Topic)
	}
	full, err := bob.FullStateEvent(ctx, room.RoomID, event.StateTopic, "")
	if err != nil || full.ID != topic.EventID || full.Sender != alice.UserID {
		t.Fatalf("FullStateEvent(topic) = %+v, %v", full, err)
	}
	// The empty state key may be written with or without the trailing slash; %2F survives routing.
	stateURL := s.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String()) + "/state/m.room.topic/"
	if status, body, _ := do(t, http.MethodGet, stateURL, bob.AccessToken, nil); status != 200 || !isTopic(body, "tea") {
		t.Fatalf("GET state with a trailing slash = %d %s", status, body)
	}
	if status, body, _ := do(t, http.MethodPut, stateURL+"a%2Fb", alice.AccessToken, []byte(`{"x":1}`)); status != 200 {
		t.Fatalf("PUT state key a/b = %d %s", status, body)
	}
	if status, body, _ := do(t, http.MethodGet, stateURL+"a%2Fb", bob.AccessToken, nil); status != 200 || string(body) != `{"x":1}` {
		t.Fatalf("GET state key a/b = %d %s", status, body)
	}
	if status, body, _ := do(t, http.MethodPut, stateURL, alice.AccessToken, []byte(`{`)); status != 400 || !isCode(body, "M_NOT_JSON") {
		t.Fatalf("PUT state bad json = %d %s", status, body)
	}
	if status, body, _ := do(t, http.MethodPut, stateURL, alice.AccessToken, []byte(`[1]`)); status != 400 || !isCode(body, "M_BAD_JSON") {
		t.Fatalf("PUT state array = %d %s", status, body)
	}
	err = bob.StateEvent(ctx, room.RoomID, event.NewEventType("m.nothing"), "", &tc)
	mustErr(t, "StateEvent(absent)", err, "M_NOT_FOUND")
	err = carol.StateEvent(ctx, room.RoomID, event.StateTopic, "", &tc)
	mustErr(t, "StateEvent(stranger)", err, "M_FORBIDDEN")
	st, err := bob.State(ctx, room.RoomID)
	if err != nil || st[event.StateMember][bob.UserID.String()] == nil || st[event.StateCreate][""] == nil {
		t.Fatalf("State = %v, %v", st, err)
	}
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", map[string]string{"alias": "#nope:" + s.ServerName})
	mustErr(t, "canonical alias to a missing alias", err, "M_BAD_ALIAS")
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", map[string]string{"alias": "not an alias"})
	mustErr(t, "canonical alias malformed", err, "M_INVALID_PARAM")

	// Redactions: own events always, others' only with the redact level.
	msg, err := bob.SendText(ctx, room.RoomID, "hello")
	must(t, "SendText", err)
	_, err = bob.RedactEvent(ctx, room.RoomID, topic.EventID)
	mustErr(t, "RedactEvent(alice's topic by bob)", err, "M_FORBIDDEN")
	own, err := bob.RedactEvent(ctx, room.RoomID, msg.EventID, mautrix.ReqRedact{TxnID: "r1"})
	must(t, "RedactEvent(own)", err)
	again, err := bob.RedactEvent(ctx, room.RoomID, msg.EventID, mautrix.ReqRedact{TxnID: "r1"})
	if err != nil || again.EventID != own.EventID {
		t.Fatalf("RedactEvent(same txn) = %+v, %v; want %s", again, err, own.EventID)
	}
	_, err = alice.RedactEvent(ctx, room.RoomID, "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	mustErr(t, "RedactEvent(unknown event)", err, "M_NOT_FOUND")
	_, err = alice.RedactEvent(ctx, room.RoomID, topic.EventID, mautrix.ReqRedact{Reason: "spoiler"})
	must(t, "RedactEvent(topic by alice)", err)
	full, err = bob.FullStateEvent(ctx, room.RoomID, event.StateTopic, "")
	if err != nil || len(full.Content.Raw) != 0 || full.Unsigned.RedactedBecause == nil {
		t.Fatalf("redacted topic = %+v (content %v), %v", full, full.Content.Raw, err)
	}

	// Kick, ban, unban, forget.
	_, err = bob.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: alice.UserID})
	mustErr(t, "KickUser(alice by bob)", err, "M_FORBIDDEN")
	_, err = alice.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: carol.UserID})
	mustErr(t, "KickUser(non-member)", err, "M_FORBIDDEN")
	_, err = alice.KickUser(ctx, room.RoomID, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "bye"})
	must(t, "KickUser(bob)", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "JoinRoom(after kick, invite only)", err, "M_FORBIDDEN")
	// bob left: he sees the state as it was when he was kicked.
	must(t, "StateEvent(after kick)", bob.StateEvent(ctx, room.RoomID, event.StateRoomName, "", &tc))
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]string{"topic": "after bob"})
	must(t, "SendStateEvent(topic 2)", err)
	tc.Topic = ""
	if err := bob.StateEvent(ctx, room.RoomID, event.StateTopic, "", &tc); err != nil || tc.Topic != "" {
		t.Fatalf("bob's topic after leaving = %q, %v; want the redacted one from before", tc.Topic, err)
	}
	_, err = alice.ForgetRoom(ctx, room.RoomID)
	mustErr(t, "ForgetRoom(joined)", err, "M_UNKNOWN")
	_, err = bob.ForgetRoom(ctx, room.RoomID)
	must(t, "ForgetRoom(bob)", err)

	_, err = alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "spam"})
	must(t, "BanUser(carol)", err)
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	mustErr(t, "InviteUser(banned)", err, "M_FORBIDDEN")
	_, err = carol.JoinRoomByID(ctx, room.RoomID)
	mustErr(t, "JoinRoom(banned)", err, "M_FORBIDDEN")
	_, err = alice.UnbanUser(ctx, room.RoomID, &mautrix.ReqUnbanUser{UserID: carol.UserID})
	must(t, "UnbanUser(carol)", err)
	_, err = alice.UnbanUser(ctx, room.RoomID, &mautrix.ReqUnbanUser{UserID: carol.UserID})
	mustErr(t, "UnbanUser(not banned)", err, "M_FORBIDDEN")

	members, err := alice.Members(ctx, room.RoomID, mautrix.ReqMembers{NotMembership: event.MembershipLeave})
	if err != nil || len(members.Chunk) != 1 || members.Chunk[0].GetStateKey() != alice.UserID.String() {
		t.Fatalf("Members(not leave) = %+v, %v", members, err)
	}
	members, err = alice.Members(ctx, room.RoomID, mautrix.ReqMembers{Membership: event.MembershipLeave})
	if err != nil || len(members.Chunk) != 2 { // bob (kicked) and carol (unbanned)
		t.Fatalf("Members(leave) = %d, %v; want 2", len(members.Chunk), err)
	}

	// Leave, rejoin, leave of a public room; knocking on a knock room.
	pub, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Public square", Visibility: "public"})
	must(t, "CreateRoom(public)", err)
	_, err = carol.JoinRoomByID(ctx, pub.RoomID)
	must(t, "JoinRoomByID(public)", err)
	_, err = carol.LeaveRoom(ctx, pub.RoomID)
	must(t, "LeaveRoom", err)
	_, err = carol.LeaveRoom(ctx, pub.RoomID)
	must(t, "LeaveRoom(again)", err)
	_, err = bob.LeaveRoom(ctx, pub.RoomID)
	mustErr(t, "LeaveRoom(never joined)", err, "M_FORBIDDEN")
	knock, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Knock knock",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}})
	must(t, "CreateRoom(knock)", err)
	_, err = carol.KnockRoom(ctx, knock.RoomID.String(), &mautrix.ReqKnockRoom{Reason: "let me in"})
	must(t, "KnockRoom", err)
	_, err = carol.KnockRoom(ctx, room.RoomID.String(), nil)
	mustErr(t, "KnockRoom(invite-only room)", err, "M_FORBIDDEN")
	_, err = alice.InviteUser(ctx, knock.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID})
	must(t, "InviteUser(knocker)", err)
	_, err = carol.JoinRoomByID(ctx, knock.RoomID)
	must(t, "JoinRoom(after knock and invite)", err)

	// Unknown rooms and bad ids.
	_, err = bob.JoinRoomByID(ctx, id.RoomID("!unknown:"+s.ServerName))
	mustErr(t, "JoinRoom(unknown)", err, "M_NOT_FOUND")
	_, err = bob.JoinRoom(ctx, "#somewhere:remote.example", nil)
	mustErr(t, "JoinRoom(remote alias)", err, "M_NOT_FOUND")
	status, body, _ := do(t, http.MethodPost, s.URL+"/_matrix/client/v3/join/"+url.PathEscape("not-a-room"), bob.AccessToken, []byte(`{}`))
	if status != 400 || !json.Valid(body) {
		t.Fatalf("join bad id = %d %s", status, body)
	}
	status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/invite", alice.AccessToken, []byte(`{"user_id":5}`))
	if status != 400 || !json.Valid(body) {
		t.Fatalf("invite bad body = %d %s", status, body)
	}

	// Aliases.
	side := id.RoomAlias("#side:" + s.ServerName)
	_, err = bob.CreateAlias(ctx, side, room.RoomID)
	mustErr(t, "CreateAlias(non-member)", err, "M_FORBIDDEN")
	_, err = alice.CreateAlias(ctx, side, room.RoomID)
	must(t, "CreateAlias", err)
	var he mautrix.HTTPError
	if _, err = alice.CreateAlias(ctx, side, room.RoomID); !asHTTPError(err, &he) || he.Response == nil || he.Response.StatusCode != 409 {
		t.Fatalf("CreateAlias(again) = %v, want 409", err)
	}
	aliases, err := alice.GetAliases(ctx, room.RoomID)
	if err != nil || len(aliases.Aliases) != 2 {
		t.Fatalf("GetAliases = %+v, %v", aliases, err)
	}
	_, err = carol.GetAliases(ctx, room.RoomID)
	if err == nil {
		t.Fatalf("GetAliases(carol, left) succeeded")
	}
	_, err = alice.SendStateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", map[string]any{"alias": lobbyAlias, "alt_aliases": []id.RoomAlias{side}})
	must(t, "canonical alias with alt_aliases", err)
	_, err = carol.DeleteAlias(ctx, side)
	mustErr(t, "DeleteAlias(by a non-member)", err, "M_FORBIDDEN")
	_, err = alice.DeleteAlias(ctx, side)
	must(t, "DeleteAlias", err)
	_, err = alice.ResolveAlias(ctx, side)
	mustErr(t, "ResolveAlias(deleted)", err, "M_NOT_FOUND")
	_, err = alice.CreateAlias(ctx, id.RoomAlias("#x:other.example"), room.RoomID)
	mustErr(t, "CreateAlias(other server)", err, "M_INVALID_PARAM")

	// The public room directory, paged.
	for i := range 3 {
		_, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("Extra %d", i), Visibility: "public"})
		must(t, "CreateRoom(extra)", err)
	}
	seen := map[id.RoomID]bool{}
	since := ""
	for page := 0; page < 10; page++ {
		res, err := carol.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 2, Since: since})
		if err != nil || res.TotalRoomCountEstimate != 5 || len(res.Chunk) > 2 {
			t.Fatalf("PublicRooms(page %d) = %+v, %v", page, res, err)
		}
		for _, r := range res.Chunk {
			if seen[r.RoomID] {
				t.Fatalf("room %s on two pages", r.RoomID)
			}
			seen[r.RoomID] = true
		}
		if res.NextBatch == "" {
			break
		}
		since = res.NextBatch
	}
	if len(seen) != 5 || !seen[room.RoomID] {
		t.Fatalf("directory pages covered %d rooms, want 5", len(seen))
	}
	status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/publicRooms", carol.AccessToken,
		[]byte(`{"limit":10,"filter":{"generic_search_term":"lobby"}}`))
	var filtered mautrix.RespPublicRooms
	if status != 200 || json.Unmarshal(body, &filtered) != nil || len(filtered.Chunk) != 1 || filtered.Chunk[0].RoomID != room.RoomID ||
		filtered.Chunk[0].CanonicalAlias != lobbyAlias || filtered.Chunk[0].NumJoinedMembers != 1 {
		t.Fatalf("filtered publicRooms = %d %s", status, body)
	}
	status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/publicRooms", carol.AccessToken, []byte(`{"limit":"x"}`))
	if status != 400 {
		t.Fatalf("publicRooms bad limit = %d %s", status, body)
	}
	visURL := s.URL + "/_matrix/client/v3/directory/list/room/" + url.PathEscape(room.RoomID.String())
	if status, body, _ = do(t, http.MethodGet, visURL, "", nil); status != 200 || string(body) != `{"visibility":"public"}` {
		t.Fatalf("GET visibility = %d %s", status, body)
	}
	if status, body, _ = do(t, http.MethodPut, visURL, bob.AccessToken, []byte(`{"visibility":"private"}`)); status != 403 {
		t.Fatalf("PUT visibility by bob = %d %s", status, body)
	}
	if status, body, _ = do(t, http.MethodPut, visURL, alice.AccessToken, []byte(`{"visibility":"private"}`)); status != 200 {
		t.Fatalf("PUT visibility by alice = %d %s", status, body)
	}
	if res, err := carol.PublicRooms(ctx, &mautrix.ReqPublicRooms{}); err != nil || res.TotalRoomCountEstimate != 4 {
		t.Fatalf("PublicRooms after unpublishing = %+v, %v", res, err)
	}

	// Reports.
	note, err := alice.SendText(ctx, room.RoomID, "report me")
	must(t, "SendText(note)", err)
	must(t, "ReportEvent", alice.ReportEvent(ctx, room.RoomID, note.EventID, "spam"))
	mustErr(t, "ReportEvent(not joined)", bob.ReportEvent(ctx, room.RoomID, note.EventID, "spam"), "M_NOT_FOUND")
	mustErr(t, "ReportEvent(unknown)", alice.ReportEvent(ctx, room.RoomID, "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "spam"), "M_NOT_FOUND")
	must(t, "ReportRoom", bob.ReportRoom(ctx, room.RoomID, "bad room"))

	// Upgrades: the tombstone needs power; the new room takes the state and the aliases.
	upgradeURL := s.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String()) + "/upgrade"
	_, err = bob.JoinRoomByID(ctx, pub.RoomID)
	must(t, "JoinRoom(bob, public)", err)
	if status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(pub.RoomID.String())+"/upgrade",
		bob.AccessToken, []byte(`{"new_version":"12"}`)); status != 403 {
		t.Fatalf("upgrade by bob = %d %s", status, body)
	}
	if status, body, _ = do(t, http.MethodPost, upgradeURL, alice.AccessToken, []byte(`{"new_version":"99"}`)); status != 400 ||
		!json.Valid(body) || !isCode(body, "M_UNSUPPORTED_ROOM_VERSION") {
		t.Fatalf("upgrade to 99 = %d %s", status, body)
	}
	for _, version := range []string{"11", "12"} {
		status, body, _ = do(t, http.MethodPost, upgradeURL, alice.AccessToken, []byte(`{"new_version":"`+version+`"}`))
		var up struct {
			ReplacementRoom id.RoomID `json:"replacement_room"`
		}
		if status != 200 || json.Unmarshal(body, &up) != nil || up.ReplacementRoom == "" {
			t.Fatalf("upgrade to %s = %d %s", version, status, body)
		}
		var tomb struct {
			ReplacementRoom id.RoomID `json:"replacement_room"`
		}
		must(t, "StateEvent(tombstone)", alice.StateEvent(ctx, room.RoomID, event.StateTombstone, "", &tomb))
		if tomb.ReplacementRoom != up.ReplacementRoom {
			t.Fatalf("tombstone = %+v, want %s", tomb, up.ReplacementRoom)
		}
		var create struct {
			RoomVersion string `json:"room_version"`
			Predecessor struct {
				RoomID id.RoomID `json:"room_id"`
			} `json:"predecessor"`
		}
		must(t, "StateEvent(new create)", alice.StateEvent(ctx, up.ReplacementRoom, event.StateCreate, "", &create))
		var name struct {
			Name string `json:"name"`
		}
		must(t, "StateEvent(new name)", alice.StateEvent(ctx, up.ReplacementRoom, event.StateRoomName, "", &name))
		if create.RoomVersion != version || create.Predecessor.RoomID != room.RoomID || name.Name != "Lobby" {
			t.Fatalf("replacement room create %+v name %q", create, name.Name)
		}
		if res, err := carol.ResolveAlias(ctx, lobbyAlias); err != nil || res.RoomID != up.ReplacementRoom {
			t.Fatalf("ResolveAlias after upgrade = %+v, %v", res, err)
		}
		// The replacement room can itself be upgraded.
		room.RoomID = up.ReplacementRoom
		upgradeURL = s.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String()) + "/upgrade"
	}
}

func isCode(body []byte, code string) bool {
	var e struct {
		Code string `json:"errcode"`
	}
	return json.Unmarshal(body, &e) == nil && e.Code == code
}

func TestRoomsPolylith(t *testing.T) {
	roomsScenario(t, startPolylith(t).server)
}

func isTopic(body []byte, topic string) bool {
	var c struct {
		Topic string `json:"topic"`
	}
	return json.Unmarshal(body, &c) == nil && c.Topic == topic
}
