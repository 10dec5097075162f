package syncapi_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/api"
)

func TestEveryMethodServed(t *testing.T) {
	s := rpc.NewServer(http.NewServeMux(), nil)
	api.Serve(s, api.Client{}) // any implementation will do: only the names matter
	if missing := rpc.Unserved(reflect.TypeFor[api.API](), "syncapi", s); len(missing) != 0 {
		t.Fatalf("not served over HTTP: %v", missing)
	}
}

// TestQueryMembersAt: /members?at= as the syncapi answers it, for members,
// a user who left, the never joined, world_readable rooms and bad tokens.
func TestQueryMembersAt(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		a := s.comp.API()
		const carol, mallory = "@carol:x", "@mallory:x"
		s.createRoom(room, alice1.UserID)
		s.state(room, "$binv", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
		s.state(room, "$bjoin", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$binv")
		t1 := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$bjoin")).NextBatch
		s.state(room, "$bleave", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bjoin")
		s.state(room, "$cinv", "m.room.member", alice1.UserID, carol, `{"membership":"invite"}`)
		t2 := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$cinv")).NextBatch

		members := func(user, at string) (map[string]string, error) {
			t.Helper()
			res, err := a.QueryMembersAt(t.Context(), api.QueryMembersAtRequest{RoomID: room, UserID: user, At: at})
			if err != nil {
				return nil, err
			}
			if len(res.Events) > 0 && res.RoomVersion != "10" {
				t.Fatalf("room version %q", res.RoomVersion)
			}
			out := map[string]string{}
			for _, raw := range res.Events {
				var e struct {
					StateKey string `json:"state_key"`
					Content  struct {
						Membership string `json:"membership"`
					} `json:"content"`
				}
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				out[e.StateKey] = e.Content.Membership
			}
			return out, nil
		}
		want := func(what string, got map[string]string, err error, w map[string]string) {
			t.Helper()
			if err != nil || !maps.Equal(got, w) {
				t.Fatalf("%s = %v, %v; want %v", what, got, err, w)
			}
		}
		got, err := members(alice1.UserID, t1)
		want("alice at t1", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "join"})
		got, err = members(alice1.UserID, t2)
		want("alice at t2", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "leave", carol: "invite"})
		got, err = members(bob.UserID, t1)
		want("bob at t1 (joined)", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "join"})
		// bob left before t2: he sees the room as he left it, without carol.
		got, err = members(bob.UserID, t2)
		want("bob at t2 (left)", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "leave"})
		// A token past the end is "now".
		got, err = members(alice1.UserID, "s999999999")
		want("alice in the future", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "leave", carol: "invite"})

		for _, u := range []string{carol, mallory} {
			if _, err := members(u, t2); !apierr.HasCode(err, apierr.CodeForbidden) {
				t.Fatalf("%s at t2 = %v, want M_FORBIDDEN", u, err)
			}
		}
		for _, tok := range []string{"", "x", "s", "s1_", "t5"} {
			if _, err := members(alice1.UserID, tok); !apierr.HasCode(err, apierr.CodeInvalidParam) {
				t.Fatalf("token %q = %v, want M_INVALID_PARAM", tok, err)
			}
		}

		// world_readable from t3 on: anyone sees the members there, not before.
		s.state(room, "$hv", "m.room.history_visibility", alice1.UserID, "", `{"history_visibility":"world_readable"}`)
		t3 := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$hv")).NextBatch
		got, err = members(mallory, t3)
		want("mallory at t3 (world_readable)", got, err, map[string]string{alice1.UserID: "join", bob.UserID: "leave", carol: "invite"})
		if _, err := members(mallory, t2); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("mallory at t2 (before world_readable) = %v, want M_FORBIDDEN", err)
		}
		if slices.Contains([]string{t1, t2}, t3) {
			t.Fatalf("tokens did not advance: %s %s %s", t1, t2, t3)
		}
	})
}
