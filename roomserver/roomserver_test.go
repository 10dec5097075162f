package roomserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
	"github.com/axon-hs/axon/roomserver"
	"github.com/axon-hs/axon/roomserver/api"
)

const origin = matrix.ServerName("rs.test")

func strp(s string) *string { return &s }

// chain builds a linear sequence of events in a new room.
type chain struct {
	t      *testing.T
	v      *event.RoomVersion
	key    signing.Key
	roomID matrix.RoomID
	prev   matrix.EventID
	depth  int64
	state  map[event.StateKeyTuple]matrix.EventID
}

func newChain(t *testing.T, version string) *chain {
	v, ok := event.Version(version)
	if !ok {
		t.Fatalf("version %s", version)
	}
	k, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{t: t, v: v, key: k, state: map[event.StateKeyTuple]matrix.EventID{}}
	if !v.RoomIDFromCreate {
		c.roomID = matrix.RoomID("!room:" + string(origin))
	}
	return c
}

func (c *chain) add(typ string, stateKey *string, sender string, content any) *event.PDU {
	c.t.Helper()
	return c.addProto(event.Proto{Type: typ, StateKey: stateKey, Sender: matrix.UserID(sender), Content: content})
}

// addProto adds p to the chain, filling in room, auth and prev events and depth.
func (c *chain) addProto(p event.Proto) *event.PDU {
	c.t.Helper()
	p.RoomID = c.roomID
	for _, tu := range event.AuthEventsNeeded(p, c.v) {
		if id, ok := c.state[tu]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	if c.prev != "" {
		p.PrevEvents = []matrix.EventID{c.prev}
	}
	c.depth++
	p.Depth = c.depth
	e, err := p.Build(c.v, origin, c.key)
	if err != nil {
		c.t.Fatalf("build %s: %v", p.Type, err)
	}
	c.roomID, c.prev = e.RoomID(), e.EventID()
	if p.StateKey != nil {
		c.state[event.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}] = e.EventID()
	}
	return e
}

func input(v *event.RoomVersion, evs ...*event.PDU) api.InputRoomEventsRequest {
	req := api.InputRoomEventsRequest{RoomID: string(evs[0].RoomID()), RoomVersion: v.ID}
	for _, e := range evs {
		req.Events = append(req.Events, api.InputEvent{Kind: api.KindNew, Event: json.RawMessage(e.JSON())})
	}
	return req
}

type outputs struct {
	mu  sync.Mutex
	evs []api.OutputEvent
}

func (o *outputs) ids() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, e := range o.evs {
		out = append(out, e.EventID)
	}
	return out
}

// byRoom returns the output event ids by room, in order per room.
func (o *outputs) byRoom() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := map[string][]string{}
	for _, e := range o.evs {
		got[e.RoomID] = append(got[e.RoomID], e.EventID)
	}
	return got
}

func start(t *testing.T, db *sqlutil.DB) (*roomserver.Component, *outputs) {
	return startLogging(t, db, slog.New(slog.DiscardHandler))
}

// startLogging is start with the roomserver and its log writing to log.
func startLogging(t *testing.T, db *sqlutil.DB, log *slog.Logger) (*roomserver.Component, *outputs) {
	l, err := eventlog.OpenJetStream(t.Context(), eventlog.JetStreamConfig{DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := roomserver.New(t.Context(), roomserver.Deps{Log: log, DB: db, EventLog: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	out := &outputs{}
	sub, err := eventlog.Consume(t.Context(), l, api.OutputTopic, "test", eventlog.ConsumeOptions{Ordered: true},
		func(_ context.Context, m eventlog.Msg[api.OutputEvent]) error {
			out.mu.Lock()
			out.evs = append(out.evs, m.Value)
			out.mu.Unlock()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	return c, out
}

// eachTransport runs f on the implementation and through the HTTP client.
func eachTransport(t *testing.T, f func(t *testing.T, a api.API, out *outputs)) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		t.Run("direct", func(t *testing.T) {
			c, out := start(t, db)
			f(t, c.API(), out)
		})
	})
	t.Run("http", func(t *testing.T) {
		c, out := start(t, storagetest.SQLite(t))
		mux := http.NewServeMux()
		api.Serve(rpc.NewServer(mux, nil), c.API())
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		f(t, api.Client{C: rpc.NewClient(srv.URL, nil)}, out)
	})
}

func TestInputAndQueries(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		alice := "@alice:" + string(origin)
		c := newChain(t, event.DefaultRoomVersion)
		create := c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": c.v.ID})
		join := c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"})
		pl := c.add(event.TypePowerLevels, strp(""), alice, map[string]any{"users": map[string]any{}, "state_default": 50})
		jr := c.add(event.TypeJoinRules, strp(""), alice, map[string]any{"join_rule": "invite"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, create, join, pl, jr)); err != nil {
			t.Fatalf("InputRoomEvents(create chain) = %v", err)
		}
		// The latest event is also state asked for: it is reported as both.
		res, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: event.TypeJoinRules}, {Type: event.TypeCreate}}})
		if err != nil || len(res.LatestEvents) != 1 || res.LatestEvents[0] != string(jr.EventID()) || len(res.StateEventIDs) != 2 ||
			!slices.ContainsFunc(res.StateEventIDs, func(s api.StateEventID) bool { return s.EventID == string(jr.EventID()) }) {
			t.Fatalf("QueryLatestEventsAndState after the create chain = %+v, %v", res, err)
		}
		msg := c.add("m.room.message", nil, alice, map[string]any{"body": "hi", "msgtype": "m.text"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, msg)); err != nil {
			t.Fatalf("InputRoomEvents(message) = %v", err)
		}
		// A retried request changes nothing.
		if _, err := a.InputRoomEvents(ctx, input(c.v, msg)); err != nil {
			t.Fatalf("InputRoomEvents(message again) = %v", err)
		}

		res, err = a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: event.TypePowerLevels}, {Type: event.TypeMember, StateKey: alice}, {Type: "m.room.name"}}})
		if err != nil || !res.RoomExists || res.RoomVersion != c.v.ID || res.Depth != 5 ||
			len(res.LatestEvents) != 1 || res.LatestEvents[0] != string(msg.EventID()) || len(res.StateEvents) != 2 {
			t.Fatalf("QueryLatestEventsAndState = %+v, %v", res, err)
		}
		// StateEventIDs name the same events, by tuple.
		if len(res.StateEventIDs) != len(res.StateEvents) {
			t.Fatalf("StateEventIDs = %+v for %d events", res.StateEventIDs, len(res.StateEvents))
		}
		for i, raw := range res.StateEvents {
			e, err := event.Parse(raw, c.v)
			if err != nil {
				t.Fatal(err)
			}
			want := api.StateEventID{Type: e.Type(), StateKey: *e.StateKey(), EventID: string(e.EventID())}
			if res.StateEventIDs[i] != want {
				t.Errorf("StateEventIDs[%d] = %+v, want %+v", i, res.StateEventIDs[i], want)
			}
		}
		cur, err := a.QueryCurrentState(ctx, api.QueryCurrentStateRequest{RoomID: string(c.roomID)})
		if err != nil || len(cur.StateEvents) != 4 {
			t.Fatalf("QueryCurrentState = %d events, %v; want 4", len(cur.StateEvents), err)
		}
		none, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: "!nope:x"})
		if err != nil || none.RoomExists {
			t.Fatalf("unknown room = %+v, %v", none, err)
		}
		if _, err := a.QueryCurrentState(ctx, api.QueryCurrentStateRequest{RoomID: "!nope:x"}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("QueryCurrentState(unknown) = %v, want M_NOT_FOUND", err)
		}

		// A message whose prev event is unknown is refused with M_FORBIDDEN.
		stray := newChain(t, event.DefaultRoomVersion)
		stray.roomID, stray.prev, stray.depth = c.roomID, "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 9
		bad := stray.add("m.room.message", nil, alice, map[string]any{"body": "lost"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, bad)); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("InputRoomEvents(missing prev) = %v, want M_FORBIDDEN", err)
		}

		want := []string{string(create.EventID()), string(join.EventID()), string(pl.EventID()), string(jr.EventID()), string(msg.EventID())}
		deadline := time.Now().Add(10 * time.Second)
		for len(out.ids()) < len(want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := out.ids(); !reflect.DeepEqual(got, want) {
			t.Fatalf("output events = %v, want %v", got, want)
		}
		out.mu.Lock()
		defer out.mu.Unlock()
		if len(out.evs[2].AddsState) != 1 || out.evs[2].AddsState[0] != string(pl.EventID()) || len(out.evs[4].AddsState) != 0 {
			t.Fatalf("state deltas: %+v / %+v", out.evs[2], out.evs[4])
		}
	})
}

// TestAtomicInput: an atomic request with a rejected event stores none of
// its events and announces none; the same events without Atomic keep those
// before the rejected one.
func TestAtomicInput(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		alice, mallory := "@alice:"+string(origin), "@mallory:"+string(origin)
		rooms := 0
		build := func() (*chain, []*event.PDU) {
			c := newChain(t, event.DefaultRoomVersion)
			rooms++ // distinct rooms even when created in the same millisecond
			create := c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": c.v.ID, "nonce": rooms})
			join := c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"})
			// Mallory never joined: her topic is refused by the auth rules.
			topic := c.add("m.room.topic", strp(""), mallory, map[string]any{"topic": "mine"})
			return c, []*event.PDU{create, join, topic}
		}

		c, evs := build()
		req := input(c.v, evs...)
		req.Atomic = true
		if _, err := a.InputRoomEvents(ctx, req); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("atomic InputRoomEvents = %v, want M_FORBIDDEN", err)
		}
		res, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID)})
		if err != nil || res.RoomExists {
			t.Fatalf("after a refused atomic input the room exists: %+v, %v", res, err)
		}

		// The same shape without Atomic: create and join stay.
		c2, evs2 := build()
		if _, err := a.InputRoomEvents(ctx, input(c2.v, evs2...)); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("InputRoomEvents = %v, want M_FORBIDDEN", err)
		}
		res, err = a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c2.roomID)})
		if err != nil || !res.RoomExists || len(res.LatestEvents) != 1 || res.LatestEvents[0] != string(evs2[1].EventID()) {
			t.Fatalf("non-atomic: %+v, %v; want the room with the join latest", res, err)
		}

		// An atomic request that passes stores every event.
		c3, evs3 := build()
		req = input(c3.v, evs3[:2]...)
		req.Atomic = true
		if _, err := a.InputRoomEvents(ctx, req); err != nil {
			t.Fatalf("atomic InputRoomEvents = %v", err)
		}

		// Outputs, in order per room (rooms may interleave): the second and
		// third rooms' create and join; nothing of the first room, whose
		// input was published before theirs.
		want := map[string][]string{
			string(c2.roomID): {string(evs2[0].EventID()), string(evs2[1].EventID())},
			string(c3.roomID): {string(evs3[0].EventID()), string(evs3[1].EventID())},
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(out.ids()) < 4 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := out.byRoom(); !reflect.DeepEqual(got, want) {
			t.Fatalf("output events = %v, want %v", got, want)
		}
	})
}

// TestInputBatch: input messages that are all waiting when the consumer
// starts are handled together; each refused event or atomic request is
// undone alone and the rest is stored and announced in order per room.
func TestInputBatch(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		log := slog.New(slog.DiscardHandler)
		l, err := eventlog.OpenJetStream(ctx, eventlog.JetStreamConfig{DataDir: t.TempDir()}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		alice, mallory := "@alice:"+string(origin), "@mallory:"+string(origin)
		publish := func(req api.InputRoomEventsRequest) {
			t.Helper()
			if _, err := eventlog.Publish(ctx, l, api.InputTopic, req.RoomID, api.InputMessage{Request: req}); err != nil {
				t.Fatal(err)
			}
		}
		rooms := 0
		newRoom := func() (*chain, *event.PDU, *event.PDU) {
			c := newChain(t, event.DefaultRoomVersion)
			// The room id is the create event's hash: two rooms created in
			// the same millisecond need different contents.
			rooms++
			create := c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": c.v.ID, "nonce": rooms})
			join := c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"})
			return c, create, join
		}
		// Room A: created atomically, a message, a refused message, a message.
		a, aCreate, aJoin := newRoom()
		req := input(a.v, aCreate, aJoin)
		req.Atomic = true
		publish(req)
		msg1 := a.add("m.room.message", nil, alice, map[string]any{"body": "1"})
		publish(input(a.v, msg1))
		prev, depth := a.prev, a.depth
		publish(input(a.v, a.add("m.room.message", nil, mallory, map[string]any{"body": "intruder"})))
		a.prev, a.depth = prev, depth
		msg2 := a.add("m.room.message", nil, alice, map[string]any{"body": "2"})
		publish(input(a.v, msg2))
		// Room B: not atomic, its third event refused: the first two stay.
		b, bCreate, bJoin := newRoom()
		publish(input(b.v, bCreate, bJoin, b.add("m.room.topic", strp(""), mallory, map[string]any{"topic": "x"})))
		// Room C: atomic with a refused event: nothing stays.
		c, cCreate, cJoin := newRoom()
		req = input(c.v, cCreate, cJoin, c.add("m.room.topic", strp(""), mallory, map[string]any{"topic": "x"}))
		req.Atomic = true
		publish(req)

		comp, err := roomserver.New(ctx, roomserver.Deps{Log: log, DB: db, EventLog: l})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(comp.Close)
		out := &outputs{}
		sub, err := eventlog.Consume(ctx, l, api.OutputTopic, "test", eventlog.ConsumeOptions{Ordered: true},
			func(_ context.Context, m eventlog.Msg[api.OutputEvent]) error {
				out.mu.Lock()
				out.evs = append(out.evs, m.Value)
				out.mu.Unlock()
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Stop)

		want := map[string][]string{
			string(a.roomID): {string(aCreate.EventID()), string(aJoin.EventID()), string(msg1.EventID()), string(msg2.EventID())},
			string(b.roomID): {string(bCreate.EventID()), string(bJoin.EventID())},
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(out.ids()) < 6 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // anything wrongly published comes too
		if got := out.byRoom(); !reflect.DeepEqual(got, want) {
			t.Fatalf("output events = %v, want %v", got, want)
		}
		rs := comp.API()
		for room, latest := range map[matrix.RoomID]string{a.roomID: string(msg2.EventID()), b.roomID: string(bJoin.EventID())} {
			res, err := rs.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(room)})
			if err != nil || !res.RoomExists || len(res.LatestEvents) != 1 || res.LatestEvents[0] != latest {
				t.Errorf("room %s: %+v, %v; want latest %s", room, res, err, latest)
			}
		}
		if res, err := rs.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID)}); err != nil || res.RoomExists {
			t.Errorf("room C exists after a refused atomic request: %+v, %v", res, err)
		}
	})
}

// TestLatestEventHashes: for room versions 1 and 2, whose events reference
// others by [id, hashes], the roomserver reports the latest events'
// reference hashes; later versions need none.
func TestLatestEventHashes(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		alice := "@alice:" + string(origin)
		for _, ver := range []string{"1", "11"} {
			c := newChain(t, ver)
			c.roomID = matrix.RoomID("!hashes" + ver + ":" + string(origin))
			create := c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": ver, "creator": alice})
			join := c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"})
			if _, err := a.InputRoomEvents(ctx, input(c.v, create, join)); err != nil {
				t.Fatalf("v%s: InputRoomEvents = %v", ver, err)
			}
			res, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID)})
			if err != nil {
				t.Fatal(err)
			}
			want, err := event.ReferenceHash(join.JSON(), c.v)
			if err != nil {
				t.Fatal(err)
			}
			got := res.LatestEventHashes[string(join.EventID())]
			if ver == "1" && string(got) != string(want) {
				t.Fatalf("v1 latest event hash = %x, want %x", got, want)
			}
			if ver != "1" && res.LatestEventHashes != nil {
				t.Fatalf("v%s: hashes reported: %v", ver, res.LatestEventHashes)
			}
		}
	})
}

func TestEveryMethodServed(t *testing.T) {
	s := rpc.NewServer(http.NewServeMux(), nil)
	api.Serve(s, api.Client{}) // any implementation will do: only the names matter
	if missing := rpc.Unserved(reflect.TypeFor[api.API](), "roomserver", s); len(missing) != 0 {
		t.Fatalf("not served over HTTP: %v", missing)
	}
}

func TestAuthRulesAndForks(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API, out *outputs) {
		ctx := t.Context()
		alice, bob := "@alice:"+string(origin), "@bob:"+string(origin)
		c := newChain(t, event.DefaultRoomVersion)
		evs := []*event.PDU{
			c.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": c.v.ID}),
			c.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"}),
			c.add(event.TypePowerLevels, strp(""), alice, map[string]any{"users": map[string]any{}}),
			c.add(event.TypeJoinRules, strp(""), alice, map[string]any{"join_rule": "invite"}),
		}
		if _, err := a.InputRoomEvents(ctx, input(c.v, evs...)); err != nil {
			t.Fatal(err)
		}
		base, baseDepth := c.prev, c.depth

		// bob is not a member: his message is rejected with the rule's reason.
		intruder := c.add("m.room.message", nil, bob, map[string]any{"body": "let me in"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, intruder)); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("non-member message = %v, want M_FORBIDDEN", err)
		}

		// Two branches from the same event, each renaming the room.
		c.prev, c.depth = base, baseDepth
		left := c.add("m.room.name", strp(""), alice, map[string]any{"name": "left"})
		c.prev, c.depth = base, baseDepth
		right := c.add("m.room.name", strp(""), alice, map[string]any{"name": "right"})
		for _, e := range []*event.PDU{left, right} {
			if _, err := a.InputRoomEvents(ctx, input(c.v, e)); err != nil {
				t.Fatalf("branch %s = %v", e.EventID(), err)
			}
		}
		latest, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: "m.room.name"}}})
		if err != nil || len(latest.LatestEvents) != 2 || len(latest.StateEvents) != 1 {
			t.Fatalf("after the fork: %+v, %v; want two extremities and one resolved name", latest, err)
		}
		// An event on both branches merges them.
		c.prev, c.depth = "", max(left.Depth(), right.Depth())
		p := event.Proto{Type: "m.room.message", Sender: matrix.UserID(alice), RoomID: c.roomID, Content: map[string]any{"body": "merge"},
			PrevEvents: []matrix.EventID{left.EventID(), right.EventID()}, Depth: c.depth + 1}
		for _, tu := range event.AuthEventsNeeded(p, c.v) {
			p.AuthEvents = append(p.AuthEvents, c.state[tu])
		}
		merge, err := p.Build(c.v, origin, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.InputRoomEvents(ctx, input(c.v, merge)); err != nil {
			t.Fatalf("merge = %v", err)
		}
		after, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: "m.room.name"}}})
		if err != nil || len(after.LatestEvents) != 1 || after.LatestEvents[0] != string(merge.EventID()) || len(after.StateEvents) != 1 {
			t.Fatalf("after the merge: %+v, %v", after, err)
		}
		if string(after.StateEvents[0]) != string(latest.StateEvents[0]) {
			t.Fatalf("the merge changed the resolved name: %s vs %s", after.StateEvents[0], latest.StateEvents[0])
		}
		// Events on top of the merge (a message stored with a new snapshot)
		// and of that message (stored with the snapshot it shares) are
		// judged against the merged state: alice is a member there.
		c.prev, c.depth = merge.EventID(), merge.Depth()
		for i := range 2 {
			next := c.add("m.room.message", nil, alice, map[string]any{"body": fmt.Sprint("after the merge ", i)})
			if _, err := a.InputRoomEvents(ctx, input(c.v, next)); err != nil {
				t.Fatalf("message %d after the merge = %v", i, err)
			}
		}
		rename := c.add("m.room.name", strp(""), alice, map[string]any{"name": "merged"})
		if _, err := a.InputRoomEvents(ctx, input(c.v, rename)); err != nil {
			t.Fatalf("rename after the merge = %v", err)
		}
		final, err := a.QueryLatestEventsAndState(ctx, api.QueryLatestEventsAndStateRequest{RoomID: string(c.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: "m.room.name"}, {Type: event.TypeJoinRules}, {Type: event.TypeMember, StateKey: alice}}})
		if err != nil || len(final.StateEvents) != 3 || len(final.LatestEvents) != 1 || final.LatestEvents[0] != string(rename.EventID()) {
			t.Fatalf("after the rename: %+v, %v", final, err)
		}
	})
}
