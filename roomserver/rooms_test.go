package roomserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
)

// twoUserRoom builds and submits a room where alice is joined and bob joined,
// then left; it returns the chain and the two users.
func twoUserRoom(t *testing.T, a api.API, hv string) (*chain, string, string) {
	t.Helper()
	alice, bob := "@alice:"+string(origin), "@bob:"+string(origin)
	c := newChain(t, event.DefaultRoomVersion)
	evs := []*event.PDU{
		c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": c.v.ID}),
		c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"}),
		c.add(event.TypePowerLevels, strp(""), alice, map[string]any{"users": map[string]any{}, "redact": 50}),
		c.add(event.TypeJoinRules, strp(""), alice, map[string]any{"join_rule": "public"}),
		c.add(event.TypeHistoryVisibility, strp(""), alice, map[string]any{"history_visibility": hv}),
		c.add("m.room.name", strp(""), alice, map[string]any{"name": "Before"}),
		c.add(event.TypeMember, strp(bob), bob, map[string]any{"membership": "join"}),
		c.add(event.TypeMember, strp(bob), bob, map[string]any{"membership": "leave"}),
		c.add("m.room.name", strp(""), alice, map[string]any{"name": "After"}),
	}
	if _, err := a.InputRoomEvents(t.Context(), input(c.v, evs...)); err != nil {
		t.Fatalf("InputRoomEvents(room) = %v", err)
	}
	return c, alice, bob
}

func names(t *testing.T, evs []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, raw := range evs {
		var e struct {
			Type    string `json:"type"`
			Content struct {
				Name string `json:"name"`
			} `json:"content"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "m.room.name" {
			out = append(out, e.Content.Name)
		}
	}
	return out
}

func TestMembershipAndVisibility(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		c, alice, bob := twoUserRoom(t, a, "shared")
		room := string(c.roomID)
		carol := "@carol:" + string(origin)

		for _, tc := range []struct{ user, want string }{{alice, "join"}, {bob, "leave"}, {carol, ""}} {
			m, err := a.QueryMembership(ctx, api.QueryMembershipRequest{RoomID: room, UserID: tc.user})
			if err != nil || !m.RoomExists || m.Membership != tc.want || (tc.want != "" && len(m.Event) == 0) {
				t.Fatalf("QueryMembership(%s) = %+v, %v; want %q", tc.user, m, err, tc.want)
			}
		}
		if m, err := a.QueryMembership(ctx, api.QueryMembershipRequest{RoomID: "!nope:x", UserID: alice}); err != nil || m.RoomExists {
			t.Fatalf("QueryMembership(unknown room) = %+v, %v", m, err)
		}
		joined, err := a.QueryRoomsForUser(ctx, api.QueryRoomsForUserRequest{UserID: alice, Membership: "join"})
		if err != nil || len(joined.Rooms) != 1 || joined.Rooms[0].RoomID != room {
			t.Fatalf("QueryRoomsForUser(alice) = %+v, %v", joined, err)
		}
		if left, err := a.QueryRoomsForUser(ctx, api.QueryRoomsForUserRequest{UserID: bob, Membership: "join"}); err != nil || len(left.Rooms) != 0 {
			t.Fatalf("QueryRoomsForUser(bob, join) = %+v, %v", left, err)
		}

		// alice sees the current state, bob the state when he left, carol nothing.
		cases := []struct {
			name, user string
			want       []string
			historical bool
			errcode    string
		}{
			{"joined", alice, []string{"After"}, false, ""},
			{"left", bob, []string{"Before"}, true, ""},
			{"never there", carol, nil, false, apierr.CodeForbidden},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := a.QueryStateForUser(ctx, api.QueryStateForUserRequest{RoomID: room, UserID: tc.user})
				if tc.errcode != "" {
					if !apierr.HasCode(err, tc.errcode) {
						t.Fatalf("QueryStateForUser(%s) = %v, want %s", tc.user, err, tc.errcode)
					}
					return
				}
				if err != nil || res.Historical != tc.historical || strings.Join(names(t, res.StateEvents), ",") != strings.Join(tc.want, ",") {
					t.Fatalf("QueryStateForUser(%s) = %+v, %v; want names %v", tc.user, res, err, tc.want)
				}
			})
		}
		members, err := a.QueryStateForUser(ctx, api.QueryStateForUserRequest{RoomID: room, UserID: alice, Types: []string{event.TypeMember}})
		if err != nil || len(members.StateEvents) != 2 {
			t.Fatalf("QueryStateForUser(members) = %d events, %v; want 2", len(members.StateEvents), err)
		}
		if _, err := a.QueryStateForUser(ctx, api.QueryStateForUserRequest{RoomID: "!nope:x", UserID: alice}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("QueryStateForUser(unknown room) = %v, want M_NOT_FOUND", err)
		}

		// Forget: only after leaving.
		if _, err := a.PerformForget(ctx, api.PerformForgetRequest{RoomID: room, UserID: alice}); !apierr.HasCode(err, apierr.CodeUnknown) {
			t.Fatalf("PerformForget(joined) = %v, want M_UNKNOWN", err)
		}
		if _, err := a.PerformForget(ctx, api.PerformForgetRequest{RoomID: room, UserID: carol}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("PerformForget(stranger) = %v, want M_NOT_FOUND", err)
		}
		for range 2 {
			if _, err := a.PerformForget(ctx, api.PerformForgetRequest{RoomID: room, UserID: bob}); err != nil {
				t.Fatalf("PerformForget(bob) = %v", err)
			}
		}
		if m, _ := a.QueryMembership(ctx, api.QueryMembershipRequest{RoomID: room, UserID: bob}); !m.Forgotten {
			t.Fatalf("bob's membership after forget = %+v", m)
		}
		// Rejoining clears forgotten.
		rejoin := c.add(event.TypeMember, strp(bob), bob, map[string]any{"membership": "join"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, rejoin)); err != nil {
			t.Fatal(err)
		}
		if m, _ := a.QueryMembership(ctx, api.QueryMembershipRequest{RoomID: room, UserID: bob}); m.Forgotten || m.Membership != "join" {
			t.Fatalf("bob's membership after rejoining = %+v", m)
		}
	})
}

func TestWorldReadableAndEvents(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		c, _, _ := twoUserRoom(t, a, "world_readable")
		res, err := a.QueryStateForUser(ctx, api.QueryStateForUserRequest{RoomID: string(c.roomID), UserID: "@stranger:elsewhere",
			Tuples: []api.StateKeyTuple{{Type: "m.room.name"}}})
		if err != nil || strings.Join(names(t, res.StateEvents), ",") != "After" {
			t.Fatalf("world_readable state for a stranger = %+v, %v", res, err)
		}
		got, err := a.QueryEvents(ctx, api.QueryEventsRequest{RoomID: string(c.roomID), EventIDs: []string{string(c.prev), "$missing"}})
		if err != nil || len(got.Events) != 1 || got.RoomVersion != c.v.ID {
			t.Fatalf("QueryEvents = %+v, %v", got, err)
		}
	})
}

func TestRedaction(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		c, alice, _ := twoUserRoom(t, a, "shared")
		eve := "@eve:other.test"
		rejoin := c.add(event.TypeMember, strp(eve), eve, map[string]any{"membership": "join"})
		msg := c.add("m.room.message", nil, alice, map[string]any{"body": "secret", "msgtype": "m.text"})
		// eve (power 0 < redact 50, another server) may send a redaction of
		// alice's message, but it does not apply.
		eveRed := c.addRedaction(eve, msg.EventID())
		aliceRed := c.addRedaction(alice, msg.EventID())
		if _, err := a.InputRoomEvents(ctx, input(c.v, rejoin, msg, eveRed)); err != nil {
			t.Fatal(err)
		}
		got, err := a.QueryEvents(ctx, api.QueryEventsRequest{RoomID: string(c.roomID), EventIDs: []string{string(msg.EventID())}})
		if err != nil || len(got.Events) != 1 || !strings.Contains(string(got.Events[0]), "secret") {
			t.Fatalf("after a disallowed redaction: %s, %v", got.Events, err)
		}
		if _, err := a.InputRoomEvents(ctx, input(c.v, aliceRed)); err != nil {
			t.Fatal(err)
		}
		got, err = a.QueryEvents(ctx, api.QueryEventsRequest{RoomID: string(c.roomID), EventIDs: []string{string(msg.EventID())}})
		var because struct {
			Unsigned struct {
				RedactedBecause struct {
					Sender string `json:"sender"`
					Type   string `json:"type"`
				} `json:"redacted_because"`
			} `json:"unsigned"`
		}
		if err != nil || len(got.Events) != 1 || strings.Contains(string(got.Events[0]), "secret") ||
			json.Unmarshal(got.Events[0], &because) != nil || because.Unsigned.RedactedBecause.Sender != alice {
			t.Fatalf("after alice's redaction: %s, %v", got.Events, err)
		}
		red, err := event.Parse(got.Events[0], c.v)
		if err != nil || red.EventID() != msg.EventID() {
			t.Fatalf("redacted event parses as %v, %v", red, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var found *api.OutputEvent
		for found == nil && time.Now().Before(deadline) {
			out.mu.Lock()
			for i, e := range out.evs {
				if e.EventID == string(aliceRed.EventID()) {
					found = &out.evs[i]
				}
				if e.EventID == string(eveRed.EventID()) && e.RedactedEventID != "" {
					t.Errorf("disallowed redaction output %+v", e)
				}
			}
			out.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		if found == nil || found.RedactedEventID != string(msg.EventID()) || strings.Contains(string(found.RedactedEvent), "secret") {
			t.Fatalf("redaction output = %+v", found)
		}
	})
}

// addRedaction adds an m.room.redaction of target.
func (c *chain) addRedaction(sender string, target matrix.EventID) *event.PDU {
	c.t.Helper()
	return c.addProto(event.Proto{Type: event.TypeRedaction, Sender: matrix.UserID(sender), Redacts: target, Content: map[string]any{}})
}

func TestAliasesDirectoryReports(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		c, alice, _ := twoUserRoom(t, a, "shared")
		room := string(c.roomID)
		alias := "#room:" + string(origin)
		if _, err := a.SetRoomAlias(ctx, api.SetRoomAliasRequest{Alias: alias, RoomID: room, UserID: alice}); err != nil {
			t.Fatalf("SetRoomAlias = %v", err)
		}
		_, err := a.SetRoomAlias(ctx, api.SetRoomAliasRequest{Alias: alias, RoomID: room, UserID: alice})
		if e, ok := apierr.As(err); !ok || e.Code != apierr.CodeUnknown || e.HTTPStatus() != http.StatusConflict {
			t.Fatalf("SetRoomAlias(again) = %v, want 409 M_UNKNOWN", err)
		}
		if _, err := a.SetRoomAlias(ctx, api.SetRoomAliasRequest{Alias: "#x:" + string(origin), RoomID: "!nope:x"}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("SetRoomAlias(unknown room) = %v, want M_NOT_FOUND", err)
		}
		if got, err := a.GetRoomAlias(ctx, api.GetRoomAliasRequest{Alias: alias}); err != nil || got.RoomID != room || got.Creator != alice {
			t.Fatalf("GetRoomAlias = %+v, %v", got, err)
		}
		if got, err := a.QueryAliasesForRoom(ctx, api.QueryAliasesForRoomRequest{RoomID: room}); err != nil || len(got.Aliases) != 1 {
			t.Fatalf("QueryAliasesForRoom = %+v, %v", got, err)
		}
		if _, err := a.RemoveRoomAlias(ctx, api.RemoveRoomAliasRequest{Alias: alias}); err != nil {
			t.Fatalf("RemoveRoomAlias = %v", err)
		}
		if _, err := a.GetRoomAlias(ctx, api.GetRoomAliasRequest{Alias: alias}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("GetRoomAlias(removed) = %v, want M_NOT_FOUND", err)
		}
		if _, err := a.RemoveRoomAlias(ctx, api.RemoveRoomAliasRequest{Alias: alias}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("RemoveRoomAlias(removed) = %v, want M_NOT_FOUND", err)
		}

		// Three public rooms, paged two at a time; a filter finds one.
		rooms := []string{room}
		for range 2 {
			c2, _, _ := twoUserRoom(t, a, "shared")
			rooms = append(rooms, string(c2.roomID))
		}
		for _, r := range rooms {
			if _, err := a.SetRoomVisibility(ctx, api.SetRoomVisibilityRequest{RoomID: r, Visibility: "public"}); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := a.QueryRoomVisibility(ctx, api.QueryRoomVisibilityRequest{RoomID: room}); err != nil || v.Visibility != "public" {
			t.Fatalf("QueryRoomVisibility = %+v, %v", v, err)
		}
		seen := map[string]bool{}
		since := ""
		for page := 0; ; page++ {
			res, err := a.QueryPublicRooms(ctx, api.QueryPublicRoomsRequest{Limit: 2, Since: since})
			if err != nil || res.Total != 3 {
				t.Fatalf("QueryPublicRooms(page %d) = %+v, %v", page, res, err)
			}
			for _, pr := range res.Chunk {
				if seen[pr.RoomID] || pr.Name != "After" || pr.NumJoinedMembers != 1 || pr.JoinRule != "public" {
					t.Fatalf("page %d entry %+v (seen before: %v)", page, pr, seen[pr.RoomID])
				}
				seen[pr.RoomID] = true
			}
			if res.NextBatch == "" {
				break
			}
			since = res.NextBatch
		}
		if len(seen) != 3 {
			t.Fatalf("pages covered %d rooms, want 3", len(seen))
		}
		if res, err := a.QueryPublicRooms(ctx, api.QueryPublicRoomsRequest{Filter: "nothing like it"}); err != nil || len(res.Chunk) != 0 {
			t.Fatalf("filtered = %+v, %v", res, err)
		}
		if res, err := a.QueryPublicRooms(ctx, api.QueryPublicRoomsRequest{Filter: "aft"}); err != nil || len(res.Chunk) != 3 {
			t.Fatalf("filtered by name = %+v, %v", res, err)
		}
		if _, err := a.QueryPublicRooms(ctx, api.QueryPublicRoomsRequest{Since: "bogus"}); !apierr.HasCode(err, apierr.CodeInvalidParam) {
			t.Fatalf("bad since = %v, want M_INVALID_PARAM", err)
		}
		if _, err := a.SetRoomVisibility(ctx, api.SetRoomVisibilityRequest{RoomID: room, Visibility: "private"}); err != nil {
			t.Fatal(err)
		}
		if res, _ := a.QueryPublicRooms(ctx, api.QueryPublicRoomsRequest{}); res.Total != 2 {
			t.Fatalf("after unpublishing: %+v", res)
		}

		if _, err := a.PerformReport(ctx, api.PerformReportRequest{RoomID: room, EventID: string(c.prev), ReporterID: alice, Reason: "spam"}); err != nil {
			t.Fatalf("PerformReport = %v", err)
		}
		if _, err := a.PerformReport(ctx, api.PerformReportRequest{RoomID: "!nope:x", ReporterID: alice}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("PerformReport(unknown room) = %v", err)
		}
	})
}
