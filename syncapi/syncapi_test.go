package syncapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// fakeUsers implements only QueryAccessToken; the rest of userapi.API is
// not called by the syncapi.
type fakeUsers struct {
	userapi.API
	devices map[string]userapi.Device // access token → device
}

func (f fakeUsers) QueryAccessToken(_ context.Context, req userapi.QueryAccessTokenRequest) (userapi.QueryAccessTokenResponse, error) {
	d, ok := f.devices[req.AccessToken]
	if !ok {
		return userapi.QueryAccessTokenResponse{}, apierr.New(apierr.CodeUnknownToken, "unknown token")
	}
	return userapi.QueryAccessTokenResponse{Device: d}, nil
}

var users = fakeUsers{devices: map[string]userapi.Device{
	"alice1": {UserID: "@alice:x", DeviceID: "A1"},
	"alice2": {UserID: "@alice:x", DeviceID: "A2"},
	"bob":    {UserID: "@bob:x", DeviceID: "B1"},
}}

// server is a syncapi on a real database and a real embedded JetStream.
type server struct {
	t        testing.TB
	db       *sqlutil.DB
	log      eventlog.Log
	registry *prometheus.Registry
	comp     *syncapi.Component
	handler  http.Handler
	ts       int64
}

func newServer(t testing.TB, db *sqlutil.DB) *server {
	t.Helper()
	l, err := eventlog.OpenJetStream(t.Context(), eventlog.JetStreamConfig{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatalf("OpenJetStream: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	s := &server{t: t, db: db, log: l, ts: 1700000000000}
	s.start()
	t.Cleanup(func() { s.comp.Close() })
	return s
}

// start builds the component, as a process start does.
func (s *server) start() {
	s.t.Helper()
	s.registry = prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	comp, err := syncapi.New(s.t.Context(), syncapi.Deps{Log: logger, Registry: s.registry, DB: s.db, EventLog: s.log, UserAPI: users})
	if err != nil {
		s.t.Fatalf("syncapi.New: %v", err)
	}
	mux := http.NewServeMux()
	comp.Routes(mux, httputil.Adapter{Log: logger})
	s.comp, s.handler = comp, httputil.Wrap(mux, httputil.ServerOptions{Log: logger})
}

func sk(s string) *string { return &s }

// pdu is a room version 10 PDU, unsigned but with the federation fields a
// client must not see.
func (s *server) pdu(room, typ, sender string, stateKey *string, content string) json.RawMessage {
	s.ts++
	m := map[string]any{"type": typ, "sender": sender, "room_id": room, "content": json.RawMessage(content),
		"origin_server_ts": s.ts, "depth": 3, "origin": "x", "prev_events": []string{"$p"}, "auth_events": []string{"$a"},
		"hashes": map[string]string{"sha256": "aGFzaA"}, "signatures": map[string]any{"x": map[string]string{"ed25519:1": "c2ln"}}}
	if stateKey != nil {
		m["state_key"] = *stateKey
	}
	b, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *server) publish(ev rsapi.OutputEvent) {
	s.t.Helper()
	if _, err := eventlog.Publish(s.t.Context(), s.log, rsapi.OutputTopic, ev.RoomID, ev); err != nil {
		s.t.Fatalf("publish %s: %v", ev.EventID, err)
	}
}

// state publishes a state event that replaces what it names in replaces.
func (s *server) state(room, id, typ, sender, stateKey, content string, replaces ...string) {
	s.t.Helper()
	s.publish(rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: id, Event: s.pdu(room, typ, sender, &stateKey, content),
		AddsState: []string{id}, RemovesState: replaces})
}

// message publishes a message sent by a device.
func (s *server) message(room, id string, dev userapi.Device, txn string) {
	s.t.Helper()
	ev := rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: id, Event: s.pdu(room, "m.room.message", dev.UserID, nil, `{"msgtype":"m.text","body":"`+id+`"}`)}
	if txn != "" {
		ev.TxnID = &rsapi.TransactionID{UserID: dev.UserID, DeviceID: dev.DeviceID, TransactionID: txn}
	}
	s.publish(ev)
}

// createRoom publishes what room creation makes: create, the creator's
// join, power levels, join rules and a name.
func (s *server) createRoom(room, creator string) {
	s.state(room, "$create"+room, "m.room.create", creator, "", `{"room_version":"10"}`)
	s.state(room, "$join"+creator+room, "m.room.member", creator, creator, `{"membership":"join"}`)
	s.state(room, "$pl"+room, "m.room.power_levels", creator, "", `{"users":{"`+creator+`":100}}`)
	s.state(room, "$jr"+room, "m.room.join_rules", creator, "", `{"join_rule":"invite"}`)
	s.state(room, "$name"+room, "m.room.name", creator, "", `{"name":"the room"}`)
}

type event struct {
	EventID  string          `json:"event_id"`
	Type     string          `json:"type"`
	Sender   string          `json:"sender"`
	StateKey *string         `json:"state_key"`
	Content  json.RawMessage `json:"content"`
	Unsigned map[string]any  `json:"unsigned"`
	RoomID   *string         `json:"room_id"`
	Hashes   any             `json:"hashes"`
	Depth    any             `json:"depth"`
}

type timeline struct {
	Events    []event `json:"events"`
	Limited   bool    `json:"limited"`
	PrevBatch string  `json:"prev_batch"`
}

type batch struct {
	Events []event `json:"events"`
}

type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline   timeline       `json:"timeline"`
			State      *batch         `json:"state"`
			StateAfter *batch         `json:"state_after"`
			Summary    map[string]any `json:"summary"`
		} `json:"join"`
		Invite map[string]struct {
			InviteState batch `json:"invite_state"`
		} `json:"invite"`
		Leave map[string]struct {
			Timeline timeline `json:"timeline"`
			State    *batch   `json:"state"`
		} `json:"leave"`
	} `json:"rooms"`
	Errcode string `json:"errcode"`
}

// get calls GET path with the access token (none if empty).
func (s *server) get(token, path string) (int, []byte) {
	s.t.Helper()
	req := httptest.NewRequestWithContext(s.t.Context(), http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// sync calls /sync and fails the test on anything but 200.
func (s *server) sync(token string, q url.Values) syncResponse {
	s.t.Helper()
	code, body := s.get(token, "/_matrix/client/v3/sync?"+q.Encode())
	if code != http.StatusOK {
		s.t.Fatalf("GET /sync?%s = %d %s", q.Encode(), code, body)
	}
	var r syncResponse
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("decode /sync response: %v", err)
	}
	if r.NextBatch == "" {
		s.t.Fatalf("/sync response without next_batch: %s", body)
	}
	return r
}

func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", d, err)
		}
		<-tick.C
	}
}

// syncUntil repeats an initial sync until cond holds.
func (s *server) syncUntil(token string, q url.Values, cond func(r syncResponse) error) syncResponse {
	s.t.Helper()
	var r syncResponse
	waitFor(s.t, 10*time.Second, func() error {
		r = s.sync(token, q)
		return cond(r)
	})
	return r
}

func ids(evs []event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

func hasTimelineEvent(room, id string) func(r syncResponse) error {
	return func(r syncResponse) error {
		if slices.Contains(ids(r.Rooms.Join[room].Timeline.Events), id) {
			return nil
		}
		return fmt.Errorf("%s not yet in the timeline of %s", id, room)
	}
}

var (
	alice1 = users.devices["alice1"]
	bob    = users.devices["bob"]
)

const room = "!room:x"

func TestSyncFirstPath(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		for i := range 3 {
			s.message(room, fmt.Sprintf("$m%d", i), alice1, fmt.Sprintf("txn%d", i))
		}

		// Initial sync with a short timeline: the last three events, and the state before them.
		limit3 := query("filter", `{"room":{"timeline":{"limit":3}}}`)
		r := s.syncUntil("alice1", limit3, hasTimelineEvent(room, "$m2"))
		jr := r.Rooms.Join[room]
		if got := ids(jr.Timeline.Events); !slices.Equal(got, []string{"$m0", "$m1", "$m2"}) || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
			t.Fatalf("timeline = %v limited=%v prev_batch=%q; want [$m0 $m1 $m2] limited", got, jr.Timeline.Limited, jr.Timeline.PrevBatch)
		}
		wantState := []string{"$create" + room, "$join@alice:x" + room, "$pl" + room, "$jr" + room, "$name" + room}
		if jr.State == nil || !slices.Equal(ids(jr.State.Events), wantState) {
			t.Fatalf("state = %v, want %v", jr.State, wantState)
		}
		if jr.Summary["m.joined_member_count"] != float64(1) {
			t.Fatalf("summary = %v, want 1 joined member", jr.Summary)
		}
		for _, e := range append(jr.Timeline.Events, jr.State.Events...) {
			if e.Hashes != nil || e.Depth != nil || e.RoomID != nil || e.Sender == "" || e.Content == nil {
				t.Fatalf("event %s is not in the client format: %+v", e.EventID, e)
			}
			if e.Unsigned["transaction_id"] != nil && e.Type != "m.room.message" {
				t.Fatalf("transaction_id on %s", e.EventID)
			}
		}
		if got := jr.Timeline.Events[0].Unsigned["transaction_id"]; got != "txn0" {
			t.Fatalf("sending device sees transaction_id %v, want txn0", got)
		}
		other := s.sync("alice2", limit3)
		for _, e := range other.Rooms.Join[room].Timeline.Events {
			if _, ok := e.Unsigned["transaction_id"]; ok {
				t.Fatalf("another device of the sender sees transaction_id on %s", e.EventID)
			}
		}
		// Full initial sync: everything in the timeline, so no state.
		full := s.sync("alice1", nil)
		if jr := full.Rooms.Join[room]; len(jr.Timeline.Events) != 8 || jr.Timeline.Limited || len(jr.State.Events) != 0 {
			t.Fatalf("unlimited initial sync: %d timeline events, limited=%v, %d state", len(jr.Timeline.Events), jr.Timeline.Limited, len(jr.State.Events))
		}

		// Bob is invited: he sees the invite with stripped state, the create event included.
		s.state(room, "$invite", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
		rb := s.syncUntil("bob", nil, func(r syncResponse) error {
			if _, ok := r.Rooms.Invite[room]; !ok {
				return fmt.Errorf("no invite yet")
			}
			return nil
		})
		var stripped []string
		for _, e := range rb.Rooms.Invite[room].InviteState.Events {
			if e.EventID != "" || e.Unsigned != nil {
				t.Fatalf("invite_state event is not stripped: %+v", e)
			}
			stripped = append(stripped, e.Type)
		}
		if !slices.Contains(stripped, "m.room.create") || !slices.Contains(stripped, "m.room.name") || !slices.Contains(stripped, "m.room.member") {
			t.Fatalf("invite_state types = %v", stripped)
		}
		if len(rb.Rooms.Join) != 0 {
			t.Fatalf("bob sees joined rooms: %v", rb.Rooms.Join)
		}

		// Incremental for alice: just the new event, not limited, no state.
		next := s.syncUntil("alice1", query("since", r.NextBatch), hasTimelineEvent(room, "$invite"))
		if jr := next.Rooms.Join[room]; !slices.Equal(ids(jr.Timeline.Events), []string{"$invite"}) || jr.Timeline.Limited || len(jr.State.Events) != 0 {
			t.Fatalf("incremental = %v limited=%v state=%v", ids(jr.Timeline.Events), jr.Timeline.Limited, jr.State.Events)
		}
		// Nothing new: an empty answer with the same position.
		again := s.sync("alice1", query("since", next.NextBatch))
		if len(again.Rooms.Join) != 0 || again.NextBatch != next.NextBatch {
			t.Fatalf("empty incremental = %+v; want nothing and next_batch %s", again, next.NextBatch)
		}

		// Bob joins: a newly joined room comes with its full state and timeline.
		bobSince := rb.NextBatch
		s.state(room, "$bjoin", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$invite")
		rj := s.syncUntil("bob", query("since", bobSince, "filter", `{"room":{"timeline":{"limit":2}}}`), hasTimelineEvent(room, "$bjoin"))
		jb := rj.Rooms.Join[room]
		if !slices.Equal(ids(jb.Timeline.Events), []string{"$invite", "$bjoin"}) || !jb.Timeline.Limited {
			t.Fatalf("bob's new room timeline = %v limited=%v", ids(jb.Timeline.Events), jb.Timeline.Limited)
		}
		if !slices.Equal(ids(jb.State.Events), wantState) {
			t.Fatalf("bob's new room state = %v, want %v", ids(jb.State.Events), wantState)
		}
		if jb.Summary["m.joined_member_count"] != float64(2) {
			t.Fatalf("summary after join = %v", jb.Summary)
		}
		for _, e := range jb.Timeline.Events {
			if e.EventID == "$bjoin" && e.Unsigned["replaces_state"] != "$invite" {
				t.Fatalf("join unsigned = %v, want replaces_state $invite", e.Unsigned)
			}
		}
		if _, ok := rj.Rooms.Invite[room]; ok {
			t.Fatalf("the invite is still listed after joining")
		}

		// Bob leaves: the room moves to rooms.leave, its timeline ending with the leave.
		s.message(room, "$m3", alice1, "")
		s.state(room, "$bleave", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bjoin")
		s.message(room, "$after", alice1, "")
		rl := s.syncUntil("bob", query("since", rj.NextBatch), func(r syncResponse) error {
			if _, ok := r.Rooms.Leave[room]; !ok {
				return fmt.Errorf("no leave yet")
			}
			return nil
		})
		if got := ids(rl.Rooms.Leave[room].Timeline.Events); !slices.Equal(got, []string{"$m3", "$bleave"}) {
			t.Fatalf("leave timeline = %v, want [$m3 $bleave]", got)
		}
		if len(rl.Rooms.Join) != 0 {
			t.Fatalf("bob still sees joined rooms after leaving: %v", rl.Rooms.Join)
		}
		// After the leave, bob hears nothing more of the room, and an initial sync omits it.
		s.syncUntil("alice1", nil, hasTimelineEvent(room, "$after"))
		if r := s.sync("bob", query("since", rl.NextBatch)); len(r.Rooms.Join)+len(r.Rooms.Leave) != 0 {
			t.Fatalf("bob hears of the room after leaving: %+v", r.Rooms)
		}
		if r := s.sync("bob", nil); len(r.Rooms.Join)+len(r.Rooms.Leave)+len(r.Rooms.Invite) != 0 {
			t.Fatalf("bob's initial sync lists the left room: %+v", r.Rooms)
		}
		if r := s.sync("bob", query("filter", `{"room":{"include_leave":true}}`)); len(r.Rooms.Leave) != 1 {
			t.Fatalf("include_leave: leave = %v, want the room", r.Rooms.Leave)
		}
	})
}

func TestSyncLimitedIncrementalStateDelta(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		first := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$name"+room))
		// A name change in the gap, then more messages than the limit.
		s.state(room, "$rename", "m.room.name", alice1.UserID, "", `{"name":"renamed"}`, "$name"+room)
		for i := range 4 {
			s.message(room, fmt.Sprintf("$g%d", i), alice1, "")
		}
		q := query("since", first.NextBatch, "filter", `{"room":{"timeline":{"limit":2}}}`)
		r := s.syncUntil("alice1", q, hasTimelineEvent(room, "$g3"))
		jr := r.Rooms.Join[room]
		if !slices.Equal(ids(jr.Timeline.Events), []string{"$g2", "$g3"}) || !jr.Timeline.Limited {
			t.Fatalf("timeline = %v limited=%v", ids(jr.Timeline.Events), jr.Timeline.Limited)
		}
		if !slices.Equal(ids(jr.State.Events), []string{"$rename"}) {
			t.Fatalf("state delta over the gap = %v, want [$rename]", ids(jr.State.Events))
		}
		if jr.State.Events[0].Unsigned["prev_content"] == nil {
			t.Fatalf("rename has no prev_content: %v", jr.State.Events[0].Unsigned)
		}
		// use_state_after: the state at the end of the timeline instead.
		q.Set("use_state_after", "true")
		ra := s.sync("alice1", q).Rooms.Join[room]
		if ra.State != nil || ra.StateAfter == nil || !slices.Equal(ids(ra.StateAfter.Events), []string{"$rename"}) {
			t.Fatalf("use_state_after: state=%v state_after=%v", ra.State, ra.StateAfter)
		}
		// full_state with since: the whole state at the start of the timeline.
		q.Del("use_state_after")
		q.Set("full_state", "true")
		rf := s.sync("alice1", q).Rooms.Join[room]
		if len(rf.State.Events) != 5 || !slices.Contains(ids(rf.State.Events), "$rename") {
			t.Fatalf("full_state = %v", ids(rf.State.Events))
		}
	})
}

func TestSyncHistoryVisibility(t *testing.T) {
	tests := []struct {
		name       string
		visibility string
		want       []string
	}{
		{name: "shared", visibility: "shared", want: []string{"$early", "$invite", "$bjoin", "$late"}},
		{name: "invited", visibility: "invited", want: []string{"$invite", "$bjoin", "$late"}},
		{name: "joined", visibility: "joined", want: []string{"$bjoin", "$late"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
				s := newServer(t, db)
				s.createRoom(room, alice1.UserID)
				s.state(room, "$hv", "m.room.history_visibility", alice1.UserID, "", `{"history_visibility":"`+tc.visibility+`"}`)
				s.message(room, "$early", alice1, "")
				s.state(room, "$invite", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
				s.state(room, "$bjoin", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`, "$invite")
				s.message(room, "$late", alice1, "")
				r := s.syncUntil("bob", query("filter", `{"room":{"timeline":{"limit":4}}}`), hasTimelineEvent(room, "$late"))
				jr := r.Rooms.Join[room]
				if got := ids(jr.Timeline.Events); !slices.Equal(got, tc.want) {
					t.Fatalf("bob's timeline = %v, want %v", got, tc.want)
				}
				// Whatever the timeline hides, the state at its start is complete.
				if st := ids(jr.State.Events); !slices.Contains(st, "$hv") || !slices.Contains(st, "$name"+room) {
					t.Fatalf("bob's state = %v, want the room's state", st)
				}
			})
		})
	}
}

// waiting is the number of long-polling /sync requests, from the metrics.
func (s *server) waiting() float64 {
	mfs, err := s.registry.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "axon_syncapi_sync_waiting" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

func TestSyncLongPoll(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		r := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$name"+room))

		// A long-poll returns as soon as the event is committed.
		type result struct {
			r   syncResponse
			err error
		}
		done := make(chan result, 1)
		go func() {
			code, body := s.get("alice1", "/_matrix/client/v3/sync?"+query("since", r.NextBatch, "timeout", "60000").Encode())
			var res result
			if code != http.StatusOK {
				res.err = fmt.Errorf("status %d: %s", code, body)
			} else {
				res.err = json.Unmarshal(body, &res.r)
			}
			done <- res
		}()
		waitFor(t, 10*time.Second, func() error {
			if s.waiting() != 1 {
				return fmt.Errorf("the request is not waiting yet")
			}
			return nil
		})
		s.message(room, "$wake", alice1, "")
		select {
		case res := <-done:
			if res.err != nil {
				t.Fatal(res.err)
			}
			if got := ids(res.r.Rooms.Join[room].Timeline.Events); !slices.Equal(got, []string{"$wake"}) {
				t.Fatalf("long-poll returned %v, want [$wake]", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the long-poll did not return after the event was published")
		}

		// Nothing arrives: an empty answer at the same position once the timeout passes.
		quiet := s.sync("alice1", query("since", r.NextBatch, "timeout", "0"))
		empty := s.sync("alice1", query("since", quiet.NextBatch, "timeout", "50"))
		if len(empty.Rooms.Join) != 0 || empty.NextBatch != quiet.NextBatch {
			t.Fatalf("timed-out long-poll = %+v, want empty at %s", empty, quiet.NextBatch)
		}

		// An event in a room bob is not in does not end his long-poll; his invite does.
		var bobWoken atomic.Bool
		bobDone := make(chan syncResponse, 1)
		bobStart := s.sync("bob", nil)
		go func() {
			defer bobWoken.Store(true)
			code, body := s.get("bob", "/_matrix/client/v3/sync?"+query("since", bobStart.NextBatch, "timeout", "60000").Encode())
			var res syncResponse
			if code == http.StatusOK {
				_ = json.Unmarshal(body, &res)
			}
			bobDone <- res
		}()
		waitFor(t, 10*time.Second, func() error {
			if s.waiting() != 1 {
				return fmt.Errorf("bob's request is not waiting yet")
			}
			return nil
		})
		s.message(room, "$notforbob", alice1, "")
		s.syncUntil("alice1", nil, hasTimelineEvent(room, "$notforbob"))
		if bobWoken.Load() {
			t.Fatal("bob's long-poll ended on an event of a room he is not in")
		}
		s.state(room, "$invite", "m.room.member", alice1.UserID, bob.UserID, `{"membership":"invite"}`)
		select {
		case res := <-bobDone:
			if _, ok := res.Rooms.Invite[room]; !ok {
				t.Fatalf("bob's long-poll returned %+v, want the invite", res.Rooms)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("bob's long-poll did not return after the invite")
		}
	})
}

func TestSyncIdempotentConsumer(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		before := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$name"+room))
		dup := rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: "$dup", Event: s.pdu(room, "m.room.message", alice1.UserID, nil, `{"body":"once"}`)}
		s.publish(dup)
		s.publish(dup)
		s.message(room, "$sentinel", alice1, "") // the room is consumed in order: both copies come before it
		r := s.syncUntil("alice1", query("since", before.NextBatch), hasTimelineEvent(room, "$sentinel"))
		if got := ids(r.Rooms.Join[room].Timeline.Events); !slices.Equal(got, []string{"$dup", "$sentinel"}) {
			t.Fatalf("timeline = %v, want [$dup $sentinel]", got)
		}
		if want := advance(t, before.NextBatch, 2); r.NextBatch != want {
			t.Fatalf("next_batch = %s, want %s: the duplicate took a position", r.NextBatch, want)
		}
	})
}

// advance adds n to a token's PDU position (the first of its positions).
func advance(t testing.TB, tok string, n int) string {
	var p int
	head, rest, _ := strings.Cut(strings.TrimPrefix(tok, "s"), "_")
	if _, err := fmt.Sscanf(head, "%d", &p); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	if rest != "" {
		rest = "_" + rest
	}
	return fmt.Sprintf("s%d%s", p+n, rest)
}

func TestSyncRestart(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		s.createRoom(room, alice1.UserID)
		s.message(room, "$before", alice1, "")
		r := s.syncUntil("alice1", nil, hasTimelineEvent(room, "$before"))

		s.comp.Close()
		s.message(room, "$while-down", alice1, "")
		s.start()
		s.message(room, "$after", alice1, "")

		next := s.syncUntil("alice1", query("since", r.NextBatch), hasTimelineEvent(room, "$after"))
		if got := ids(next.Rooms.Join[room].Timeline.Events); !slices.Equal(got, []string{"$while-down", "$after"}) {
			t.Fatalf("after restart: timeline = %v, want [$while-down $after]", got)
		}
		all := ids(s.sync("alice1", nil).Rooms.Join[room].Timeline.Events)
		want := []string{"$create" + room, "$join@alice:x" + room, "$pl" + room, "$jr" + room, "$name" + room, "$before", "$while-down", "$after"}
		if !slices.Equal(all, want) {
			t.Fatalf("initial sync after restart = %v, want %v", all, want)
		}
	})
}

func TestSyncErrors(t *testing.T) {
	s := newServer(t, storagetest.SQLite(t))
	tests := []struct {
		name    string
		method  string
		token   string
		path    string
		status  int
		errcode string
	}{
		{name: "missing token", path: "/_matrix/client/v3/sync", status: 401, errcode: apierr.CodeMissingToken},
		{name: "unknown token", token: "nope", path: "/_matrix/client/v3/sync", status: 401, errcode: apierr.CodeUnknownToken},
		{name: "bad since", token: "alice1", path: "/_matrix/client/v3/sync?since=yesterday", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "negative timeout", token: "alice1", path: "/_matrix/client/v3/sync?timeout=-5", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "non-numeric timeout", token: "alice1", path: "/_matrix/client/v3/sync?timeout=abc", status: 400, errcode: apierr.CodeInvalidParam},
		{name: "bad filter", token: "alice1", path: "/_matrix/client/v3/sync?filter=%7Bnot", status: 400, errcode: apierr.CodeNotJSON},
		{name: "wrong method", method: http.MethodPost, token: "alice1", path: "/_matrix/client/v3/sync", status: 405, errcode: apierr.CodeUnrecognized},
		{name: "r0 alias", token: "alice1", path: "/_matrix/client/r0/sync", status: 200},
		{name: "since from the future reads as now", token: "alice1", path: "/_matrix/client/v3/sync?since=s999999&timeout=0", status: 200},
		{name: "query token", path: "/_matrix/client/v3/sync?access_token=alice1", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequestWithContext(t.Context(), method, tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			var body syncResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tc.status || body.Errcode != tc.errcode {
				t.Fatalf("%s %s = %d %s; want %d %s", method, tc.path, rec.Code, rec.Body, tc.status, tc.errcode)
			}
		})
	}
}
