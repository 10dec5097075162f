package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestAccountsMonolith(t *testing.T) {
	onBothEngines(t, accountsPath)
}

func TestAccountsPolylith(t *testing.T) {
	accountsPath(t, startPolylith(t).server)
}

// uiaBody is what a 401 user-interactive auth answer carries.
type uiaBody struct {
	Session string `json:"session"`
	Flows   []struct {
		Stages []string `json:"stages"`
	} `json:"flows"`
	Errcode string `json:"errcode"`
}

// passwordAuth runs a request that needs m.login.password: first without
// auth (401 with the password flow), then with a wrong password (401 with
// M_FORBIDDEN), then with the right one; it returns the final status and body.
func passwordAuth(t *testing.T, s *server, method, path, token, user, password string, body map[string]any) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(body)
	status, data, _ := do(t, method, s.URL+path, token, raw)
	var u uiaBody
	if err := json.Unmarshal(data, &u); status != http.StatusUnauthorized || err != nil || u.Session == "" ||
		len(u.Flows) != 1 || !slices.Equal(u.Flows[0].Stages, []string{"m.login.password"}) {
		t.Fatalf("%s %s without auth = %d %s, want 401 with the password flow", method, path, status, data)
	}
	auth := map[string]any{"type": "m.login.password", "session": u.Session,
		"identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password + "-wrong"}
	body["auth"] = auth
	raw, _ = json.Marshal(body)
	status, data, _ = do(t, method, s.URL+path, token, raw)
	if err := json.Unmarshal(data, &u); status != http.StatusUnauthorized || err != nil || u.Errcode != "M_FORBIDDEN" {
		t.Fatalf("%s %s with a wrong password = %d %s, want 401 M_FORBIDDEN", method, path, status, data)
	}
	auth["password"] = password
	raw, _ = json.Marshal(body)
	status, data, _ = do(t, method, s.URL+path, token, raw)
	return status, data
}

func accountsPath(t *testing.T, s *server) {
	ctx := t.Context()
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "carol", Password: "pw-carol", InitialDeviceDisplayName: "first"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	cli.DeviceID = reg.DeviceID

	t.Run("capabilities", func(t *testing.T) {
		caps, err := cli.Capabilities(ctx)
		if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "12" || len(caps.RoomVersions.Available) != 12 ||
			!caps.ChangePassword.IsEnabled() || caps.ThreePIDChanges.IsEnabled() || caps.GetLoginToken.IsEnabled() {
			t.Fatalf("Capabilities = %+v, %v", caps, err)
		}
	})

	t.Run("profile", func(t *testing.T) {
		room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatalf("CreateRoom: %v", err)
		}
		if err := cli.SetDisplayName(ctx, "Carol C."); err != nil {
			t.Fatalf("SetDisplayName: %v", err)
		}
		// The profile change reaches the rooms the user has joined.
		var member event.MemberEventContent
		if err := cli.StateEvent(ctx, room.RoomID, event.StateMember, string(reg.UserID), &member); err != nil ||
			member.Membership != event.MembershipJoin || member.Displayname != "Carol C." {
			t.Fatalf("member event after SetDisplayName = %+v, %v", member, err)
		}
		if err := cli.SetAvatarURL(ctx, id.ContentURI{Homeserver: s.ServerName, FileID: "avatar1"}); err != nil {
			t.Fatalf("SetAvatarURL: %v", err)
		}
		p, err := cli.GetProfile(ctx, reg.UserID)
		if err != nil || p.DisplayName != "Carol C." || p.AvatarURL.FileID != "avatar1" {
			t.Fatalf("GetProfile = %+v, %v", p, err)
		}
		dn, err := cli.GetDisplayName(ctx, reg.UserID)
		if err != nil || dn.DisplayName != "Carol C." {
			t.Fatalf("GetDisplayName = %+v, %v", dn, err)
		}
		if _, err := cli.GetProfile(ctx, id.UserID("@nobody:"+s.ServerName)); !isErrcode(err, "M_NOT_FOUND") {
			t.Fatalf("GetProfile(nobody) = %v, want M_NOT_FOUND", err)
		}
		for _, tc := range []struct {
			method, path, body, code string
			status                   int
		}{
			{http.MethodPut, "/profile/" + string(reg.UserID) + "/displayname", `{"displayname": 5}`, "M_BAD_JSON", 400},
			{http.MethodPut, "/profile/" + string(reg.UserID) + "/displayname", `{"other": "x"}`, "M_MISSING_PARAM", 400},
			{http.MethodPut, "/profile/" + string(reg.UserID) + "/displayname", `{`, "M_NOT_JSON", 400},
			{http.MethodPut, "/profile/@someone:" + s.ServerName + "/displayname", `{"displayname": "x"}`, "M_FORBIDDEN", 403},
			{http.MethodPut, "/profile/" + string(reg.UserID) + "/org.example.field", `{"org.example.field": "x"}`, "M_FORBIDDEN", 403},
			{http.MethodPut, "/profile/" + string(reg.UserID) + "/Bad-Key", `{"Bad-Key": "x"}`, "M_INVALID_PARAM", 400},
			{http.MethodGet, "/profile/not-a-user", ``, "M_INVALID_PARAM", 400},
		} {
			status, body, _ := do(t, tc.method, s.URL+"/_matrix/client/v3"+tc.path, reg.AccessToken, []byte(tc.body))
			if status != tc.status || !hasErrcode(body, tc.code) {
				t.Errorf("%s %s %s = %d %s, want %d %s", tc.method, tc.path, tc.body, status, body, tc.status, tc.code)
			}
		}
		status, body, _ := do(t, http.MethodDelete, s.URL+"/_matrix/client/v3/profile/"+string(reg.UserID)+"/avatar_url", reg.AccessToken, nil)
		if status != 200 {
			t.Fatalf("DELETE avatar_url = %d %s", status, body)
		}
		if status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/profile/"+string(reg.UserID)+"/avatar_url", "", nil); status != 404 {
			t.Fatalf("GET deleted avatar_url = %d %s, want 404", status, body)
		}
	})

	t.Run("account data and tags", func(t *testing.T) {
		if err := cli.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
			t.Fatalf("SetAccountData: %v", err)
		}
		var got map[string]string
		if err := cli.GetAccountData(ctx, "org.example.settings", &got); err != nil || got["theme"] != "dark" {
			t.Fatalf("GetAccountData = %v, %v", got, err)
		}
		if err := cli.GetAccountData(ctx, "org.example.none", &got); !isErrcode(err, "M_NOT_FOUND") {
			t.Fatalf("GetAccountData(none) = %v, want M_NOT_FOUND", err)
		}
		room := id.RoomID("!someroom:" + s.ServerName)
		if err := cli.SetRoomAccountData(ctx, room, "org.example.room", map[string]any{"n": 1}); err != nil {
			t.Fatalf("SetRoomAccountData: %v", err)
		}
		var rgot map[string]int
		if err := cli.GetRoomAccountData(ctx, room, "org.example.room", &rgot); err != nil || rgot["n"] != 1 {
			t.Fatalf("GetRoomAccountData = %v, %v", rgot, err)
		}
		if err := cli.AddTag(ctx, room, event.RoomTagFavourite, 0.25); err != nil {
			t.Fatalf("AddTag: %v", err)
		}
		if err := cli.AddTag(ctx, room, "u.work", 0.5); err != nil {
			t.Fatalf("AddTag: %v", err)
		}
		if err := cli.RemoveTag(ctx, room, "u.work"); err != nil {
			t.Fatalf("RemoveTag: %v", err)
		}
		tags, err := cli.GetTags(ctx, room)
		order, _ := tags.Tags[event.RoomTagFavourite].Order.Float64()
		if err != nil || len(tags.Tags) != 1 || order != 0.25 {
			t.Fatalf("GetTags = %+v, %v", tags, err)
		}
		base := s.URL + "/_matrix/client/v3/user/" + string(reg.UserID)
		for _, tc := range []struct {
			method, url, body, code string
			status                  int
		}{
			{http.MethodPut, base + "/account_data/m.fully_read", `{}`, "M_BAD_JSON", 405},
			{http.MethodPut, base + "/account_data/x", `[1]`, "M_BAD_JSON", 400},
			{http.MethodPut, base + "/account_data/x", `nope`, "M_NOT_JSON", 400},
			{http.MethodPut, base + "/rooms/not-a-room/account_data/x", `{}`, "M_INVALID_PARAM", 400},
			{http.MethodGet, s.URL + "/_matrix/client/v3/user/@other:" + s.ServerName + "/account_data/x", ``, "M_FORBIDDEN", 403},
			{http.MethodPut, base + "/rooms/" + string(room) + "/tags/u.x", `{"order": "high"}`, "M_BAD_JSON", 400},
		} {
			status, body, _ := do(t, tc.method, tc.url, reg.AccessToken, []byte(tc.body))
			if status != tc.status || !hasErrcode(body, tc.code) {
				t.Errorf("%s %s %s = %d %s, want %d %s", tc.method, tc.url, tc.body, status, body, tc.status, tc.code)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		f, err := cli.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 7}}})
		if err != nil || f.FilterID == "" {
			t.Fatalf("CreateFilter = %+v, %v", f, err)
		}
		status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/user/"+string(reg.UserID)+"/filter/"+f.FilterID, reg.AccessToken, nil)
		var got mautrix.Filter
		if err := json.Unmarshal(body, &got); status != 200 || err != nil || got.Room == nil || got.Room.Timeline.Limit != 7 {
			t.Fatalf("GET filter = %d %s", status, body)
		}
		for _, tc := range []struct {
			body, code string
			status     int
		}{
			{`{"room": {"timeline": {"limit": "ten"}}}`, "M_BAD_JSON", 400},
			{`{"event_format": "xml"}`, "M_BAD_JSON", 400},
			{`{`, "M_NOT_JSON", 400},
		} {
			status, body, _ := do(t, http.MethodPost, s.URL+"/_matrix/client/v3/user/"+string(reg.UserID)+"/filter", reg.AccessToken, []byte(tc.body))
			if status != tc.status || !hasErrcode(body, tc.code) {
				t.Errorf("POST filter %s = %d %s, want %d %s", tc.body, status, body, tc.status, tc.code)
			}
		}
		if status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/user/"+string(reg.UserID)+"/filter/12345", reg.AccessToken, nil); status != 404 {
			t.Fatalf("GET unknown filter = %d %s, want 404", status, body)
		}
	})

	t.Run("3pid", func(t *testing.T) {
		status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/account/3pid", reg.AccessToken, nil)
		if status != 200 || string(body) != `{"threepids":[]}` {
			t.Fatalf("GET 3pid = %d %s", status, body)
		}
		status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/register/email/requestToken", "",
			[]byte(`{"client_secret":"s","email":"a@example.org","send_attempt":1}`))
		if status != 403 || !hasErrcode(body, "M_THREEPID_DENIED") {
			t.Fatalf("register/email/requestToken = %d %s", status, body)
		}
		status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/account/3pid/email/requestToken", "",
			[]byte(`{"client_secret":"s","email":"a@example.org","send_attempt":1}`))
		if status != 400 || !hasErrcode(body, "M_THREEPID_MEDIUM_NOT_SUPPORTED") {
			t.Fatalf("account/3pid/email/requestToken = %d %s", status, body)
		}
	})

	t.Run("devices", func(t *testing.T) {
		second, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw-carol",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}, InitialDeviceDisplayName: "second"})
		if err != nil {
			t.Fatal(err)
		}
		devs, err := cli.GetDevicesInfo(ctx)
		if err != nil || len(devs.Devices) != 2 {
			t.Fatalf("GetDevicesInfo = %+v, %v", devs, err)
		}
		if err := cli.SetDeviceInfo(ctx, second.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "renamed"}); err != nil {
			t.Fatalf("SetDeviceInfo: %v", err)
		}
		d, err := cli.GetDeviceInfo(ctx, second.DeviceID)
		if err != nil || d.DisplayName != "renamed" {
			t.Fatalf("GetDeviceInfo = %+v, %v", d, err)
		}
		if _, err := cli.GetDeviceInfo(ctx, "NOSUCHDEVICE"); !isErrcode(err, "M_NOT_FOUND") {
			t.Fatalf("GetDeviceInfo(unknown) = %v, want M_NOT_FOUND", err)
		}
		status, body := passwordAuth(t, s, http.MethodDelete, "/_matrix/client/v3/devices/"+string(second.DeviceID), reg.AccessToken, "carol", "pw-carol", map[string]any{})
		if status != 200 {
			t.Fatalf("DELETE device = %d %s", status, body)
		}
		if status, _, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/account/whoami", second.AccessToken, nil); status != 401 {
			t.Fatalf("deleted device's token: status %d, want 401", status)
		}
		third, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw-carol",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}})
		if err != nil {
			t.Fatal(err)
		}
		status, body = passwordAuth(t, s, http.MethodPost, "/_matrix/client/v3/delete_devices", reg.AccessToken, "carol", "pw-carol",
			map[string]any{"devices": []string{string(third.DeviceID), "NOSUCHDEVICE"}})
		if status != 200 {
			t.Fatalf("delete_devices = %d %s", status, body)
		}
		if devs, err := cli.GetDevicesInfo(ctx); err != nil || len(devs.Devices) != 1 || devs.Devices[0].DeviceID != reg.DeviceID {
			t.Fatalf("devices after delete = %+v, %v", devs, err)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		status, body, _ := do(t, http.MethodPost, s.URL+"/_matrix/client/v3/login", "", []byte(
			`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"carol"},"password":"pw-carol","refresh_token":true}`))
		var login struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			ExpiresInMS  int64  `json:"expires_in_ms"`
		}
		if err := json.Unmarshal(body, &login); status != 200 || err != nil || login.RefreshToken == "" || login.ExpiresInMS <= 0 {
			t.Fatalf("login with refresh_token = %d %s", status, body)
		}
		status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/refresh", "", []byte(`{"refresh_token":"`+login.RefreshToken+`"}`))
		var ref struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal(body, &ref); status != 200 || err != nil || ref.AccessToken == "" || ref.RefreshToken == login.RefreshToken {
			t.Fatalf("refresh = %d %s", status, body)
		}
		if status, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/account/whoami", ref.AccessToken, nil); status != 200 {
			t.Fatalf("whoami with refreshed token = %d %s", status, body)
		}
		status, body, _ = do(t, http.MethodPost, s.URL+"/_matrix/client/v3/refresh", "", []byte(`{"refresh_token":"`+login.RefreshToken+`"}`))
		if status != 401 || !hasErrcode(body, "M_UNKNOWN_TOKEN") {
			t.Fatalf("reused refresh token = %d %s, want 401 M_UNKNOWN_TOKEN", status, body)
		}
	})

	t.Run("password and deactivation", func(t *testing.T) {
		other, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw-carol",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}})
		if err != nil {
			t.Fatal(err)
		}
		status, body := passwordAuth(t, s, http.MethodPost, "/_matrix/client/v3/account/password", reg.AccessToken, "carol", "pw-carol",
			map[string]any{"new_password": "pw-carol-2"})
		if status != 200 {
			t.Fatalf("change password = %d %s", status, body)
		}
		// logout_devices defaults to true: other devices go, this one stays.
		if status, _, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/account/whoami", other.AccessToken, nil); status != 401 {
			t.Fatalf("other device after password change: %d, want 401", status)
		}
		if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw-carol-2",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}}); err != nil {
			t.Fatalf("login with the new password: %v", err)
		}
		status, body = passwordAuth(t, s, http.MethodPost, "/_matrix/client/v3/account/deactivate", reg.AccessToken, "carol", "pw-carol-2",
			map[string]any{})
		if status != 200 || !json.Valid(body) || string(body) != `{"id_server_unbind_result":"no-support"}` {
			t.Fatalf("deactivate = %d %s", status, body)
		}
		if status, _, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v3/account/whoami", reg.AccessToken, nil); status != 401 {
			t.Fatalf("token after deactivation: %d, want 401", status)
		}
		if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw-carol-2",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}}); !isErrcode(err, "M_FORBIDDEN") {
			t.Fatalf("login after deactivation = %v, want M_FORBIDDEN", err)
		}
	})
}

// hasErrcode reports whether a JSON error body carries code.
func hasErrcode(body []byte, code string) bool {
	var e struct {
		Errcode string `json:"errcode"`
	}
	return json.Unmarshal(body, &e) == nil && e.Errcode == code
}
