package e2e

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// everyRoute lists every Client-Server endpoint Axon serves (and some it
// refuses), with {room}, {event}, {user}, {other} for path values. Each is
// tried with valid and invalid values for them.
var everyRoute = []string{
	"POST /register", "GET /register/available?username=x", "POST /register/email/requestToken",
	"GET /register/m.login.registration_token/validity?token=x",
	"GET /login", "POST /login", "POST /login/get_token", "POST /refresh", "POST /logout", "POST /logout/all",
	"GET /account/whoami", "POST /account/password", "POST /account/deactivate",
	"GET /account/3pid", "POST /account/3pid", "POST /account/3pid/add", "POST /account/3pid/bind",
	"POST /account/3pid/delete", "POST /account/3pid/unbind", "POST /account/3pid/email/requestToken",
	"POST /account/password/email/requestToken",
	"GET /capabilities", "GET /devices", "GET /devices/{other}", "PUT /devices/{other}", "DELETE /devices/{other}",
	"POST /delete_devices",
	"GET /profile/{user}", "GET /profile/{user}/displayname", "PUT /profile/{user}/displayname",
	"PUT /profile/{user}/avatar_url", "DELETE /profile/{user}/m.tz",
	"PUT /user/{user}/account_data/{other}", "GET /user/{user}/account_data/{other}",
	"PUT /user/{user}/rooms/{room}/account_data/{other}", "GET /user/{user}/rooms/{room}/account_data/{other}",
	"GET /user/{user}/rooms/{room}/tags", "PUT /user/{user}/rooms/{room}/tags/{other}",
	"DELETE /user/{user}/rooms/{room}/tags/{other}",
	"POST /user/{user}/filter", "GET /user/{user}/filter/{other}",
	"POST /createRoom", "GET /joined_rooms",
	"POST /join/{room}", "POST /rooms/{room}/join", "POST /knock/{room}", "POST /rooms/{room}/leave",
	"POST /rooms/{room}/forget", "POST /rooms/{room}/invite", "POST /rooms/{room}/kick", "POST /rooms/{room}/ban",
	"POST /rooms/{room}/unban",
	"PUT /rooms/{room}/send/m.room.message/{other}", "PUT /rooms/{room}/state/m.room.topic",
	"PUT /rooms/{room}/state/m.room.member/{user}", "GET /rooms/{room}/state", "GET /rooms/{room}/state/m.room.create",
	"GET /rooms/{room}/state/m.room.member/{user}",
	"PUT /rooms/{room}/redact/{event}/{other}", "POST /rooms/{room}/report/{event}", "POST /rooms/{room}/report",
	"POST /rooms/{room}/upgrade", "GET /rooms/{room}/members", "GET /rooms/{room}/members?at=x&membership=join",
	"GET /rooms/{room}/joined_members", "GET /rooms/{room}/aliases",
	"PUT /directory/room/{other}", "GET /directory/room/{other}", "DELETE /directory/room/{other}",
	"GET /directory/list/room/{room}", "PUT /directory/list/room/{room}",
	"GET /publicRooms?limit=x&since=y", "POST /publicRooms",
	"GET /pushrules/", "GET /pushrules/global/", "GET /pushrules/global/override/{other}",
	"PUT /pushrules/global/override/{other}", "DELETE /pushrules/global/override/{other}",
	"GET /pushrules/global/override/{other}/enabled", "PUT /pushrules/global/override/{other}/enabled",
	"PUT /pushrules/global/override/{other}/actions",
	"GET /pushers", "POST /pushers/set", "GET /notifications?from=x&limit=y&only=z",
	"GET /sync", "GET /sync?since=x&timeout=y&filter=z&full_state=w&set_presence=v",
	"PUT /rooms/{room}/typing/{user}", "POST /rooms/{room}/receipt/m.read/{event}",
	"POST /rooms/{room}/read_markers", "GET /presence/{user}/status", "PUT /presence/{user}/status",
	"GET /rooms/{room}/messages", "GET /rooms/{room}/messages?dir=x&from=y&to=z&limit=w&filter=v",
	"GET /rooms/{room}/context/{event}?limit=x&filter=y", "GET /rooms/{room}/event/{event}",
	"GET /rooms/{room}/timestamp_to_event?dir=x&ts=y",
	"GET /rooms/{room}/relations/{event}", "GET /rooms/{room}/relations/{event}/m.thread?from=x&limit=y&dir=z",
	"GET /rooms/{room}/relations/{event}/m.annotation/m.reaction", "GET /rooms/{room}/threads?include=x&from=y",
	"POST /search", "POST /search?next_batch=x",
}

// TestGarbageToEveryRoute sends bad bodies, bad path values and bad query
// values to every route, with and without a token: no answer may be a
// server fault, every error must be a Matrix error, and no route may
// panic.
func TestGarbageToEveryRoute(t *testing.T) {
	s := startMonolith(t, "")
	reg := registerShared(t, s, "gina", "secret", false)
	tok := reg.AccessToken
	v3 := s.URL + "/_matrix/client/v3"
	status, body, _ := do(t, "POST", v3+"/createRoom", tok, []byte(`{"preset":"public_chat"}`))
	var room struct {
		RoomID string `json:"room_id"`
	}
	if status != 200 || json.Unmarshal(body, &room) != nil {
		t.Fatalf("createRoom = %d %s", status, body)
	}
	status, body, _ = do(t, "PUT", v3+"/rooms/"+url.PathEscape(room.RoomID)+"/send/m.room.message/g1", tok, []byte(`{"msgtype":"m.text","body":"hi"}`))
	var sent struct {
		EventID string `json:"event_id"`
	}
	if status != 200 || json.Unmarshal(body, &sent) != nil {
		t.Fatalf("send = %d %s", status, body)
	}
	values := []map[string]string{
		{"{room}": room.RoomID, "{event}": sent.EventID, "{user}": reg.UserID, "{other}": "x"},
		{"{room}": "not-a-room", "{event}": "not-an-event", "{user}": "nobody", "{other}": "%00%ff"},
		{"{room}": "!unknown:e2e.test", "{event}": "$unknown", "{user}": "@other:elsewhere.test", "{other}": strings.Repeat("y", 300)},
	}
	bodies := []string{``, `null`, `{}`, `[]`, `"s"`, `5`, "\xff\xfe", `{"a":1e999}`, `{"auth":{"type":5}}`,
		`{"type":[]}`, `{"limit":-1,"filter":"x","room_version":{},"user_id":5,"reason":[]}`, `{"body":{"x":null},"msgtype":7}`,
		`{"search_categories":{"room_events":{"search_term":5}}}`, `{"membership":"join","displayname":["x"]}`,
		`{"presence":"nope","status_msg":{}}`, `{"m.fully_read":5,"m.read":"x"}`, `{"typing":"yes","timeout":"x"}`,
		`{"visibility":7}`, `{"actions":"notify","enabled":"true"}`, `{"pushkey":1,"kind":{}}`}
	for _, route := range everyRoute {
		method, path, _ := strings.Cut(route, " ")
		for _, vals := range values {
			p := path
			for k, v := range vals {
				if k != "{other}" || !strings.Contains(v, "%") {
					v = url.PathEscape(v)
				}
				p = strings.ReplaceAll(p, k, v)
			}
			for _, b := range bodies {
				for _, token := range []string{"", tok} {
					if method == "GET" && b != "" {
						continue
					}
					status, body, _ := do(t, method, v3+p, token, []byte(b))
					if status >= 500 {
						t.Errorf("%s %s with %q = %d %.300s", method, p, b, status, body)
						continue
					}
					if status >= 400 {
						var e struct {
							Errcode string          `json:"errcode"`
							Error   string          `json:"error"`
							Flows   json.RawMessage `json:"flows"`
						}
						err := json.Unmarshal(body, &e)
						if status == 401 && err == nil && e.Flows != nil {
							continue // user-interactive auth asks for a stage
						}
						if err != nil || e.Errcode == "" {
							t.Errorf("%s %s with %q = %d %.300s: not a Matrix error", method, p, b, status, body)
						}
					}
				}
			}
		}
	}
	if log := s.procs["axon"].log(); strings.Contains(log, "panic serving request") {
		t.Fatalf("a route panicked on bad input:\n%s", log)
	}
}
