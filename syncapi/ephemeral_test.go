package syncapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Stored filters and account data writes of the fake userapi.
var (
	fakeFilters = map[string]string{
		"lazy":     `{"room":{"state":{"lazy_load_members":true}}}`,
		"messages": `{"room":{"timeline":{"types":["m.room.message"],"limit":2}}}`,
	}
	putMu  sync.Mutex
	putted []userapi.PutAccountDataRequest
)

func (f fakeUsers) QueryFilter(_ context.Context, req userapi.QueryFilterRequest) (userapi.QueryFilterResponse, error) {
	js, ok := fakeFilters[req.FilterID]
	if !ok {
		return userapi.QueryFilterResponse{}, apierr.New(apierr.CodeNotFound, "no filter")
	}
	return userapi.QueryFilterResponse{Filter: json.RawMessage(js)}, nil
}

func (f fakeUsers) PutAccountData(_ context.Context, req userapi.PutAccountDataRequest) (userapi.PutAccountDataResponse, error) {
	putMu.Lock()
	defer putMu.Unlock()
	putted = append(putted, req)
	return userapi.PutAccountDataResponse{Version: 1}, nil
}

// do sends a request with a JSON body.
func (s *server) do(method, token, path, body string) (int, []byte) {
	s.t.Helper()
	req := httptest.NewRequestWithContext(s.t.Context(), method, path, bytes.NewBufferString(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (s *server) mustDo(method, token, path, body string) {
	s.t.Helper()
	if code, resp := s.do(method, token, path, body); code != http.StatusOK {
		s.t.Fatalf("%s %s = %d %s", method, path, code, resp)
	}
}

// rawSync is an initial or incremental /sync decoded loosely.
type rawSync struct {
	NextBatch   string `json:"next_batch"`
	AccountData struct {
		Events []json.RawMessage `json:"events"`
	} `json:"account_data"`
	Presence struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"presence"`
	Rooms struct {
		Join map[string]struct {
			Ephemeral struct {
				Events []struct {
					Type    string          `json:"type"`
					Content json.RawMessage `json:"content"`
				} `json:"events"`
			} `json:"ephemeral"`
			AccountData struct {
				Events []json.RawMessage `json:"events"`
			} `json:"account_data"`
			UnreadNotifications map[string]int `json:"unread_notifications"`
			Timeline            timeline       `json:"timeline"`
			State               batch          `json:"state"`
		} `json:"join"`
	} `json:"rooms"`
	FallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

func (s *server) rawSyncUntil(token, q string, cond func(r rawSync) error) rawSync {
	s.t.Helper()
	var r rawSync
	waitFor(s.t, 10*time.Second, func() error {
		code, body := s.get(token, "/_matrix/client/v3/sync?"+q)
		if code != http.StatusOK {
			return fmt.Errorf("GET /sync = %d %s", code, body)
		}
		r = rawSync{}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		return cond(r)
	})
	return r
}

// ephemeral returns the content of the room's ephemeral event of type typ.
func (r rawSync) ephemeral(room, typ string) string {
	for _, e := range r.Rooms.Join[room].Ephemeral.Events {
		if e.Type == typ {
			return string(e.Content)
		}
	}
	return ""
}

// twoMembers makes a room where alice and bob are joined.
func twoMembers(s *server) {
	s.createRoom(room, alice1.UserID)
	s.state(room, "$binvite", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
	s.state(room, "$bjoin", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$binvite")
	s.message(room, "$m1", alice1, "")
	s.syncUntil("bob", nil, hasTimelineEvent(room, "$m1"))
}

func TestTypingAndReceipts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		first := s.rawSyncUntil("bob", "", func(rawSync) error { return nil })

		s.mustDo("PUT", "alice1", "/_matrix/client/v3/rooms/"+room+"/typing/@alice:x", `{"typing":true,"timeout":30000}`)
		r := s.rawSyncUntil("bob", "timeout=5000&since="+first.NextBatch, func(r rawSync) error {
			if c := r.ephemeral(room, "m.typing"); c != `{"user_ids":["@alice:x"]}` {
				return fmt.Errorf("m.typing = %s", c)
			}
			return nil
		})
		s.mustDo("PUT", "alice1", "/_matrix/client/v3/rooms/"+room+"/typing/@alice:x", `{"typing":false}`)
		r = s.rawSyncUntil("bob", "timeout=5000&since="+r.NextBatch, func(r rawSync) error {
			if c := r.ephemeral(room, "m.typing"); c != `{"user_ids":[]}` {
				return fmt.Errorf("m.typing = %s", c)
			}
			return nil
		})

		s.mustDo("POST", "alice1", "/_matrix/client/v3/rooms/"+room+"/receipt/m.read/$m1", `{}`)
		s.mustDo("POST", "alice1", "/_matrix/client/v3/rooms/"+room+"/receipt/m.read/$m1", `{"thread_id":"main"}`)
		s.mustDo("POST", "bob", "/_matrix/client/v3/rooms/"+room+"/receipt/m.read.private/$m1", `{}`)
		want := `{"$m1":{"m.read":{"@alice:x":{"thread_id":"main","ts":`
		r = s.rawSyncUntil("bob", "since="+r.NextBatch, func(r rawSync) error {
			c := r.ephemeral(room, "m.receipt")
			if !bytes.Contains([]byte(c), []byte(`"m.read.private":{"@bob:x"`)) || !bytes.Contains([]byte(c), []byte(`"@alice:x":{"thread_id":"main"`)) {
				return fmt.Errorf("bob's m.receipt = %s", c)
			}
			return nil
		})
		// Alice sees her receipt but not bob's private one.
		s.rawSyncUntil("alice1", "", func(r rawSync) error {
			c := r.ephemeral(room, "m.receipt")
			if !bytes.HasPrefix([]byte(c), []byte(want)) || bytes.Contains([]byte(c), []byte("private")) {
				return fmt.Errorf("alice's m.receipt = %s", c)
			}
			return nil
		})

		// The fully read marker goes to the userapi as room account data.
		s.mustDo("POST", "bob", "/_matrix/client/v3/rooms/"+room+"/read_markers", `{"m.fully_read":"$m1"}`)
		putMu.Lock()
		last := putted[len(putted)-1]
		putMu.Unlock()
		if last.UserID != bob.UserID || last.RoomID != room || last.Type != "m.fully_read" || string(last.Content) != `{"event_id":"$m1"}` {
			t.Fatalf("read marker stored as %+v", last)
		}
	})
}

func TestEphemeralErrors(t *testing.T) {
	s := newServer(t, storagetest.SQLite(t))
	twoMembers(s)
	s.state("!other:x", "$ocreate", "m.room.create", bob.UserID, "", `{}`)
	tests := []struct {
		name, method, token, path, body string
		status                          int
		errcode                         string
	}{
		{"typing for another user", "PUT", "alice1", "/_matrix/client/v3/rooms/" + room + "/typing/@bob:x", `{"typing":true}`, 403, apierr.CodeForbidden},
		{"typing without typing", "PUT", "alice1", "/_matrix/client/v3/rooms/" + room + "/typing/@alice:x", `{}`, 400, apierr.CodeBadJSON},
		{"typing not json", "PUT", "alice1", "/_matrix/client/v3/rooms/" + room + "/typing/@alice:x", `{`, 400, apierr.CodeNotJSON},
		{"typing wrong shape", "PUT", "alice1", "/_matrix/client/v3/rooms/" + room + "/typing/@alice:x", `{"typing":"yes"}`, 400, apierr.CodeBadJSON},
		{"typing not joined", "PUT", "alice1", "/_matrix/client/v3/rooms/!other:x/typing/@alice:x", `{"typing":true}`, 403, apierr.CodeForbidden},
		{"typing bad room", "PUT", "alice1", "/_matrix/client/v3/rooms/nope/typing/@alice:x", `{"typing":true}`, 400, apierr.CodeInvalidParam},
		{"typing no token", "PUT", "", "/_matrix/client/v3/rooms/" + room + "/typing/@alice:x", `{"typing":true}`, 401, apierr.CodeMissingToken},
		{"receipt unknown type", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/receipt/m.seen/$m1", `{}`, 400, apierr.CodeInvalidParam},
		{"receipt unknown event", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/receipt/m.read/$nope", `{}`, 404, apierr.CodeNotFound},
		{"receipt bad event id", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/receipt/m.read/nope", `{}`, 400, apierr.CodeInvalidParam},
		{"receipt bad thread", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/receipt/m.read/$m1", `{"thread_id":"x"}`, 400, apierr.CodeInvalidParam},
		{"receipt thread not string", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/receipt/m.read/$m1", `{"thread_id":1}`, 400, apierr.CodeBadJSON},
		{"receipt not joined", "POST", "alice1", "/_matrix/client/v3/rooms/!other:x/receipt/m.read/$ocreate", `{}`, 403, apierr.CodeForbidden},
		{"read markers wrong shape", "POST", "alice1", "/_matrix/client/v3/rooms/" + room + "/read_markers", `{"m.read":5}`, 400, apierr.CodeBadJSON},
		{"presence of another user", "PUT", "alice1", "/_matrix/client/v3/presence/@bob:x/status", `{"presence":"online"}`, 403, apierr.CodeForbidden},
		{"presence unknown state", "PUT", "alice1", "/_matrix/client/v3/presence/@alice:x/status", `{"presence":"away"}`, 400, apierr.CodeBadJSON},
		{"presence bad user", "GET", "alice1", "/_matrix/client/v3/presence/alice/status", ``, 400, apierr.CodeInvalidParam},
		{"presence of a stranger", "GET", "alice1", "/_matrix/client/v3/presence/@carol:x/status", ``, 403, apierr.CodeForbidden},
		{"unknown stored filter", "GET", "alice1", "/_matrix/client/v3/sync?filter=nope", ``, 400, apierr.CodeInvalidParam},
		{"bad filter limit", "GET", "alice1", "/_matrix/client/v3/sync?filter=" + "%7B%22presence%22%3A%7B%22limit%22%3A0%7D%7D", ``, 400, apierr.CodeBadJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.do(tc.method, tc.token, tc.path, tc.body)
			var e struct {
				Errcode string `json:"errcode"`
			}
			_ = json.Unmarshal(body, &e)
			if code != tc.status || e.Errcode != tc.errcode {
				t.Fatalf("%s %s = %d %s; want %d %s", tc.method, tc.path, code, body, tc.status, tc.errcode)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		s.mustDo("PUT", "alice1", "/_matrix/client/v3/presence/@alice:x/status", `{"presence":"unavailable","status_msg":"lunch"}`)
		code, body := s.do("GET", "bob", "/_matrix/client/v3/presence/@alice:x/status", "")
		var p map[string]any
		_ = json.Unmarshal(body, &p)
		if code != 200 || p["presence"] != "unavailable" || p["status_msg"] != "lunch" {
			t.Fatalf("GET presence = %d %s", code, body)
		}
		r := s.rawSyncUntil("bob", "set_presence=online", func(r rawSync) error {
			seen := map[string]string{}
			for _, e := range r.Presence.Events {
				seen[e.Sender], _ = e.Content["presence"].(string)
			}
			if seen["@alice:x"] != "unavailable" || seen["@bob:x"] != "online" {
				return fmt.Errorf("presence = %v", seen)
			}
			return nil
		})
		// Syncing again as online changes nothing, so nothing wakes.
		again := s.rawSyncUntil("bob", "set_presence=online&since="+r.NextBatch, func(rawSync) error { return nil })
		if len(again.Presence.Events) != 0 {
			t.Fatalf("repeated set_presence produced presence %v", again.Presence.Events)
		}
		if again.FallbackKeyTypes == nil {
			t.Fatalf("device_unused_fallback_key_types missing")
		}
	})
}

func TestAccountDataAndCounts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		pub := func(m userapi.AccountDataMessage) {
			if _, err := eventlog.Publish(t.Context(), s.log, userapi.AccountDataTopic, m.UserID, m); err != nil {
				t.Fatal(err)
			}
		}
		pub(userapi.AccountDataMessage{UserID: bob.UserID, Type: "m.direct", Content: json.RawMessage(`{"v":2}`), Version: 2})
		pub(userapi.AccountDataMessage{UserID: bob.UserID, Type: "m.direct", Content: json.RawMessage(`{"v":1}`), Version: 1})
		pub(userapi.AccountDataMessage{UserID: bob.UserID, RoomID: room, Type: "m.tag", Content: json.RawMessage(`{"tags":{}}`), Version: 1})
		counts := userapi.NotificationCounts{RoomID: room, Users: []userapi.UserCounts{{UserID: bob.UserID,
			Total: userapi.Counts{NotificationCount: 3, HighlightCount: 1}, Main: userapi.Counts{NotificationCount: 2}}}}
		if _, err := eventlog.Publish(t.Context(), s.log, userapi.NotificationCountsTopic, room, counts); err != nil {
			t.Fatal(err)
		}
		s.rawSyncUntil("bob", "", func(r rawSync) error {
			if len(r.AccountData.Events) != 1 || string(r.AccountData.Events[0]) != `{"type":"m.direct","content":{"v":2}}` {
				return fmt.Errorf("account_data = %s", r.AccountData.Events)
			}
			jr := r.Rooms.Join[room]
			if len(jr.AccountData.Events) != 1 || jr.UnreadNotifications["notification_count"] != 3 || jr.UnreadNotifications["highlight_count"] != 1 {
				return fmt.Errorf("room account_data = %s, unread = %v", jr.AccountData.Events, jr.UnreadNotifications)
			}
			return nil
		})
	})
}

func TestSyncFilters(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		s.state(room, "$topic", "m.room.topic", alice1.UserID, "", `{"topic":"t"}`)
		s.message(room, "$m2", bob, "")
		s.message(room, "$m3", alice1, "")
		r := s.rawSyncUntil("bob", "filter=messages", func(r rawSync) error {
			if got := ids(r.Rooms.Join[room].Timeline.Events); !slices.Equal(got, []string{"$m2", "$m3"}) {
				return fmt.Errorf("filtered timeline = %v", got)
			}
			return nil
		})
		if !r.Rooms.Join[room].Timeline.Limited || !slices.Contains(ids(r.Rooms.Join[room].State.Events), "$topic") {
			t.Fatalf("filtered timeline: limited %v, state %v; want limited and the topic in the state",
				r.Rooms.Join[room].Timeline.Limited, ids(r.Rooms.Join[room].State.Events))
		}
		// Lazy loading: the last 2 events are bob's and alice's messages,
		// so only their members are in the state.
		r = s.rawSyncUntil("bob", "filter="+`{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}`, func(rawSync) error { return nil })
		var members []string
		for _, e := range r.Rooms.Join[room].State.Events {
			if e.Type == "m.room.member" {
				members = append(members, *e.StateKey)
			}
		}
		slices.Sort(members)
		if !slices.Equal(members, []string{"@alice:x", "@bob:x"}) {
			t.Fatalf("lazy-loaded members = %v, want alice (sender) and bob (self)", members)
		}
	})
}
