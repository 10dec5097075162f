package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestUnreadAndProfileMonolith(t *testing.T) {
	onBothEngines(t, unreadAndProfile)
}

func TestUnreadAndProfilePolylith(t *testing.T) {
	unreadAndProfile(t, startPolylith(t).server)
}

// unreadCounts is bob's unread_notifications of a room in a sync response
// (nil when the room or the counts are absent).
func unreadCounts(r *mautrix.RespSync, room id.RoomID) *mautrix.UnreadNotificationCounts {
	if jr := r.Rooms.Join[room]; jr != nil {
		return jr.UnreadNotifications
	}
	return nil
}

// waitUnread syncs from since until bob's counts in room are (n, h) and,
// if seen is set, that event is in the timeline too: the counts and the
// events reach the syncapi on different paths, and a receipt needs the
// event stored there.
func waitUnread(t *testing.T, cli *mautrix.Client, since string, room id.RoomID, n, h int, seen ...id.EventID) *mautrix.RespSync {
	t.Helper()
	return syncUntil(t, cli, since, func(r *mautrix.RespSync) error {
		c := unreadCounts(r, room)
		if c == nil || c.NotificationCount != n || c.HighlightCount != h {
			return fmt.Errorf("unread_notifications = %+v, want %d/%d", c, n, h)
		}
		for _, want := range seen {
			found := false
			for _, ev := range r.Rooms.Join[room].Timeline.Events {
				found = found || ev.ID == want
			}
			if !found {
				return fmt.Errorf("event %s not synced yet", want)
			}
		}
		return nil
	})
}

// unreadAndProfile: alice's messages notify (and one highlights) bob; his
// read receipts (public, private, threaded) bring /sync's
// unread_notifications down; then alice's display name change reaches
// bob as a new member event.
func unreadAndProfile(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob := userClient(t, s, "alice"), userClient(t, s, "bob")
	room := publicRoom(t, alice, bob)

	send := func(content map[string]any) id.EventID {
		t.Helper()
		res, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, content)
		must(t, "SendMessageEvent", err)
		return res.EventID
	}
	send(map[string]any{"msgtype": "m.text", "body": "hello"})
	last := send(map[string]any{"msgtype": "m.text", "body": "hey you",
		"m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	// Two members: .m.rule.room_one_to_one notifies, the mention highlights.
	r := waitUnread(t, bob, "", room.RoomID, 2, 1, last)

	must(t, "SendReceipt(m.read)", bob.SendReceipt(ctx, room.RoomID, last, event.ReceiptTypeRead, nil))
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 0, 0)

	last = send(map[string]any{"msgtype": "m.text", "body": "again"})
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 1, 0, last)
	must(t, "SendReceipt(m.read.private)", bob.SendReceipt(ctx, room.RoomID, last, event.ReceiptTypeReadPrivate, nil))
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 0, 0)

	// A thread: its root is in the main timeline, the reply in the thread.
	root := send(map[string]any{"msgtype": "m.text", "body": "root"})
	reply := send(map[string]any{"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": string(root)}})
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 2, 0, root, reply)
	// A receipt in the thread clears the thread only.
	must(t, "SendReceipt(thread)", bob.SendReceipt(ctx, room.RoomID, reply, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: string(root)}))
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 1, 0)
	// A main-timeline receipt on the root clears the rest.
	must(t, "SendReceipt(main)", bob.SendReceipt(ctx, room.RoomID, root, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: "main"}))
	r = waitUnread(t, bob, r.NextBatch, room.RoomID, 0, 0)

	// Profile change → new m.room.member join event with the new profile.
	must(t, "SetDisplayName", alice.SetDisplayName(ctx, "Alice Liddell"))
	must(t, "SetAvatarURL", alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: s.ServerName, FileID: "abcdef"}))
	syncUntil(t, bob, r.NextBatch, func(r *mautrix.RespSync) error {
		jr := r.Rooms.Join[room.RoomID]
		if jr == nil {
			return fmt.Errorf("room not in sync")
		}
		for _, ev := range jr.Timeline.Events {
			if ev.Type != event.StateMember || ev.GetStateKey() != string(alice.UserID) {
				continue
			}
			_ = ev.Content.ParseRaw(ev.Type)
			m := ev.Content.AsMember()
			if m.Membership == event.MembershipJoin && m.Displayname == "Alice Liddell" &&
				m.AvatarURL == id.ContentURIString("mxc://"+s.ServerName+"/abcdef") {
				return nil
			}
		}
		return fmt.Errorf("no member event of alice with the new profile yet")
	})
	// The room's member list agrees.
	members, err := bob.JoinedMembers(ctx, room.RoomID)
	must(t, "JoinedMembers", err)
	if m, ok := members.Joined[alice.UserID]; !ok || m.DisplayName != "Alice Liddell" {
		t.Errorf("joined_members[alice] = %+v", members.Joined[alice.UserID])
	}
}

// extraConfig enables registration tokens (one single-use, one expired,
// one unlimited), guests and login tokens.
const extraConfig = `registration:
  requires_token: true
  tokens:
    - token: once
      uses_allowed: 1
    - token: expired
      expires_at: 2020-01-01T00:00:00Z
    - token: many
  guests: true
  login_tokens: true
`

func startExtra(t *testing.T, dsn string) *server {
	t.Helper()
	file := filepath.Join(t.TempDir(), "axon.yaml")
	if err := os.WriteFile(file, []byte(extraConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return startMonolithEnv(t, dsn, "AXON_RATE_LIMITS=false", "AXON_CONFIG="+file)
}

func TestAccountsExtraMonolith(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { accountsExtra(t, startExtra(t, "")) })
	t.Run("postgres", func(t *testing.T) { accountsExtra(t, startExtra(t, storagetest.PostgresDSN(t))) })
}

// TestAccountsExtraPolylith runs the same through the four processes: the
// clientapi answers, the userapi keeps tokens and accounts over its
// internal API, the syncapi checks guests.
func TestAccountsExtraPolylith(t *testing.T) {
	registration, _ := strings.CutPrefix(extraConfig, "registration:\n")
	accountsExtra(t, startPolylithWith(t, registration).server)
}

// TestAccountsExtraOff: the default configuration offers none of it.
func TestAccountsExtraOff(t *testing.T) {
	s := startMonolith(t, "")
	alice := userClient(t, s, "alice")
	for _, tc := range []struct {
		method, path, token, body string
		status                    int
		code                      string
	}{
		{"POST", "/_matrix/client/v3/register?kind=guest", "", `{}`, 403, "M_GUEST_ACCESS_FORBIDDEN"},
		{"GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=abc", "", "", 403, "M_FORBIDDEN"},
		{"POST", "/_matrix/client/v1/login/get_token", alice.AccessToken, `{}`, 400, "M_FORBIDDEN"},
		{"POST", "/_matrix/client/v3/login", "", `{"type":"m.login.token","token":"axl_x"}`, 400, "M_UNKNOWN"},
	} {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		status, resp, _ := do(t, tc.method, s.URL+tc.path, tc.token, body)
		if status != tc.status || !hasErrcode(resp, tc.code) {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, status, resp, tc.status, tc.code)
		}
	}
	status, resp, _ := do(t, "GET", s.URL+"/_matrix/client/v3/login", "", nil)
	if status != 200 || strings.Contains(string(resp), "m.login.token") {
		t.Errorf("GET /login = %d %s, want no m.login.token", status, resp)
	}
	// Open registration without tokens is m.login.dummy.
	status, resp, _ = do(t, "POST", s.URL+"/_matrix/client/v3/register", "", []byte(`{"username":"x1"}`))
	var u uiaBody
	if status != 401 || json.Unmarshal(resp, &u) != nil || len(u.Flows) != 1 || !slices.Equal(u.Flows[0].Stages, []string{"m.login.dummy"}) {
		t.Errorf("register flows = %d %s", status, resp)
	}
}

func accountsExtra(t *testing.T, s *server) {
	ctx := t.Context()
	v1 := s.URL + "/_matrix/client/v1"
	validity := func(tok string) (int, []byte) {
		status, body, _ := do(t, "GET", v1+"/register/m.login.registration_token/validity?token="+url.QueryEscape(tok), "", nil)
		return status, body
	}

	t.Run("registration tokens", func(t *testing.T) {
		for tok, want := range map[string]string{"once": `{"valid":true}`, "many": `{"valid":true}`,
			"expired": `{"valid":false}`, "unknown": `{"valid":false}`} {
			if status, body := validity(tok); status != 200 || string(body) != want {
				t.Errorf("validity(%s) = %d %s, want %s", tok, status, body, want)
			}
		}
		if status, body := validity("bad token!"); status != 400 || !hasErrcode(body, "M_INVALID_PARAM") {
			t.Errorf("validity(bad) = %d %s", status, body)
		}
		if status, body, _ := do(t, "GET", v1+"/register/m.login.registration_token/validity", "", nil); status != 400 || !hasErrcode(body, "M_MISSING_PARAM") {
			t.Errorf("validity() = %d %s", status, body)
		}

		register := func(user string, auth map[string]any) (int, []byte) {
			body := map[string]any{"username": user, "password": "pw-" + user}
			if auth != nil {
				body["auth"] = auth
			}
			raw, _ := json.Marshal(body)
			status, resp, _ := do(t, "POST", s.URL+"/_matrix/client/v3/register", "", raw)
			return status, resp
		}
		status, resp := register("dan", nil)
		var u uiaBody
		if status != 401 || json.Unmarshal(resp, &u) != nil || u.Session == "" || len(u.Flows) != 1 ||
			!slices.Equal(u.Flows[0].Stages, []string{"m.login.registration_token"}) {
			t.Fatalf("register without auth = %d %s, want the token flow", status, resp)
		}
		for _, auth := range []map[string]any{
			{"type": "m.login.dummy", "session": u.Session},
			{"type": "m.login.registration_token", "session": u.Session, "token": "nope"},
			{"type": "m.login.registration_token", "session": u.Session, "token": "expired"},
			{"type": "m.login.registration_token", "session": u.Session},
		} {
			if status, resp := register("dan", auth); status != 401 || !hasErrcode(resp, "M_FORBIDDEN") {
				t.Errorf("register with %v = %d %s, want 401 M_FORBIDDEN", auth, status, resp)
			}
		}
		status, resp = register("dan", map[string]any{"type": "m.login.registration_token", "session": u.Session, "token": "once"})
		if status != 200 || !strings.Contains(string(resp), `"access_token"`) {
			t.Fatalf("register with a token = %d %s", status, resp)
		}
		if status, body := validity("once"); status != 200 || string(body) != `{"valid":false}` {
			t.Errorf("validity(once) after its use = %d %s", status, body)
		}
		if status, resp := register("erin", map[string]any{"type": "m.login.registration_token", "token": "once"}); status != 401 || !hasErrcode(resp, "M_FORBIDDEN") {
			t.Errorf("second use of a single-use token = %d %s", status, resp)
		}
		for _, user := range []string{"erin", "fay"} {
			if status, resp := register(user, map[string]any{"type": "m.login.registration_token", "token": "many"}); status != 200 {
				t.Errorf("register %s with an unlimited token = %d %s", user, status, resp)
			}
		}
	})

	t.Run("login tokens", func(t *testing.T) {
		status, resp, _ := do(t, "GET", s.URL+"/_matrix/client/v3/login", "", nil)
		if status != 200 || !strings.Contains(string(resp), `{"get_login_token":true,"type":"m.login.token"}`) {
			t.Fatalf("GET /login = %d %s", status, resp)
		}
		reg := registerShared(t, s, "gina", "pw-gina", false)
		cli, err := mautrix.NewClient(s.URL, id.UserID(reg.UserID), reg.AccessToken)
		must(t, "NewClient", err)
		caps, err := cli.Capabilities(ctx)
		if err != nil || !caps.GetLoginToken.IsEnabled() {
			t.Fatalf("m.get_login_token = %+v, %v", caps.GetLoginToken, err)
		}
		status, data := passwordAuth(t, s, "POST", "/_matrix/client/v1/login/get_token", reg.AccessToken, "gina", "pw-gina", map[string]any{})
		var lt struct {
			LoginToken  string `json:"login_token"`
			ExpiresInMS int64  `json:"expires_in_ms"`
		}
		if status != 200 || json.Unmarshal(data, &lt) != nil || lt.LoginToken == "" || lt.ExpiresInMS != 120000 {
			t.Fatalf("get_token = %d %s", status, data)
		}
		login := fmt.Sprintf(`{"type":"m.login.token","token":%q,"initial_device_display_name":"new phone"}`, lt.LoginToken)
		status, data, _ = do(t, "POST", s.URL+"/_matrix/client/v3/login", "", []byte(login))
		var res struct {
			UserID      string `json:"user_id"`
			AccessToken string `json:"access_token"`
			DeviceID    string `json:"device_id"`
		}
		if status != 200 || json.Unmarshal(data, &res) != nil || res.UserID != reg.UserID || res.AccessToken == "" || res.DeviceID == reg.DeviceID {
			t.Fatalf("m.login.token = %d %s", status, data)
		}
		// Single use.
		if status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v3/login", "", []byte(login)); status != 403 || !hasErrcode(data, "M_FORBIDDEN") {
			t.Errorf("second m.login.token = %d %s, want 403", status, data)
		}
		if status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v3/login", "", []byte(`{"type":"m.login.token"}`)); status != 400 || !hasErrcode(data, "M_MISSING_PARAM") {
			t.Errorf("m.login.token without token = %d %s", status, data)
		}
	})

	t.Run("guests", func(t *testing.T) {
		// Everything but initial_device_display_name is ignored for guests.
		status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v3/register?kind=guest", "",
			[]byte(`{"initial_device_display_name":"guest dev","device_id":"MYDEV","inhibit_login":true,"username":"notme"}`))
		var g struct {
			UserID      string `json:"user_id"`
			AccessToken string `json:"access_token"`
			DeviceID    string `json:"device_id"`
		}
		if status != 200 || json.Unmarshal(data, &g) != nil || g.AccessToken == "" || g.DeviceID == "" || g.DeviceID == "MYDEV" ||
			strings.HasPrefix(g.UserID, "@notme:") {
			t.Fatalf("guest register = %d %s", status, data)
		}
		if status, data, _ := do(t, "GET", s.URL+"/_matrix/client/v3/devices/"+g.DeviceID, g.AccessToken, nil); status != 200 ||
			!strings.Contains(string(data), `"display_name":"guest dev"`) {
			t.Errorf("guest device = %d %s", status, data)
		}
		guest, err := mautrix.NewClient(s.URL, id.UserID(g.UserID), g.AccessToken)
		must(t, "NewClient", err)
		if status, data, _ := do(t, "GET", s.URL+"/_matrix/client/v3/account/whoami", g.AccessToken, nil); status != 200 || !strings.Contains(string(data), `"is_guest":true`) {
			t.Fatalf("guest whoami = %d %s", status, data)
		}
		alice := userClient(t, s, "alice")
		closed, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "CreateRoom", err)
		open, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateGuestAccess, StateKey: new(string), Content: event.Content{Raw: map[string]any{"guest_access": "can_join"}}}}})
		must(t, "CreateRoom(can_join)", err)

		_, err = guest.JoinRoomByID(ctx, closed.RoomID)
		mustErr(t, "guest join without can_join", err, "M_GUEST_ACCESS_FORBIDDEN")
		_, err = guest.JoinRoomByID(ctx, open.RoomID)
		must(t, "guest join with can_join", err)
		_, err = guest.SendText(ctx, open.RoomID, "hi from a guest")
		must(t, "guest send", err)
		must(t, "guest set displayname", guest.SetDisplayName(ctx, "Visitor"))
		err = guest.SetAvatarURL(ctx, id.ContentURI{Homeserver: s.ServerName, FileID: "x"})
		mustErr(t, "guest set avatar", err, "M_GUEST_ACCESS_FORBIDDEN")
		_, err = guest.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		mustErr(t, "guest createRoom", err, "M_GUEST_ACCESS_FORBIDDEN")
		_, err = guest.Capabilities(ctx)
		mustErr(t, "guest capabilities", err, "M_GUEST_ACCESS_FORBIDDEN")
		if status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v1/login/get_token", g.AccessToken, []byte(`{}`)); status != 403 || !hasErrcode(data, "M_GUEST_ACCESS_FORBIDDEN") {
			t.Errorf("guest get_token = %d %s", status, data)
		}
		// A guest syncs and sees the room it joined, with its message.
		syncUntil(t, guest, "", func(r *mautrix.RespSync) error {
			jr := r.Rooms.Join[open.RoomID]
			if jr == nil {
				return fmt.Errorf("room not in the guest's sync")
			}
			for _, ev := range jr.Timeline.Events {
				if ev.Type == event.EventMessage && ev.Sender == guest.UserID {
					return nil
				}
			}
			return fmt.Errorf("no guest message in the timeline")
		})
		// Of the syncapi's endpoints a guest may read messages, not type or
		// send receipts (guest access module).
		room := url.PathEscape(string(open.RoomID))
		if status, data, _ := do(t, "GET", s.URL+"/_matrix/client/v3/rooms/"+room+"/messages?dir=b", g.AccessToken, nil); status != 200 {
			t.Errorf("guest /messages = %d %s", status, data)
		}
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/rooms/" + room + "/typing/" + url.PathEscape(g.UserID), `{"typing":true,"timeout":1000}`},
			{"POST", "/rooms/" + room + "/read_markers", `{}`},
			{"PUT", "/presence/" + url.PathEscape(g.UserID) + "/status", `{"presence":"online"}`},
		} {
			if status, data, _ := do(t, c.method, s.URL+"/_matrix/client/v3"+c.path, g.AccessToken, []byte(c.body)); status != 403 || !hasErrcode(data, "M_GUEST_ACCESS_FORBIDDEN") {
				t.Errorf("guest %s %s = %d %s", c.method, c.path, status, data)
			}
		}
	})

	t.Run("guest access withdrawn", func(t *testing.T) {
		owner, member := userClient(t, s, "gwen"), userClient(t, s, "hank")
		guest, _ := registerGuest(t, s)
		room, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateGuestAccess, StateKey: new(string), Content: event.Content{Raw: map[string]any{"guest_access": "can_join"}}}}})
		must(t, "CreateRoom(can_join)", err)
		_, err = guest.JoinRoomByID(ctx, room.RoomID)
		must(t, "guest join", err)
		_, err = member.JoinRoomByID(ctx, room.RoomID)
		must(t, "member join", err)
		joined := syncUntil(t, guest, "", func(r *mautrix.RespSync) error {
			if r.Rooms.Join[room.RoomID] == nil {
				return fmt.Errorf("room not joined in the guest's sync yet")
			}
			return nil
		})
		// Another state key is not the room's guest access: nobody leaves.
		_, err = owner.SendStateEvent(ctx, room.RoomID, event.StateGuestAccess, "other", map[string]any{"guest_access": "forbidden"})
		must(t, "guest_access with a state key", err)
		members := func() []id.UserID {
			t.Helper()
			res, err := owner.JoinedMembers(ctx, room.RoomID)
			must(t, "JoinedMembers", err)
			ids := make([]id.UserID, 0, len(res.Joined))
			for u := range res.Joined {
				ids = append(ids, u)
			}
			slices.Sort(ids)
			return ids
		}
		all := []id.UserID{owner.UserID, member.UserID, guest.UserID}
		slices.Sort(all)
		if got := members(); !slices.Equal(got, all) {
			t.Fatalf("joined members after an unrelated state key = %v, want %v", got, all)
		}

		_, err = owner.SendStateEvent(ctx, room.RoomID, event.StateGuestAccess, "", map[string]any{"guest_access": "forbidden"})
		must(t, "withdraw guest access", err)
		// The guest has left by the time the change is answered; the
		// full member stays.
		want := []id.UserID{owner.UserID, member.UserID}
		slices.Sort(want)
		if got := members(); !slices.Equal(got, want) {
			t.Fatalf("joined members after guest access was withdrawn = %v, want %v", got, want)
		}
		syncUntil(t, guest, joined.NextBatch, func(r *mautrix.RespSync) error {
			lr := r.Rooms.Leave[room.RoomID]
			if lr == nil {
				return fmt.Errorf("room not under leave in the guest's sync")
			}
			for _, ev := range lr.Timeline.Events {
				if ev.Type == event.StateMember && ev.GetStateKey() == string(guest.UserID) && ev.Sender == guest.UserID &&
					ev.Content.Raw["membership"] == "leave" {
					return nil
				}
			}
			return fmt.Errorf("no leave of the guest in the timeline %+v", lr.Timeline.Events)
		})
		_, err = guest.JoinRoomByID(ctx, room.RoomID)
		mustErr(t, "guest rejoin after withdrawal", err, "M_GUEST_ACCESS_FORBIDDEN")

		// can_join again: the guest may come back; withdrawing by redacting
		// the event (which strips guest_access) sends it away again.
		ev, err := owner.SendStateEvent(ctx, room.RoomID, event.StateGuestAccess, "", map[string]any{"guest_access": "can_join"})
		must(t, "restore guest access", err)
		_, err = guest.JoinRoomByID(ctx, room.RoomID)
		must(t, "guest rejoin after can_join", err)
		_, err = owner.RedactEvent(ctx, room.RoomID, ev.EventID)
		must(t, "redact guest access", err)
		if got := members(); !slices.Equal(got, want) {
			t.Fatalf("joined members after the guest access event was redacted = %v, want %v", got, want)
		}
	})

	t.Run("guest upgrade", func(t *testing.T) {
		guest, g := registerGuest(t, s)
		local := id.UserID(g.UserID).Localpart()
		other := userClient(t, s, "ivan")
		register := func(body map[string]any) (int, []byte) {
			t.Helper()
			raw, _ := json.Marshal(body)
			status, resp, _ := do(t, "POST", s.URL+"/_matrix/client/v3/register", "", raw)
			return status, resp
		}
		for _, tc := range []struct {
			name   string
			body   map[string]any
			status int
			code   string
		}{
			{"full user's token", map[string]any{"guest_access_token": other.AccessToken, "username": "ivan", "password": "x"}, 403, "M_FORBIDDEN"},
			{"unknown token", map[string]any{"guest_access_token": "syt_nope", "username": local, "password": "x"}, 403, "M_FORBIDDEN"},
			{"no username", map[string]any{"guest_access_token": g.AccessToken, "password": "x"}, 400, "M_MISSING_PARAM"},
			{"another username", map[string]any{"guest_access_token": g.AccessToken, "username": "someone_else", "password": "x"}, 400, "M_INVALID_USERNAME"},
		} {
			if status, resp := register(tc.body); status != tc.status || !hasErrcode(resp, tc.code) {
				t.Errorf("upgrade with %s = %d %s, want %d %s", tc.name, status, resp, tc.status, tc.code)
			}
		}
		// User-interactive auth applies as to any registration.
		body := map[string]any{"guest_access_token": g.AccessToken, "username": local, "password": "pw-upgraded"}
		status, resp := register(body)
		var u uiaBody
		if status != 401 || json.Unmarshal(resp, &u) != nil || u.Session == "" {
			t.Fatalf("upgrade without auth = %d %s, want 401 with a session", status, resp)
		}
		body["auth"] = map[string]any{"type": "m.login.registration_token", "session": u.Session, "token": "many"}
		status, resp = register(body)
		var up struct {
			UserID      string `json:"user_id"`
			AccessToken string `json:"access_token"`
		}
		if status != 200 || json.Unmarshal(resp, &up) != nil || up.UserID != g.UserID || up.AccessToken == "" {
			t.Fatalf("upgrade = %d %s, want the guest's user id %s", status, resp, g.UserID)
		}
		// No longer a guest: the token cannot upgrade twice.
		delete(body, "auth")
		if status, resp := register(body); status != 403 || !hasErrcode(resp, "M_FORBIDDEN") {
			t.Errorf("second upgrade = %d %s, want 403", status, resp)
		}

		status, resp, _ = do(t, "POST", s.URL+"/_matrix/client/v3/login", "",
			[]byte(fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":%q},"password":"pw-upgraded"}`, local)))
		if status != 200 || !strings.Contains(string(resp), `"user_id":"`+g.UserID+`"`) {
			t.Fatalf("password login after upgrade = %d %s", status, resp)
		}
		for name, tok := range map[string]string{"old guest token": g.AccessToken, "new token": up.AccessToken} {
			if status, data, _ := do(t, "GET", s.URL+"/_matrix/client/v3/account/whoami", tok, nil); status != 200 ||
				!strings.Contains(string(data), `"is_guest":false`) || !strings.Contains(string(data), g.UserID) {
				t.Errorf("whoami with the %s = %d %s", name, status, data)
			}
		}
		// The guest restrictions are gone: it creates rooms, joins rooms
		// without can_join and sets its avatar.
		_, err := guest.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		must(t, "createRoom after upgrade", err)
		closed, err := other.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "CreateRoom", err)
		_, err = guest.JoinRoomByID(ctx, closed.RoomID)
		must(t, "join without can_join after upgrade", err)
		must(t, "set avatar after upgrade", guest.SetAvatarURL(ctx, id.ContentURI{Homeserver: s.ServerName, FileID: "x"}))
	})
}

type guestRegistration struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
}

// registerGuest registers a guest account and returns a client for it.
func registerGuest(t *testing.T, s *server) (*mautrix.Client, guestRegistration) {
	t.Helper()
	status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v3/register?kind=guest", "", []byte(`{}`))
	var g guestRegistration
	if status != 200 || json.Unmarshal(data, &g) != nil || g.AccessToken == "" {
		t.Fatalf("guest register = %d %s", status, data)
	}
	cli, err := mautrix.NewClient(s.URL, id.UserID(g.UserID), g.AccessToken)
	must(t, "NewClient", err)
	return cli, g
}
