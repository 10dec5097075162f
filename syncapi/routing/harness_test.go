package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/internal/typing"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// fakeUsers answers QueryAccessToken with the access token as the user id
// (device "D"); the rest of userapi.API is not called by /sync.
type fakeUsers struct{ userapi.API }

func (fakeUsers) QueryAccessToken(_ context.Context, req userapi.QueryAccessTokenRequest) (userapi.QueryAccessTokenResponse, error) {
	if req.AccessToken == "" {
		return userapi.QueryAccessTokenResponse{}, apierr.New(apierr.CodeUnknownToken, "unknown token")
	}
	return userapi.QueryAccessTokenResponse{Device: userapi.Device{UserID: req.AccessToken, DeviceID: "D"}}, nil
}

// syncFixture is the /sync handler over storage fed by the real consumers,
// called directly (no event log): what a process sees after its consumer
// committed, without the delivery in between.
type syncFixture struct {
	tb     testing.TB
	db     *storage.Storage
	n      *notifier.Notifier
	sync   *Sync
	out    *consumers.RoomServerOutput
	counts *consumers.NotificationCounts
	ad     *consumers.AccountData
	seq    uint64
	ts     int64
}

func newSyncFixture(tb testing.TB, db *sqlutil.DB) *syncFixture {
	tb.Helper()
	f := &syncFixture{tb: tb, ts: 1700000000000}
	f.start(db)
	return f
}

// start builds everything above the database, as a process start does:
// nothing in memory survives it.
func (f *syncFixture) start(db *sqlutil.DB) {
	f.tb.Helper()
	ctx := f.tb.Context()
	st, err := storage.Open(ctx, db)
	if err != nil {
		f.tb.Fatalf("storage.Open: %v", err)
	}
	cur, err := st.Positions.Token(ctx, st.DB.Reader())
	if err != nil {
		f.tb.Fatalf("token: %v", err)
	}
	joined, err := st.CurrentState.JoinedUsers(ctx, st.DB.Reader())
	if err != nil {
		f.tb.Fatalf("joined users: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	n := notifier.New(cur, joined)
	ty := typing.New(func(roomID string, pos streams.Position) { n.OnRoom(streams.Typing, pos, roomID) })
	f.tb.Cleanup(ty.Close)
	f.db, f.n = st, n
	f.sync = NewSync(Deps{DB: st, Notifier: n, Typing: ty, UserAPI: fakeUsers{}, Log: log})
	// A fixed clock keeps unsigned.age equal between answers compared.
	now := time.UnixMilli(1800000000000)
	f.sync.now = func() time.Time { return now }
	f.out = consumers.NewRoomServerOutput(st, n, log)
	f.counts = consumers.NewNotificationCounts(st, n, log)
	f.ad = consumers.NewAccountData(st, n, log)
}

func (f *syncFixture) pdu(room, typ, sender string, stateKey *string, content string) json.RawMessage {
	f.ts++
	m := map[string]any{"type": typ, "sender": sender, "room_id": room, "content": json.RawMessage(content),
		"origin_server_ts": f.ts, "depth": 3, "origin": "x", "prev_events": []string{"$p"}, "auth_events": []string{"$a"},
		"hashes": map[string]string{"sha256": "aGFzaA"}, "signatures": map[string]any{"x": map[string]string{"ed25519:1": "c2ln"}}}
	if stateKey != nil {
		m["state_key"] = *stateKey
	}
	b, err := json.Marshal(m)
	if err != nil {
		f.tb.Fatal(err)
	}
	return b
}

// publish hands events to the roomserver output consumer as one batch.
func (f *syncFixture) publish(evs ...rsapi.OutputEvent) {
	f.tb.Helper()
	msgs := make([]eventlog.Msg[rsapi.OutputEvent], len(evs))
	for i, ev := range evs {
		f.seq++
		msgs[i] = eventlog.Msg[rsapi.OutputEvent]{Stream: rsapi.OutputTopic.Name, Seq: f.seq, Key: ev.RoomID, Value: ev}
	}
	if err := f.out.HandleBatch(f.tb.Context(), msgs); err != nil {
		f.tb.Fatalf("store %d output events: %v", len(evs), err)
	}
}

// stateEvent is a state event that replaces what replaces names.
func (f *syncFixture) stateEvent(room, id, typ, sender, stateKey, content string, replaces ...string) rsapi.OutputEvent {
	return rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: id, Event: f.pdu(room, typ, sender, &stateKey, content),
		AddsState: []string{id}, RemovesState: replaces}
}

func (f *syncFixture) state(room, id, typ, sender, stateKey, content string, replaces ...string) {
	f.tb.Helper()
	f.publish(f.stateEvent(room, id, typ, sender, stateKey, content, replaces...))
}

func (f *syncFixture) messageEvent(room, id, sender string) rsapi.OutputEvent {
	return rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: id,
		Event: f.pdu(room, "m.room.message", sender, nil, `{"msgtype":"m.text","body":"`+id+`"}`)}
}

func (f *syncFixture) message(room, id, sender string) {
	f.tb.Helper()
	f.publish(f.messageEvent(room, id, sender))
}

// membership publishes userID's member event with the given membership,
// replacing replaces.
func (f *syncFixture) membership(room, id, sender, userID, membership string, replaces ...string) {
	f.tb.Helper()
	f.state(room, id, storage.MemberEvent, sender, userID, `{"membership":"`+membership+`"}`, replaces...)
}

// createRoom makes a room with creator joined; returns the id of the
// creator's join.
func (f *syncFixture) createRoom(room, creator string) string {
	f.tb.Helper()
	join := "$join_" + creator + room
	f.publish(
		f.stateEvent(room, "$create"+room, "m.room.create", creator, "", `{"room_version":"10"}`),
		f.stateEvent(room, join, storage.MemberEvent, creator, creator, `{"membership":"join"}`),
		f.stateEvent(room, "$pl"+room, "m.room.power_levels", creator, "", `{"users":{"`+creator+`":100}}`),
		f.stateEvent(room, "$jr"+room, "m.room.join_rules", creator, "", `{"join_rule":"public"}`),
		f.stateEvent(room, "$name"+room, "m.room.name", creator, "", `{"name":"the room"}`),
	)
	return join
}

// setCounts stores the users' notification counts in a room.
func (f *syncFixture) setCounts(room string, n int64, users ...string) {
	f.tb.Helper()
	v := userapi.NotificationCounts{RoomID: room}
	for _, u := range users {
		v.Users = append(v.Users, userapi.UserCounts{UserID: u, Total: userapi.Counts{NotificationCount: n}})
	}
	f.seq++
	m := eventlog.Msg[userapi.NotificationCounts]{Stream: userapi.NotificationCountsTopic.Name, Seq: f.seq, Key: room, Value: v}
	if err := f.counts.HandleBatch(f.tb.Context(), []eventlog.Msg[userapi.NotificationCounts]{m}); err != nil {
		f.tb.Fatalf("store counts: %v", err)
	}
}

// accountData stores an account data entry (roomID "" for global).
func (f *syncFixture) accountData(userID, roomID, typ, content string, version int64) {
	f.tb.Helper()
	f.seq++
	m := eventlog.Msg[userapi.AccountDataMessage]{Stream: userapi.AccountDataTopic.Name, Seq: f.seq, Key: userID,
		Value: userapi.AccountDataMessage{UserID: userID, RoomID: roomID, Type: typ, Content: json.RawMessage(content), Version: version}}
	if err := f.ad.Handle(f.tb.Context(), m); err != nil {
		f.tb.Fatalf("store account data: %v", err)
	}
}

// get serves GET /sync?q for userID.
func (f *syncFixture) get(userID string, q url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(f.tb.Context(), http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+userID)
	rec := httptest.NewRecorder()
	if err := f.sync.ServeSync(rec, req); err != nil {
		f.tb.Fatalf("GET /sync?%s: %v", q.Encode(), err)
	}
	return rec
}

// checkedSync serves GET /sync?q (no waiting) on the fixture's handler,
// whose caches are warm, and on a handler over the same storage without
// caches nor windows read at once, and fails the test when the answers
// differ: the caches must never change what /sync says.
func (f *syncFixture) checkedSync(userID, since string, q url.Values) syncResult {
	f.tb.Helper()
	q = maps.Clone(q)
	if q == nil {
		q = url.Values{}
	}
	if since != "" {
		q.Set("since", since)
	}
	got := f.get(userID, q)
	if got.Code != http.StatusOK {
		f.tb.Fatalf("GET /sync?%s = %d %s", q.Encode(), got.Code, got.Body.String())
	}
	plain := NewSync(Deps{DB: f.db, Notifier: f.n, Typing: f.sync.typing, UserAPI: fakeUsers{}, Log: f.sync.log})
	plain.now, plain.maxWindow = f.sync.now, -1
	req := httptest.NewRequestWithContext(f.tb.Context(), http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+userID)
	want := httptest.NewRecorder()
	if err := plain.ServeSync(want, req); err != nil {
		f.tb.Fatalf("GET /sync?%s without caches: %v", q.Encode(), err)
	}
	if got.Body.String() != want.Body.String() {
		f.tb.Fatalf("GET /sync?%s with caches:\n%s\nwithout:\n%s", q.Encode(), got.Body, want.Body)
	}
	var r syncResult
	if err := json.Unmarshal(got.Body.Bytes(), &r); err != nil {
		f.tb.Fatalf("decode /sync response: %v", err)
	}
	return r
}

// syncResult is what the tests read of a /sync response.
type syncResult struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
				Limited bool `json:"limited"`
			} `json:"timeline"`
			State struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
			} `json:"state"`
			UnreadNotifications struct {
				NotificationCount *int `json:"notification_count"`
			} `json:"unread_notifications"`
		} `json:"join"`
		Invite map[string]json.RawMessage `json:"invite"`
		Leave  map[string]struct {
			Timeline struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"leave"`
	} `json:"rooms"`
}

// syncSince runs an incremental sync without waiting (since "" is an
// initial sync).
func (f *syncFixture) syncSince(userID, since string) syncResult {
	f.tb.Helper()
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	rec := f.get(userID, q)
	if rec.Code != http.StatusOK {
		f.tb.Fatalf("GET /sync since %q = %d %s", since, rec.Code, rec.Body.String())
	}
	var r syncResult
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		f.tb.Fatalf("decode /sync response: %v", err)
	}
	return r
}

// timelineIDs are the event ids of a joined room's timeline.
func (r syncResult) timelineIDs(room string) []string {
	out := []string{}
	for _, e := range r.Rooms.Join[room].Timeline.Events {
		out = append(out, e.EventID)
	}
	return out
}

func (r syncResult) String() string {
	b, _ := json.Marshal(r)
	return fmt.Sprint(string(b))
}
