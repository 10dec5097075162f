package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// TestRelationsThreadsRoomID checks that /relations and /threads validate
// {roomId} (and /relations {eventId}) as the other room endpoints do: 400
// M_INVALID_PARAM for an id that is not one, before the query or the room
// is looked at, and that an escaped slash in a valid id survives routing
// (the room is unknown to the user: 404 for /relations, whose parent is
// then not found, 403 for /threads).
func TestRelationsThreadsRoomID(t *testing.T) {
	s := newServer(t, storagetest.SQLite(t))
	relationsScenario(s)
	tests := []struct {
		name    string
		path    string
		status  int
		errcode string
	}{
		{"relations, not a room id", "/rooms/not-a-room/relations/$root", 400, apierr.CodeInvalidParam},
		{"relations with type, not a room id", "/rooms/not-a-room/relations/$root/m.thread", 400, apierr.CodeInvalidParam},
		{"relations with types, empty opaque part", "/rooms/" + url.PathEscape("!:x") + "/relations/$root/m.thread/m.room.message", 400, apierr.CodeInvalidParam},
		{"threads, not a room id", "/rooms/not-a-room/threads", 400, apierr.CodeInvalidParam},
		{"threads, user id", "/rooms/" + url.PathEscape("@alice:x") + "/threads", 400, apierr.CodeInvalidParam},
		{"relations, not an event id", "/rooms/" + url.PathEscape(room) + "/relations/not-an-event", 400, apierr.CodeInvalidParam},
		{"relations, bad room id before bad query", "/rooms/not-a-room/relations/$root?dir=x", 400, apierr.CodeInvalidParam},
		{"threads, bad room id before bad query", "/rooms/not-a-room/threads?include=x", 400, apierr.CodeInvalidParam},
		{"relations, escaped slash", "/rooms/" + url.PathEscape("!a/b:x") + "/relations/$root", 404, apierr.CodeNotFound},
		{"threads, escaped slash", "/rooms/" + url.PathEscape("!a/b:x") + "/threads", 403, apierr.CodeForbidden},
		{"relations, the room", "/rooms/" + url.PathEscape(room) + "/relations/$root", 200, ""},
		{"threads, the room", "/rooms/" + url.PathEscape(room) + "/threads", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.get("alice1", "/_matrix/client/v1"+tc.path)
			var e struct {
				Errcode string `json:"errcode"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("GET %s: decode %s: %v", tc.path, body, err)
			}
			if code != tc.status || e.Errcode != tc.errcode {
				t.Fatalf("GET %s = %d %s; want %d %s", tc.path, code, body, tc.status, tc.errcode)
			}
		})
	}
	if code, _ := s.get("", "/_matrix/client/v1/rooms/not-a-room/threads"); code != http.StatusUnauthorized {
		t.Fatalf("no token, bad room id: %d, want 401 (authentication comes first)", code)
	}
}

// TestRelationsHiddenHistory: /relations pages past the children a user
// may not see (sent while bob had left a "joined" room) in both
// directions, each visible child once, and ends.
func TestRelationsHiddenHistory(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		const late = "!late:x"
		s.createRoom(late, alice1.UserID)
		s.state(late, "$hv", "m.room.history_visibility", alice1.UserID, "", `{"history_visibility":"joined"}`)
		s.state(late, "$bj1", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`)
		s.send(late, "$root", alice1.UserID, "m.room.message", `{"msgtype":"m.text","body":"root"}`)
		s.send(late, "$c1", alice1.UserID, "m.room.message", relatesTo("m.thread", "$root", "1", ""))
		s.state(late, "$bl", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bj1")
		for i := range 3 {
			s.send(late, fmt.Sprintf("$h%d", i), alice1.UserID, "m.room.message", relatesTo("m.thread", "$root", "hidden", ""))
		}
		s.state(late, "$bj2", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$bl")
		s.send(late, "$c2", alice1.UserID, "m.room.message", relatesTo("m.thread", "$root", "2", ""))
		s.syncUntil("bob", nil, hasTimelineEvent(late, "$c2"))

		pageAll := func(token, dir string) []string {
			var got []string
			q := url.Values{"limit": {"1"}, "dir": {dir}}
			for i := 0; ; i++ {
				p := "/_matrix/client/v1/rooms/" + url.PathEscape(late) + "/relations/$root/m.thread?" + q.Encode()
				code, body := s.get(token, p)
				var r relationsPage
				if code != http.StatusOK || json.Unmarshal(body, &r) != nil {
					t.Fatalf("GET %s = %d %s", p, code, body)
				}
				got = append(got, ids(r.Chunk)...)
				if r.NextBatch == "" {
					return got
				}
				if i > 10 {
					t.Fatalf("%s paging does not end: %v", dir, got)
				}
				q.Set("from", r.NextBatch)
			}
		}
		for _, tc := range []struct {
			token, dir string
			want       []string
		}{
			{"bob", "b", []string{"$c2", "$c1"}},
			{"bob", "f", []string{"$c1", "$c2"}},
			{"alice1", "b", []string{"$c2", "$h2", "$h1", "$h0", "$c1"}},
			{"alice1", "f", []string{"$c1", "$h0", "$h1", "$h2", "$c2"}},
		} {
			if got := pageAll(tc.token, tc.dir); !slices.Equal(got, tc.want) {
				t.Errorf("%s pages dir=%s = %v, want %v", tc.token, tc.dir, got, tc.want)
			}
		}
	})
}
