package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// carol is a user who is never a member of the test rooms.
func init() { users.devices["carol"] = userapi.Device{UserID: "@carol:x", DeviceID: "C1"} }

type messagesResponse struct {
	Start   string  `json:"start"`
	End     *string `json:"end"`
	Chunk   []event `json:"chunk"`
	State   []event `json:"state"`
	Errcode string  `json:"errcode"`
}

// messages calls /messages and decodes the answer; want is the status.
func (s *server) messages(token, roomID string, q url.Values, want int) messagesResponse {
	s.t.Helper()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/messages?" + q.Encode()
	code, body := s.get(token, path)
	var r messagesResponse
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("decode %s: %v (%s)", path, err, body)
	}
	if code != want {
		s.t.Fatalf("GET %s = %d %s, want %d", path, code, body, want)
	}
	if code == http.StatusOK {
		if r.Start == "" || r.Chunk == nil {
			s.t.Fatalf("GET %s: no start or chunk: %s", path, body)
		}
		for _, e := range append(r.Chunk, r.State...) {
			if e.RoomID == nil || *e.RoomID != roomID || e.Hashes != nil || e.Depth != nil {
				s.t.Fatalf("GET %s: event not a ClientEvent of the room: %+v", path, e)
			}
		}
	}
	return r
}

// pageAll pages through a room from from (none if empty) in direction
// dir with pages of limit, until end is omitted, and returns the event ids
// in the order served.
func (s *server) pageAll(token, roomID, dir, from string, limit int, extra ...string) []string {
	s.t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		if pages > 500 {
			s.t.Fatal("paging does not end")
		}
		q := query(append([]string{"dir", dir, "limit", fmt.Sprint(limit)}, extra...)...)
		if from != "" {
			q.Set("from", from)
		}
		r := s.messages(token, roomID, q, http.StatusOK)
		if len(r.Chunk) > limit {
			s.t.Fatalf("page of %d events, limit %d", len(r.Chunk), limit)
		}
		got = append(got, ids(r.Chunk)...)
		if r.End == nil {
			return got
		}
		if *r.End == from {
			s.t.Fatalf("end %q does not move", from)
		}
		from = *r.End
	}
}

func reversed(xs []string) []string {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

// roomWithMessages makes the test room with n messages from alice and
// returns every event id in the order sent.
func roomWithMessages(s *server, n int) []string {
	s.createRoom(room, alice1.UserID)
	all := []string{"$create" + room, "$join@alice:x" + room, "$pl" + room, "$jr" + room, "$name" + room}
	for i := range n {
		id := fmt.Sprintf("$m%d", i)
		s.message(room, id, alice1, "")
		all = append(all, id)
	}
	s.syncUntil("alice1", nil, hasTimelineEvent(room, all[len(all)-1]))
	return all
}

func TestMessagesPaging(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		all := roomWithMessages(s, 23)

		// Every event exactly once, in order, whatever the page size.
		for _, limit := range []int{1, 4, 10, 100} {
			if got := s.pageAll("alice1", room, "b", "", limit); !slices.Equal(got, reversed(all)) {
				t.Fatalf("dir=b limit=%d: %v, want %v", limit, got, reversed(all))
			}
			if got := s.pageAll("alice1", room, "f", "", limit); !slices.Equal(got, all) {
				t.Fatalf("dir=f limit=%d: %v, want %v", limit, got, all)
			}
		}
		// The default page is 10 events; r0 serves the same.
		r := s.messages("alice1", room, query("dir", "b"), http.StatusOK)
		if got := ids(r.Chunk); !slices.Equal(got, reversed(all)[:10]) || r.End == nil {
			t.Fatalf("default page = %v end=%v", got, r.End)
		}
		code, _ := s.get("alice1", "/_matrix/client/r0/rooms/"+url.PathEscape(room)+"/messages?dir=b")
		if code != http.StatusOK {
			t.Fatalf("r0 /messages = %d", code)
		}

		// From /sync's prev_batch backwards: what came before the timeline.
		sr := s.sync("alice1", query("filter", `{"room":{"timeline":{"limit":5}}}`))
		tl := sr.Rooms.Join[room].Timeline
		if got := ids(tl.Events); !slices.Equal(got, all[len(all)-5:]) {
			t.Fatalf("sync timeline = %v", got)
		}
		if got := s.pageAll("alice1", room, "b", tl.PrevBatch, 7); !slices.Equal(got, reversed(all[:len(all)-5])) {
			t.Fatalf("back from prev_batch: %v", got)
		}
		// Forward from prev_batch is the timeline itself; from next_batch nothing.
		if got := s.pageAll("alice1", room, "f", tl.PrevBatch, 2); !slices.Equal(got, all[len(all)-5:]) {
			t.Fatalf("forward from prev_batch: %v", got)
		}
		if r := s.messages("alice1", room, query("dir", "f", "from", sr.NextBatch), http.StatusOK); len(r.Chunk) != 0 || r.End != nil || r.Start != sr.NextBatch {
			t.Fatalf("forward from next_batch = %+v", r)
		}

		// to stops a page: backward from next_batch to prev_batch is the timeline.
		if got := s.pageAll("alice1", room, "b", sr.NextBatch, 2, "to", tl.PrevBatch); !slices.Equal(got, reversed(all[len(all)-5:])) {
			t.Fatalf("next_batch back to prev_batch: %v", got)
		}

		// A filter applies, and pages go on past what it drops.
		got := s.pageAll("alice1", room, "b", "", 3, "filter", `{"types":["m.room.message"],"not_senders":["@nobody:x"]}`)
		if !slices.Equal(got, reversed(all[5:])) {
			t.Fatalf("filtered: %v", got)
		}
		if got := s.pageAll("alice1", room, "f", "", 3, "filter", `{"types":["m.room.name"]}`); !slices.Equal(got, []string{"$name" + room}) {
			t.Fatalf("only the name: %v", got)
		}
		if r := s.messages("alice1", room, query("dir", "b", "filter", `{"not_rooms":["`+room+`"]}`), http.StatusOK); len(r.Chunk) != 0 || r.End != nil {
			t.Fatalf("not_rooms = %+v", r)
		}
		// A filter limit lowers the page; lazy loading brings the senders' members.
		r = s.messages("alice1", room, query("dir", "b", "limit", "5", "filter", `{"limit":2,"lazy_load_members":true}`), http.StatusOK)
		if len(r.Chunk) != 2 || len(r.State) != 1 || r.State[0].EventID != "$join@alice:x"+room {
			t.Fatalf("lazy page = %v state %v", ids(r.Chunk), ids(r.State))
		}
	})
}

func TestMessagesErrors(t *testing.T) {
	s := newServer(t, storagetest.SQLite(t))
	roomWithMessages(s, 1)
	base := "/_matrix/client/v3/rooms/" + url.PathEscape(room)
	tests := []struct {
		name    string
		token   string
		path    string
		status  int
		errcode string
	}{
		{name: "no token", path: base + "/messages?dir=b", status: 401, errcode: apierr.CodeMissingToken},
		{name: "no dir", token: "alice1", path: base + "/messages", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "bad dir", token: "alice1", path: base + "/messages?dir=x", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "bad from", token: "alice1", path: base + "/messages?dir=b&from=yesterday", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "bad to", token: "alice1", path: base + "/messages?dir=b&to=s-1", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "negative limit", token: "alice1", path: base + "/messages?dir=b&limit=-1", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "filter not JSON", token: "alice1", path: base + "/messages?dir=b&filter=%7Bx", status: 400, errcode: apierr.CodeNotJSON},
		{name: "filter wrong shape", token: "alice1", path: base + "/messages?dir=b&filter=%7B%22types%22:1%7D", status: 400, errcode: apierr.CodeBadJSON},
		{name: "unknown filter id", token: "alice1", path: base + "/messages?dir=b&filter=nope", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "bad room id", token: "alice1", path: "/_matrix/client/v3/rooms/room/messages?dir=b", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "not a member", token: "carol", path: base + "/messages?dir=b", status: 403, errcode: apierr.CodeForbidden},
		{name: "unknown room", token: "alice1", path: "/_matrix/client/v3/rooms/%21nope:x/messages?dir=b", status: 403, errcode: apierr.CodeForbidden},
		{name: "huge limit is capped", token: "alice1", path: base + "/messages?dir=b&limit=99999999999999999999", status: 200},
		{name: "stored filter", token: "alice1", path: base + "/messages?dir=b&filter=messages", status: 200},
		{name: "context: unknown event", token: "alice1", path: base + "/context/$nope", status: 404, errcode: apierr.CodeNotFound},
		{name: "context: bad event id", token: "alice1", path: base + "/context/nope", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "context: bad limit", token: "alice1", path: base + "/context/$m0?limit=x", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "context: not a member", token: "carol", path: base + "/context/$m0", status: 403, errcode: apierr.CodeForbidden},
		{name: "event: unknown", token: "alice1", path: base + "/event/$nope", status: 404, errcode: apierr.CodeNotFound},
		{name: "event: not a member", token: "carol", path: base + "/event/$m0", status: 404, errcode: apierr.CodeNotFound},
		{name: "event: other room", token: "alice1", path: "/_matrix/client/v3/rooms/%21other:x/event/$m0", status: 404, errcode: apierr.CodeNotFound},
		{name: "timestamp: no ts", token: "alice1", path: "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?dir=f", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "timestamp: bad ts", token: "alice1", path: "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?dir=f&ts=now", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "timestamp: no dir", token: "alice1", path: "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?ts=1", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "timestamp: not a member", token: "carol", path: "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?ts=1&dir=f", status: 403, errcode: apierr.CodeForbidden},
		{name: "timestamp: none", token: "alice1", path: "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/timestamp_to_event?ts=1&dir=b", status: 404, errcode: apierr.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.get(tc.token, tc.path)
			var e struct {
				Errcode string `json:"errcode"`
			}
			_ = json.Unmarshal(body, &e)
			if code != tc.status || e.Errcode != tc.errcode {
				t.Fatalf("GET %s = %d %s; want %d %s", tc.path, code, body, tc.status, tc.errcode)
			}
		})
	}
}

type contextResponse struct {
	Start        string  `json:"start"`
	End          string  `json:"end"`
	EventsBefore []event `json:"events_before"`
	Event        event   `json:"event"`
	EventsAfter  []event `json:"events_after"`
	State        []event `json:"state"`
}

func (s *server) context(token, eventID string, q url.Values) contextResponse {
	s.t.Helper()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(room) + "/context/" + url.PathEscape(eventID) + "?" + q.Encode()
	code, body := s.get(token, path)
	if code != http.StatusOK {
		s.t.Fatalf("GET %s = %d %s", path, code, body)
	}
	var r contextResponse
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *server) event(token, eventID string) (int, event) {
	s.t.Helper()
	code, body := s.get(token, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(eventID))
	var e event
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil {
			s.t.Fatal(err)
		}
	}
	return code, e
}

// originTS is an event's origin_server_ts, from /event.
func (s *server) originTS(token, eventID string) int64 {
	s.t.Helper()
	_, body := s.get(token, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(eventID))
	var raw struct {
		TS int64 `json:"origin_server_ts"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.TS == 0 {
		s.t.Fatalf("origin_server_ts of %s: %s", eventID, body)
	}
	return raw.TS
}

// timestampToEvent returns the status and the event id found.
func (s *server) timestampToEvent(token string, ts int64, dir string) (int, string, int64) {
	s.t.Helper()
	code, body := s.get(token, fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?ts=%d&dir=%s", url.PathEscape(room), ts, dir))
	var r struct {
		EventID string `json:"event_id"`
		TS      int64  `json:"origin_server_ts"`
	}
	_ = json.Unmarshal(body, &r)
	return code, r.EventID, r.TS
}

func TestContextEventAndTimestamp(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		all := roomWithMessages(s, 20)
		i := slices.Index(all, "$m10")

		r := s.context("alice1", "$m10", query("limit", "5"))
		if r.Event.EventID != "$m10" || r.Event.RoomID == nil || *r.Event.RoomID != room {
			t.Fatalf("event = %+v", r.Event)
		}
		if got := ids(r.EventsBefore); !slices.Equal(got, []string{"$m9", "$m8"}) {
			t.Fatalf("events_before = %v", got)
		}
		if got := ids(r.EventsAfter); !slices.Equal(got, []string{"$m11", "$m12", "$m13"}) {
			t.Fatalf("events_after = %v", got)
		}
		if got := ids(r.State); !slices.Equal(got, all[:5]) {
			t.Fatalf("state = %v", got)
		}
		// The tokens continue on either side.
		if got := s.pageAll("alice1", room, "b", r.Start, 4); !slices.Equal(got, reversed(all[:i-2])) {
			t.Fatalf("back from start: %v", got)
		}
		if got := s.pageAll("alice1", room, "f", r.End, 4); !slices.Equal(got, all[i+4:]) {
			t.Fatalf("forward from end: %v", got)
		}
		// limit 0 still returns the event; the filter applies around it, not to it.
		r = s.context("alice1", "$name"+room, query("limit", "0"))
		if r.Event.EventID != "$name"+room || len(r.EventsBefore)+len(r.EventsAfter) != 0 {
			t.Fatalf("limit 0 = %+v", r)
		}
		r = s.context("alice1", "$name"+room, query("limit", "4", "filter", `{"types":["m.room.message"],"lazy_load_members":true}`))
		if got := ids(r.EventsAfter); r.Event.EventID != "$name"+room || len(r.EventsBefore) != 0 || !slices.Equal(got, []string{"$m0", "$m1"}) {
			t.Fatalf("filtered context = %v %v %v", ids(r.EventsBefore), r.Event.EventID, got)
		}
		if len(r.State) != 0 {
			t.Fatalf("state filtered by types = %v", ids(r.State))
		}
		r = s.context("alice1", "$m3", query("limit", "2", "filter", `{"lazy_load_members":true}`))
		if got := ids(r.State); !slices.Contains(got, "$join@alice:x"+room) || !slices.Contains(got, "$create"+room) {
			t.Fatalf("lazy state = %v", got)
		}

		code, e := s.event("alice1", "$m5")
		if code != http.StatusOK || e.EventID != "$m5" || e.RoomID == nil || e.Hashes != nil || string(e.Content) == "" {
			t.Fatalf("/event = %d %+v", code, e)
		}
		// timestamp_to_event: the harness gives each event the next millisecond.
		ts5 := s.originTS("alice1", "$m5")
		for _, tc := range []struct {
			ts   int64
			dir  string
			want string
		}{
			{ts5, "f", "$m5"}, {ts5, "b", "$m5"}, {ts5 + 1, "b", "$m6"}, {ts5 - 1, "f", "$m4"},
			{0, "f", "$create" + room}, {ts5 + 1000, "b", "$m19"},
		} {
			code, id, got := s.timestampToEvent("alice1", tc.ts, tc.dir)
			if code != http.StatusOK || id != tc.want || got == 0 {
				t.Fatalf("timestamp_to_event(%d, %s) = %d %s %d; want %s", tc.ts, tc.dir, code, id, got, tc.want)
			}
		}
		if code, _, _ := s.timestampToEvent("alice1", ts5+1000, "f"); code != http.StatusNotFound {
			t.Fatalf("timestamp_to_event after the last = %d, want 404", code)
		}
	})
}

// redact publishes a redaction of target by sender, as the roomserver
// does when it applied it: with the redacted copy of the target.
func (s *server) redact(id, sender, target string, targetPDU json.RawMessage) {
	s.t.Helper()
	red := s.pdu(room, "m.room.redaction", sender, nil, `{"reason":"spam"}`)
	var m map[string]any
	if err := json.Unmarshal(red, &m); err != nil {
		s.t.Fatal(err)
	}
	m["redacts"] = target
	red, _ = json.Marshal(m)
	var orig map[string]any
	if err := json.Unmarshal(targetPDU, &orig); err != nil {
		s.t.Fatal(err)
	}
	orig["content"] = map[string]any{}
	orig["unsigned"] = map[string]any{"redacted_because": json.RawMessage(red)}
	redacted, _ := json.Marshal(orig)
	s.publish(rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: id, Event: red,
		RedactedEventID: target, RedactedEvent: redacted})
}

func TestRedactionApplied(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		target := s.pdu(room, "m.room.message", alice1.UserID, nil, `{"msgtype":"m.text","body":"secret"}`)
		s.publish(rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: "$secret", Event: target})
		s.message(room, "$m1", alice1, "")
		s.redact("$red", alice1.UserID, "$secret", target)
		// The log is at least once: the same message again changes nothing.
		s.redact("$red", alice1.UserID, "$secret", target)
		s.message(room, "$m2", alice1, "")
		s.syncUntil("alice1", nil, hasTimelineEvent(room, "$m2"))

		check := func(where string, e event) {
			t.Helper()
			if string(e.Content) != `{}` {
				t.Fatalf("%s: content %s, want redacted", where, e.Content)
			}
			rb, ok := e.Unsigned["redacted_because"].(map[string]any)
			if !ok || rb["event_id"] != "$red" || rb["type"] != "m.room.redaction" || rb["hashes"] != nil || rb["signatures"] != nil {
				t.Fatalf("%s: redacted_because = %v", where, e.Unsigned["redacted_because"])
			}
		}
		sr := s.sync("alice1", nil)
		tl := sr.Rooms.Join[room].Timeline.Events
		if got := ids(tl); !slices.Equal(got[len(got)-4:], []string{"$secret", "$m1", "$red", "$m2"}) {
			t.Fatalf("timeline = %v (one copy of each)", got)
		}
		check("initial sync", tl[slices.Index(ids(tl), "$secret")])
		r := s.messages("alice1", room, query("dir", "b", "limit", "4"), http.StatusOK)
		if got := ids(r.Chunk); !slices.Equal(got, []string{"$m2", "$red", "$m1", "$secret"}) {
			t.Fatalf("/messages = %v", got)
		}
		check("/messages", r.Chunk[3])
		_, e := s.event("alice1", "$secret")
		check("/event", e)
		check("/context", s.context("alice1", "$secret", nil).Event)
	})
}

func TestMessagesHistoryVisibility(t *testing.T) {
	// Bob is invited after $early, joins, sees $late, leaves; $after comes
	// once he left. The room's first events come before any
	// history_visibility, so they are shared (the spec's default).
	first := []string{"$create" + room, "$join@alice:x" + room, "$pl" + room, "$jr" + room, "$name" + room, "$hv"}
	tests := []struct {
		visibility string
		want       []string // what bob sees, in order
	}{
		{visibility: "joined", want: append(slices.Clone(first), "$bjoin", "$late", "$bleave")},
		{visibility: "invited", want: append(slices.Clone(first), "$binvite", "$bjoin", "$late", "$bleave")},
		{visibility: "shared", want: append(slices.Clone(first), "$early", "$binvite", "$bjoin", "$late", "$bleave")},
		{visibility: "world_readable", want: append(slices.Clone(first), "$early", "$binvite", "$bjoin", "$late", "$bleave", "$after")},
	}
	for _, tc := range tests {
		t.Run(tc.visibility, func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
				s := newServer(t, db)
				s.createRoom(room, alice1.UserID)
				s.state(room, "$hv", "m.room.history_visibility", alice1.UserID, "", `{"history_visibility":"`+tc.visibility+`"}`)
				s.message(room, "$early", alice1, "")
				s.state(room, "$binvite", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
				s.state(room, "$bjoin", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$binvite")
				s.message(room, "$late", alice1, "")
				s.state(room, "$bleave", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bjoin")
				s.message(room, "$after", alice1, "")
				s.syncUntil("alice1", nil, hasTimelineEvent(room, "$after"))

				for _, limit := range []int{1, 3, 50} {
					if got := s.pageAll("bob", room, "b", "", limit); !slices.Equal(got, reversed(tc.want)) {
						t.Fatalf("bob dir=b limit=%d: %v, want %v", limit, got, reversed(tc.want))
					}
					if got := s.pageAll("bob", room, "f", "", limit); !slices.Equal(got, tc.want) {
						t.Fatalf("bob dir=f limit=%d: %v, want %v", limit, got, tc.want)
					}
				}
				for _, id := range []string{"$early", "$late", "$after", "$binvite"} {
					code, _ := s.event("bob", id)
					if visible := slices.Contains(tc.want, id); visible != (code == http.StatusOK) || !visible && code != http.StatusNotFound {
						t.Fatalf("bob /event %s = %d, visible=%v", id, code, visible)
					}
					path := "/_matrix/client/v3/rooms/" + url.PathEscape(room) + "/context/" + url.PathEscape(id)
					if code, _ := s.get("bob", path); slices.Contains(tc.want, id) != (code == http.StatusOK) {
						t.Fatalf("bob /context %s = %d", id, code)
					}
				}
				// timestamp_to_event skips what bob may not see.
				earlyTS := s.originTS("alice1", "$early")
				wantF := tc.want[slices.IndexFunc(tc.want, func(id string) bool { return id == "$early" || id == "$binvite" || id == "$bjoin" })]
				if code, id, _ := s.timestampToEvent("bob", earlyTS, "f"); code != http.StatusOK || id != wantF {
					t.Fatalf("bob timestamp_to_event(f) = %d %s, want %s", code, id, wantF)
				}
				// Carol, never in the room, sees it only if world readable.
				if tc.visibility == "world_readable" {
					// Not the events before the history_visibility: they are shared.
					if got := s.pageAll("carol", room, "f", "", 4); !slices.Equal(got, tc.want[5:]) {
						t.Fatalf("carol: %v", got)
					}
				} else {
					s.messages("carol", room, query("dir", "b"), http.StatusForbidden)
				}
			})
		})
	}
}

func TestIgnoredUsers(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s) // alice and bob joined, $m1 from alice
		s.message(room, "$fromBob", bob, "")
		s.message(room, "$m2", alice1, "")
		s.state(room, "$topic", "m.room.topic", alice1.UserID, "", `{"topic":"t"}`)
		s.syncUntil("bob", nil, hasTimelineEvent(room, "$topic"))
		if _, err := eventlog.Publish(t.Context(), s.log, userapi.AccountDataTopic, bob.UserID, userapi.AccountDataMessage{
			UserID: bob.UserID, Type: "m.ignored_user_list", Content: json.RawMessage(`{"ignored_users":{"@alice:x":{}}}`), Version: 1,
		}); err != nil {
			t.Fatal(err)
		}
		// Alice's messages go, her state events stay.
		r := s.syncUntil("bob", nil, func(r syncResponse) error {
			if slices.Contains(ids(r.Rooms.Join[room].Timeline.Events), "$m2") {
				return fmt.Errorf("alice's message still in bob's timeline")
			}
			return nil
		})
		if got := ids(r.Rooms.Join[room].Timeline.Events); !slices.Contains(got, "$topic") || !slices.Contains(got, "$fromBob") || slices.Contains(got, "$m1") {
			t.Fatalf("bob's timeline = %v", got)
		}
		got := s.pageAll("bob", room, "b", "", 3)
		if slices.Contains(got, "$m1") || slices.Contains(got, "$m2") || !slices.Contains(got, "$topic") || !slices.Contains(got, "$fromBob") {
			t.Fatalf("bob's /messages = %v", got)
		}
		c := s.context("bob", "$fromBob", query("limit", "10"))
		if around := append(ids(c.EventsBefore), ids(c.EventsAfter)...); slices.Contains(around, "$m1") || slices.Contains(around, "$m2") || !slices.Contains(around, "$topic") {
			t.Fatalf("bob's context = %v", around)
		}
		// Alice still sees everything.
		if got := s.pageAll("alice1", room, "b", "", 3); !slices.Contains(got, "$m2") || !slices.Contains(got, "$fromBob") {
			t.Fatalf("alice's /messages = %v", got)
		}

		// An invite from an ignored user is not sent.
		const other = "!other:x"
		s.createRoom(other, alice1.UserID)
		s.state(other, "$binvite2", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
		s.message(room, "$fromBob2", bob, "")
		r = s.syncUntil("bob", nil, hasTimelineEvent(room, "$fromBob2"))
		if _, ok := r.Rooms.Invite[other]; ok {
			t.Fatalf("invite from an ignored user sent: %+v", r.Rooms.Invite)
		}
		// Once alice is no longer ignored, the invite shows.
		if _, err := eventlog.Publish(t.Context(), s.log, userapi.AccountDataTopic, bob.UserID, userapi.AccountDataMessage{
			UserID: bob.UserID, Type: "m.ignored_user_list", Content: json.RawMessage(`{"ignored_users":{}}`), Version: 2,
		}); err != nil {
			t.Fatal(err)
		}
		s.syncUntil("bob", nil, func(r syncResponse) error {
			if _, ok := r.Rooms.Invite[other]; !ok {
				return fmt.Errorf("no invite yet")
			}
			return nil
		})
	})
}
