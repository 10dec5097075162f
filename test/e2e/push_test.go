package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestPushMonolith: a push gateway on loopback (private addresses allowed
// for this server), a pusher for bob, alice invites bob in createRoom: the
// default rule .m.rule.invite_for_me notifies him, so /notifications lists
// it and the gateway receives it. Push rule CRUD round-trips.
func TestPushMonolith(t *testing.T) {
	var mu sync.Mutex
	var got []json.RawMessage
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/push/v1/notify" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
		w.Write([]byte(`{"rejected":[]}`))
	}))
	t.Cleanup(gw.Close)

	httpAddr, opsAddr := freeAddr(t), freeAddr(t)
	p := startProc(t, "axon", binary(t, "axon"), []string{"--data-dir", t.TempDir(), "--http", httpAddr, "--ops", opsAddr,
		"--server-name", "e2e.test", "--open-registration"}, []string{"AXON_ALLOW_PRIVATE_ADDRESSES=true"})
	_ = p
	url := "http://" + httpAddr
	waitHTTP(t, url+"/_matrix/client/versions")
	ctx := t.Context()

	register := func(name string) *mautrix.Client {
		cli, err := mautrix.NewClient(url, "", "")
		if err != nil {
			t.Fatal(err)
		}
		reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "pw-" + name})
		if err != nil {
			t.Fatalf("RegisterDummy(%s) = %v", name, err)
		}
		cli.SetCredentials(reg.UserID, reg.AccessToken)
		return cli
	}
	alice, bob := register("alice"), register("bob")

	// Pushers: validation, then bob's pusher.
	for _, tc := range []struct {
		name, body, code string
		status           int
	}{
		{"not json", `{`, "M_NOT_JSON", 400},
		{"missing", `{"kind":"http"}`, "M_MISSING_PARAM", 400},
		{"bad url path", `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"http://x/other"}}`, "M_INVALID_PARAM", 400},
		{"unknown kind", `{"kind":"carrier-pigeon","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{}}`, "M_INVALID_PARAM", 400},
	} {
		status, body, _ := do(t, http.MethodPost, url+"/_matrix/client/v3/pushers/set", bob.AccessToken, []byte(tc.body))
		if status != tc.status || !strings.Contains(string(body), tc.code) {
			t.Errorf("pushers/set %s = %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}
	pusher := fmt.Sprintf(`{"kind":"http","app_id":"org.example.app","pushkey":"bobkey","app_display_name":"App","device_display_name":"Phone","lang":"en","data":{"url":"%s/_matrix/push/v1/notify"}}`, gw.URL)
	if status, body, _ := do(t, http.MethodPost, url+"/_matrix/client/v3/pushers/set", bob.AccessToken, []byte(pusher)); status != 200 {
		t.Fatalf("pushers/set = %d %s", status, body)
	}
	if status, body, _ := do(t, http.MethodGet, url+"/_matrix/client/v3/pushers", bob.AccessToken, nil); status != 200 || !strings.Contains(string(body), `"pushkey":"bobkey"`) {
		t.Fatalf("GET /pushers = %d %s", status, body)
	}

	// Push rules CRUD.
	rule := `{"pattern":"cake*lie","actions":["notify"]}`
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/pushrules/global/content/nocake", rule, 200, "{}"},
		{"GET", "/pushrules/global/content/nocake", "", 200, `"pattern":"cake*lie"`},
		{"GET", "/pushrules/global/content/nocake/enabled", "", 200, `{"enabled":true}`},
		{"PUT", "/pushrules/global/content/nocake/enabled", `{"enabled":false}`, 200, "{}"},
		{"GET", "/pushrules/global/content/nocake/enabled", "", 200, `{"enabled":false}`},
		{"PUT", "/pushrules/global/override/.m.rule.master/enabled", `{"enabled":"yes"}`, 400, "M_BAD_JSON"},
		{"GET", "/pushrules/global/override/.m.rule.suppress_notices/actions", "", 200, `{"actions":[]}`},
		{"PUT", "/pushrules/global/content/.mine", rule, 400, "M_INVALID_PARAM"},
		{"PUT", "/pushrules/global/content/other?before=nope", rule, 400, "M_UNKNOWN"},
		{"PUT", "/pushrules/global/bogus/x", rule, 400, "M_INVALID_PARAM"},
		{"PUT", "/pushrules/global/override/x", `{"conditions":[]}`, 400, "M_BAD_JSON"},
		{"GET", "/pushrules/global/override/missing", "", 404, "M_NOT_FOUND"},
		{"DELETE", "/pushrules/global/content/nocake", "", 200, "{}"},
		{"DELETE", "/pushrules/global/content/nocake", "", 404, "M_NOT_FOUND"},
		{"GET", "/pushrules/", "", 200, `".m.rule.is_user_mention"`},
		{"GET", "/notifications?limit=x", "", 400, "M_INVALID_PARAM"},
	} {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		status, resp, _ := do(t, tc.method, url+"/_matrix/client/v3"+tc.path, alice.AccessToken, body)
		if status != tc.status || !strings.Contains(string(resp), tc.want) {
			t.Errorf("%s %s = %d %s, want %d containing %s", tc.method, tc.path, status, resp, tc.status, tc.want)
		}
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatalf("CreateRoom = %v", err)
	}
	waitFor(t, 10*time.Second, func() error {
		status, body, _ := do(t, http.MethodGet, url+"/_matrix/client/v3/notifications", bob.AccessToken, nil)
		if status != 200 {
			return fmt.Errorf("GET /notifications = %d %s", status, body)
		}
		var n struct {
			Notifications []struct {
				RoomID string          `json:"room_id"`
				Event  json.RawMessage `json:"event"`
			} `json:"notifications"`
		}
		if err := json.Unmarshal(body, &n); err != nil || len(n.Notifications) != 1 || n.Notifications[0].RoomID != string(room.RoomID) {
			return fmt.Errorf("notifications = %s", body)
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return errors.New("the push gateway received nothing")
		}
		var req struct {
			Notification struct {
				RoomID  string `json:"room_id"`
				Devices []struct {
					PushKey string `json:"pushkey"`
				} `json:"devices"`
			} `json:"notification"`
		}
		if err := json.Unmarshal(got[0], &req); err != nil || req.Notification.RoomID != string(room.RoomID) ||
			len(req.Notification.Devices) != 1 || req.Notification.Devices[0].PushKey != "bobkey" {
			return fmt.Errorf("push = %s", got[0])
		}
		return nil
	})
	// Alice gets no notification for her own events.
	if status, body, _ := do(t, http.MethodGet, url+"/_matrix/client/v3/notifications", alice.AccessToken, nil); status != 200 || !strings.Contains(string(body), `"notifications":[]`) {
		t.Errorf("alice's /notifications = %d %s", status, body)
	}
}
