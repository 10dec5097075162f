package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestGuestRouteList: a guest may use every route of the guest access
// module's list that the clientapi or the syncapi serves, and gets 403
// M_GUEST_ACCESS_FORBIDDEN on routes off it, from either component: both
// gate on the one table in internal/httputil.
func TestGuestRouteList(t *testing.T) {
	s := startExtra(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	status, data, _ := do(t, "POST", s.URL+"/_matrix/client/v3/register?kind=guest", "", []byte(`{}`))
	var g struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
		DeviceID    string `json:"device_id"`
	}
	if status != 200 || json.Unmarshal(data, &g) != nil || g.AccessToken == "" {
		t.Fatalf("guest register = %d %s", status, data)
	}
	alice := userClient(t, s, "alice")
	open, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateGuestAccess, StateKey: new(string), Content: event.Content{Raw: map[string]any{"guest_access": "can_join"}}}}})
	must(t, "CreateRoom(can_join)", err)
	sent, err := alice.SendText(ctx, open.RoomID, "hello guests")
	must(t, "SendText", err)
	room := url.PathEscape(string(open.RoomID))
	ev := url.PathEscape(string(sent.EventID))
	me := url.PathEscape(g.UserID)

	// In order: the guest joins first, so the reads see the room, and
	// leaves last. Of the list, GET /events, GET /rooms/{roomId}/initialSync,
	// PUT /sendToDevice and /keys/* are not served (404 M_UNRECOGNIZED for
	// everyone).
	allowed := []struct{ method, path, body string }{
		{"POST", "/rooms/" + room + "/join", `{}`},
		{"POST", "/join/" + room, `{}`},
		{"GET", "/sync?timeout=0", ""},
		{"GET", "/rooms/" + room + "/state", ""},
		{"GET", "/rooms/" + room + "/state/m.room.create", ""},
		{"GET", "/rooms/" + room + "/state/m.room.member/" + me, ""},
		{"GET", "/rooms/" + room + "/members", ""},
		{"GET", "/rooms/" + room + "/messages?dir=b", ""},
		{"GET", "/rooms/" + room + "/context/" + ev, ""},
		{"GET", "/rooms/" + room + "/event/" + ev, ""},
		{"PUT", "/rooms/" + room + "/send/m.room.message/g1", `{"msgtype":"m.text","body":"hi"}`},
		{"PUT", "/rooms/" + room + "/state/m.room.member/" + me, `{"membership":"join","displayname":"Visitor"}`},
		{"PUT", "/profile/" + me + "/displayname", `{"displayname":"Visitor"}`},
		{"GET", "/devices", ""},
		{"GET", "/devices/" + url.PathEscape(g.DeviceID), ""},
		{"PUT", "/devices/" + url.PathEscape(g.DeviceID), `{"display_name":"guest dev"}`},
		{"GET", "/account/whoami", ""},
		{"POST", "/rooms/" + room + "/leave", `{}`},
	}
	for _, c := range allowed {
		for _, version := range []string{"v3", "r0"} {
			if version == "r0" && !strings.HasPrefix(c.path, "/sync") && !strings.HasSuffix(c.path, "/messages?dir=b") {
				continue // the clientapi serves v3 only
			}
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			if c.path == "/rooms/"+room+"/messages?dir=b" && version == "v3" {
				// The syncapi learns of the join from the log, a moment after
				// the join answered: its reads wait for it, as a client's
				// /sync would.
				waitFor(t, 30*time.Second, func() error {
					if status, data, _ := do(t, "GET", s.URL+"/_matrix/client/v3"+c.path, g.AccessToken, nil); status != 200 {
						return fmt.Errorf("%d %s", status, data)
					}
					return nil
				})
			}
			if status, data, _ := do(t, c.method, s.URL+"/_matrix/client/"+version+c.path, g.AccessToken, body); status != 200 {
				t.Errorf("guest %s /%s%s = %d %s, want 200", c.method, version, c.path, status, data)
			}
		}
	}
	refused := []struct{ method, path, body string }{
		{"POST", "/v3/createRoom", `{}`},
		{"GET", "/v3/capabilities", ""},
		{"PUT", "/v3/profile/" + me + "/avatar_url", `{"avatar_url":"mxc://x/y"}`},
		{"DELETE", "/v3/devices/" + url.PathEscape(g.DeviceID), `{}`},
		{"GET", "/v3/joined_rooms", ""},
		{"POST", "/v3/rooms/" + room + "/invite", `{"user_id":"@alice:` + s.ServerName + `"}`},
		{"PUT", "/v3/rooms/" + room + "/typing/" + me, `{"typing":true,"timeout":1000}`},
		{"POST", "/v3/rooms/" + room + "/receipt/m.read/" + ev, `{}`},
		{"POST", "/v3/rooms/" + room + "/read_markers", `{}`},
		{"PUT", "/v3/presence/" + me + "/status", `{"presence":"online"}`},
		{"POST", "/v3/search", `{"search_categories":{"room_events":{"search_term":"hello"}}}`},
		{"GET", "/v1/rooms/" + room + "/relations/" + ev, ""},
		{"GET", "/v1/rooms/" + room + "/threads", ""},
		{"GET", "/v1/rooms/" + room + "/timestamp_to_event?ts=1&dir=f", ""},
	}
	for _, c := range refused {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		if status, data, _ := do(t, c.method, s.URL+"/_matrix/client"+c.path, g.AccessToken, body); status != 403 || !hasErrcode(data, "M_GUEST_ACCESS_FORBIDDEN") {
			t.Errorf("guest %s %s = %d %s, want 403 M_GUEST_ACCESS_FORBIDDEN", c.method, c.path, status, data)
		}
	}
	if strings.Contains(s.procs["axon"].log(), "panic serving request") {
		t.Fatal("a route panicked")
	}
}
