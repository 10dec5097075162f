package syncapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func init() {
	users.devices["guest"] = userapi.Device{UserID: "@guest:x", DeviceID: "G1", AccountType: userapi.AccountGuest}
}

// TestGuestRoutes: a guest joined to the room uses the syncapi routes of
// the guest access module's list (/sync, /messages, /context, /event) on
// every version they are served on, and gets 403 M_GUEST_ACCESS_FORBIDDEN
// on every other route of the syncapi.
func TestGuestRoutes(t *testing.T) {
	s := newServer(t, storagetest.SQLite(t))
	relationsScenario(s)
	guest := users.devices["guest"]
	s.state(room, "$gjoin", "m.room.member", guest.UserID, guest.UserID, `{"membership":"join"}`)
	s.message(room, "$gmsg", guest, "")
	s.syncUntil("guest", nil, hasTimelineEvent(room, "$gmsg"))

	r := "/rooms/" + url.PathEscape(room)
	const u = "/{me}" // the caller's user id
	allowed := []string{"GET /sync?timeout=0", "GET " + r + "/messages?dir=b", "GET " + r + "/context/$root",
		"GET " + r + "/event/$root"}
	for _, route := range allowed {
		for _, version := range []string{"v3", "r0"} {
			method, path, _ := strings.Cut(route, " ")
			if code, body := s.do(method, "guest", "/_matrix/client/"+version+path, ""); code != http.StatusOK {
				t.Errorf("guest %s %s = %d %s, want 200", method, path, code, body)
			}
		}
	}
	refused := []struct{ method, path, body string }{
		{"PUT", "/_matrix/client/v3" + r + "/typing" + u, `{"typing":true,"timeout":1000}`},
		{"POST", "/_matrix/client/v3" + r + "/receipt/m.read/$root", `{}`},
		{"POST", "/_matrix/client/v3" + r + "/read_markers", `{"m.fully_read":"$root"}`},
		{"GET", "/_matrix/client/v3/presence" + u + "/status", ""},
		{"PUT", "/_matrix/client/r0/presence" + u + "/status", `{"presence":"online"}`},
		{"POST", "/_matrix/client/v3/search", `{"search_categories":{"room_events":{"search_term":"root"}}}`},
		{"GET", "/_matrix/client/v1" + r + "/timestamp_to_event?ts=1&dir=f", ""},
		{"GET", "/_matrix/client/v1" + r + "/relations/$root", ""},
		{"GET", "/_matrix/client/v1" + r + "/relations/$root/m.thread", ""},
		{"GET", "/_matrix/client/v1" + r + "/relations/$root/m.thread/m.room.message", ""},
		{"GET", "/_matrix/client/v1" + r + "/threads", ""},
	}
	for _, c := range refused {
		path := strings.ReplaceAll(c.path, "{me}", url.PathEscape(guest.UserID))
		code, body := s.do(c.method, "guest", path, c.body)
		var e struct {
			Errcode string `json:"errcode"`
		}
		if code != http.StatusForbidden || json.Unmarshal(body, &e) != nil || e.Errcode != apierr.CodeGuestAccessForbided {
			t.Errorf("guest %s %s = %d %s, want 403 %s", c.method, path, code, body, apierr.CodeGuestAccessForbided)
		}
		// The same route serves a user.
		path = strings.ReplaceAll(c.path, "{me}", url.PathEscape(alice1.UserID))
		if code, body := s.do(c.method, "alice1", path, c.body); code != http.StatusOK {
			t.Errorf("alice %s %s = %d %s, want 200", c.method, path, code, body)
		}
	}
}
