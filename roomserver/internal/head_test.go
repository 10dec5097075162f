package internal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// TestHeadCacheDropsRacingReads: a read that began before a commit and
// stores its result after the commit's advance is not cached, and advance
// carries the state only from the head it moves from.
func TestHeadCacheDropsRacingReads(t *testing.T) {
	const room = "!r:test"
	r0 := storage.Room{NID: 1, RoomID: room, Version: "11", LatestEvents: []int64{5}, SnapshotNID: 10, Depth: 3}
	r1 := storage.Room{NID: 1, RoomID: room, Version: "11", LatestEvents: []int64{6}, SnapshotNID: 11, Depth: 4}
	r2 := storage.Room{NID: 1, RoomID: room, Version: "11", LatestEvents: []int64{7}, SnapshotNID: 11, Depth: 5}
	pl := storage.Tuple{Type: event.TypePowerLevels}
	member := storage.Tuple{Type: event.TypeMember, StateKey: "@a:test"}
	pl1, pl2 := stateEvent{id: "$pl1", json: json.RawMessage(`{"pl":1}`)}, stateEvent{id: "$pl2", json: json.RawMessage(`{"pl":2}`)}
	// cachedAt returns a cache holding r0 with the power levels pl1.
	cachedAt := func(t *testing.T) *headCache {
		c := newHeadCache()
		_, _, miss := c.lookup(room, nil)
		c.fill(room, miss.e, &headEntry{filled: true, room: r0, latestIDs: []string{"$5"}, state: map[storage.Tuple]stateEvent{pl: pl1}})
		return c
	}
	query := func(t *testing.T, c *headCache, want ...storage.Tuple) (api.QueryLatestEventsAndStateResponse, bool, headMiss) {
		t.Helper()
		return c.lookup(room, want)
	}
	move := func(before, after storage.Room, id string, kept bool) headMove {
		return headMove{roomID: room, before: before, after: after, latestIDs: []string{id}, stateKept: kept}
	}

	t.Run("head read before the commit", func(t *testing.T) {
		c := newHeadCache()
		_, hit, miss := query(t, c)
		if hit || miss.head != nil {
			t.Fatalf("empty cache: hit %v, head %v", hit, miss.head)
		}
		c.advance([]headMove{move(r0, r1, "$6", true)})
		c.fill(room, miss.e, &headEntry{filled: true, room: r0, latestIDs: []string{"$5"}})
		resp, hit, _ := query(t, c)
		if !hit || !slices.Equal(resp.LatestEvents, []string{"$6"}) || resp.Depth != 4 {
			t.Fatalf("after a racing fill: hit %v, %+v; want the committed head $6", hit, resp)
		}
	})
	t.Run("state read before the commit", func(t *testing.T) {
		c := cachedAt(t)
		_, hit, miss := query(t, c, pl, member)
		if hit || miss.head == nil || !slices.Equal(miss.missing, []storage.Tuple{member}) {
			t.Fatalf("lookup = hit %v, %+v; want the member missing", hit, miss)
		}
		m := move(r0, r1, "$6", true)
		m.tuple, m.ev = &pl, pl2
		c.advance([]headMove{m})
		c.addState(room, miss.e, map[storage.Tuple]stateEvent{member: {id: "$old-member"}})
		if resp, hit, _ := query(t, c, pl); !hit || resp.StateEventIDs[0].EventID != "$pl2" || string(resp.StateEvents[0]) != `{"pl":2}` {
			t.Fatalf("power levels after the move = hit %v, %+v; want $pl2", hit, resp)
		}
		if _, hit, _ := query(t, c, member); hit {
			t.Fatal("a state read that raced the commit was cached")
		}
	})
	t.Run("state not kept", func(t *testing.T) {
		c := cachedAt(t)
		c.advance([]headMove{move(r0, r1, "$6", false)})
		_, hit, miss := query(t, c, pl)
		if hit || miss.head == nil || miss.head.room.SnapshotNID != r1.SnapshotNID {
			t.Fatalf("lookup = hit %v, %+v; want the new head without state", hit, miss)
		}
	})
	t.Run("move from another head", func(t *testing.T) {
		c := cachedAt(t)
		c.advance([]headMove{move(r1, r2, "$7", true)})
		if _, hit, _ := query(t, c, pl); hit {
			t.Fatal("state carried over from a head the move did not start at")
		}
	})
	t.Run("moves in a row", func(t *testing.T) {
		c := cachedAt(t)
		c.advance([]headMove{move(r0, r1, "$6", true), move(r1, r2, "$7", true)})
		resp, hit, _ := query(t, c, pl)
		if !hit || !slices.Equal(resp.LatestEvents, []string{"$7"}) || resp.StateEventIDs[0].EventID != "$pl1" {
			t.Fatalf("after two moves: hit %v, %+v", hit, resp)
		}
	})
	t.Run("forget", func(t *testing.T) {
		c := cachedAt(t)
		c.forget([]string{room})
		if _, hit, miss := query(t, c); hit || miss.head != nil {
			t.Fatalf("after forget: hit %v, head %v", hit, miss.head)
		}
	})
	t.Run("filled after the commit", func(t *testing.T) {
		c := newHeadCache()
		_, _, miss := query(t, c)
		c.fill(room, miss.e, &headEntry{filled: true, room: r1, latestIDs: []string{"$6"}, state: map[storage.Tuple]stateEvent{pl: pl2}})
		c.advance([]headMove{move(r0, r1, "$6", false)})
		if resp, hit, _ := query(t, c, pl); !hit || resp.StateEventIDs[0].EventID != "$pl2" {
			t.Fatalf("a head read after the commit was dropped: hit %v, %+v", hit, resp)
		}
	})
}

// failingLog stands in for the event log; Publish fails while fail is set,
// which rolls the input transaction back. It keeps what was published.
type failingLog struct {
	fail      atomic.Bool
	mu        sync.Mutex
	published [][]byte
}

func (l *failingLog) Publish(_ context.Context, _, _ string, data []byte) (uint64, error) {
	if l.fail.Load() {
		return 0, errors.New("log unavailable")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published = append(l.published, data)
	return uint64(len(l.published)), nil
}

func (l *failingLog) Subscribe(context.Context, string, string, eventlog.ConsumeOptions, func(context.Context, eventlog.RawMsg) error) (eventlog.Subscription, error) {
	return nil, errors.New("not supported")
}

func (l *failingLog) Close() error { return nil }

const testOrigin = matrix.ServerName("head.test")

// testRoom sends events to a roomserver as the clientapi does: each is built
// on the head QueryLatestEventsAndState answers, then handed to HandleInput.
type testRoom struct {
	t      testing.TB
	r      *Roomserver
	v      *event.RoomVersion
	key    signing.Key
	roomID matrix.RoomID
}

func newTestRoom(t testing.TB, r *Roomserver, nonce int) *testRoom {
	t.Helper()
	v, _ := event.Version(event.DefaultRoomVersion)
	key, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		t.Fatal(err)
	}
	h := &testRoom{t: t, r: r, v: v, key: key}
	alice := matrix.UserID("@alice:" + testOrigin)
	// The room's first events, chained here as createRoom does.
	state := map[event.StateKeyTuple]matrix.EventID{}
	var prev matrix.EventID
	var evs []*event.PDU
	for i, p := range []event.Proto{
		{Type: event.TypeCreate, StateKey: new(""), Content: map[string]any{"room_version": v.ID, "nonce": nonce}},
		{Type: event.TypeMember, StateKey: new(string(alice)), Content: map[string]any{"membership": "join"}},
		{Type: event.TypePowerLevels, StateKey: new(""), Content: map[string]any{}},
		{Type: event.TypeJoinRules, StateKey: new(""), Content: map[string]any{"join_rule": "public"}},
		{Type: "m.room.topic", StateKey: new(""), Content: map[string]any{"topic": "the first topic"}},
	} {
		p.Sender, p.RoomID, p.Depth = alice, h.roomID, int64(i+1)
		for _, tu := range event.AuthEventsNeeded(p, v) {
			if id, ok := state[tu]; ok {
				p.AuthEvents = append(p.AuthEvents, id)
			}
		}
		if prev != "" {
			p.PrevEvents = []matrix.EventID{prev}
		}
		e, err := p.Build(v, testOrigin, key)
		if err != nil {
			t.Fatal(err)
		}
		h.roomID, prev = e.RoomID(), e.EventID()
		state[event.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}] = e.EventID()
		evs = append(evs, e)
	}
	req := h.request(evs...)
	req.Atomic = true
	if err := h.handle(req); err != nil {
		t.Fatalf("create room: %v", err)
	}
	return h
}

// build builds p on the room's head as the roomserver answers it.
func (h *testRoom) build(p event.Proto) *event.PDU {
	h.t.Helper()
	p.RoomID = h.roomID
	want := []api.StateKeyTuple{{Type: event.TypeCreate}}
	for _, tu := range event.AuthEventsNeeded(p, h.v) {
		want = append(want, api.StateKeyTuple{Type: tu.Type, StateKey: tu.StateKey})
	}
	res, err := h.r.QueryLatestEventsAndState(h.t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID), StateToFetch: want})
	if err != nil || !res.RoomExists {
		h.t.Fatalf("QueryLatestEventsAndState(%s) = %+v, %v", h.roomID, res, err)
	}
	state := map[event.StateKeyTuple]matrix.EventID{}
	for _, s := range res.StateEventIDs {
		state[event.StateKeyTuple{Type: s.Type, StateKey: s.StateKey}] = matrix.EventID(s.EventID)
	}
	for _, tu := range event.AuthEventsNeeded(p, h.v) {
		if id, ok := state[tu]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	for _, id := range res.LatestEvents {
		p.PrevEvents = append(p.PrevEvents, matrix.EventID(id))
	}
	p.Depth = res.Depth + 1
	e, err := p.Build(h.v, testOrigin, h.key)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (h *testRoom) message(sender, body string) *event.PDU {
	h.t.Helper()
	return h.build(event.Proto{Type: "m.room.message", Sender: matrix.UserID(sender), Content: map[string]any{"msgtype": "m.text", "body": body}})
}

func (h *testRoom) request(evs ...*event.PDU) api.InputRoomEventsRequest {
	req := api.InputRoomEventsRequest{RoomID: string(h.roomID), RoomVersion: h.v.ID}
	for _, e := range evs {
		req.Events = append(req.Events, api.InputEvent{Kind: api.KindNew, Event: json.RawMessage(e.JSON())})
	}
	return req
}

// handle runs the requests as one input batch and returns the first error:
// HandleInput's, or a request's refusal.
func (h *testRoom) handle(reqs ...api.InputRoomEventsRequest) error {
	_, err := h.handleResults(reqs...)
	return err
}

// handleAll runs the requests as one input batch and returns each one's
// answer, or HandleInput's error.
func (h *testRoom) handleAll(reqs ...api.InputRoomEventsRequest) ([]inputResult, error) {
	return h.handleMsgs(false, reqs...)
}

// handleMsgs is handleAll with the messages marked as redelivered or not.
func (h *testRoom) handleMsgs(redelivered bool, reqs ...api.InputRoomEventsRequest) ([]inputResult, error) {
	msgs := make([]eventlog.Msg[api.InputMessage], len(reqs))
	chans := make([]chan inputResult, len(reqs))
	for i, req := range reqs {
		id := fmt.Sprintf("%s-%d", h.t.Name(), h.r.next.Add(1))
		chans[i] = make(chan inputResult, 1)
		h.r.waiters.Store(id, chans[i])
		defer h.r.waiters.Delete(id)
		msgs[i] = eventlog.Msg[api.InputMessage]{Value: api.InputMessage{Request: req, ReplyTo: id}, Redelivered: redelivered}
	}
	if err := h.r.HandleInput(h.t.Context(), msgs); err != nil {
		return nil, err
	}
	out := make([]inputResult, len(chans))
	for i, ch := range chans {
		select {
		case res := <-ch:
			out[i] = res
		default:
			return nil, errors.New("no answer")
		}
	}
	return out, nil
}

// handleResults is handleAll failing with the first refusal.
func (h *testRoom) handleResults(reqs ...api.InputRoomEventsRequest) ([]inputResult, error) {
	out, err := h.handleAll(reqs...)
	if err != nil {
		return nil, err
	}
	for _, res := range out {
		if res.err != nil {
			return nil, res.err
		}
	}
	return out, nil
}

func (h *testRoom) send(evs ...*event.PDU) error { return h.handle(h.request(evs...)) }

// checkCache fails unless the room's cached head (if any) and every state
// event cached with it are what the database holds.
func (h *testRoom) checkCache(wantCached bool) {
	h.t.Helper()
	c := h.r.heads
	c.mu.Lock()
	e := c.rooms[string(h.roomID)]
	var cached *headEntry
	var tuples []storage.Tuple
	if e != nil && e.filled {
		cached = &headEntry{room: e.room, latestIDs: e.latestIDs, latestSnaps: e.latestSnaps, state: map[storage.Tuple]stateEvent{}}
		for tu, s := range e.state {
			cached.state[tu] = s
			tuples = append(tuples, tu)
		}
	}
	c.mu.Unlock()
	if cached == nil {
		if wantCached {
			h.t.Fatalf("room %s has no cached head", h.roomID)
		}
		return
	}
	db, err := h.r.readHead(h.t.Context(), h.r.st.DB.Reader(), string(h.roomID), tuples)
	if err != nil {
		h.t.Fatal(err)
	}
	if !sameHead(cached.room, db.room) || !slices.Equal(cached.latestIDs, db.latestIDs) || !slices.Equal(cached.latestSnaps, db.latestSnaps) {
		h.t.Fatalf("cached head %+v %v %v, database %+v %v %v", cached.room, cached.latestIDs, cached.latestSnaps,
			db.room, db.latestIDs, db.latestSnaps)
	}
	for tu, s := range cached.state {
		if d := db.state[tu]; d.id != s.id || string(d.json) != string(s.json) {
			h.t.Fatalf("cached %v = %s %s, database %s %s", tu, s.id, s.json, d.id, d.json)
		}
	}
}

func newTestRoomserver(t testing.TB, db *sqlutil.DB) (*Roomserver, *failingLog) {
	st, err := storage.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	l := &failingLog{}
	r := New(st, l, slog.New(slog.DiscardHandler), authrules.Check)
	// As roomserver.New does: input commits are deferred on PostgreSQL.
	if st.Deferred, err = db.DeferCommits(t.Context(), r.ForgetCached); err != nil {
		t.Fatal(err)
	}
	return r, l
}

// TestHeadFollowsInput: every event is built on the head the previous
// commit left, state changes show in the next build, and refused or
// rolled-back input leaves the cached head where the database is.
func TestHeadFollowsInput(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, log := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 1)
		alice, bob := "@alice:"+string(testOrigin), "@bob:"+string(testOrigin)
		authOf := func(e *event.PDU) []matrix.EventID { return e.AuthEventIDs() }

		// Sends in a row build on each other, each on the cached head.
		var last *event.PDU
		hits := r.headHits.Load()
		for i := range 3 {
			m := h.message(alice, fmt.Sprint("hello ", i))
			if last != nil && (!slices.Equal(m.PrevEventIDs(), []matrix.EventID{last.EventID()}) || m.Depth() != last.Depth()+1) {
				t.Fatalf("message %d: prev %v depth %d, want [%s] %d", i, m.PrevEventIDs(), m.Depth(), last.EventID(), last.Depth()+1)
			}
			if err := h.send(m); err != nil {
				t.Fatalf("send message %d: %v", i, err)
			}
			h.checkCache(true)
			last = m
		}
		if n := r.headHits.Load() - hits; n != 3 {
			t.Fatalf("%d of 3 messages in a row were processed on the cached head", n)
		}

		// A power levels change is what the next event is authorised by.
		pl := h.build(event.Proto{Type: event.TypePowerLevels, StateKey: new(""), Sender: matrix.UserID(alice),
			Content: map[string]any{"state_default": 60}})
		if err := h.send(pl); err != nil {
			t.Fatalf("send power levels: %v", err)
		}
		h.checkCache(true)
		if m := h.message(alice, "after the power levels"); !slices.Contains(authOf(m), pl.EventID()) || m.PrevEventIDs()[0] != pl.EventID() {
			t.Fatalf("message after the power levels: auth %v prev %v, want %s in both", authOf(m), m.PrevEventIDs(), pl.EventID())
		}

		// bob's membership: his join authorises his message; after he leaves,
		// his message is built on the leave and refused, and the refusal
		// moves nothing.
		join := h.build(event.Proto{Type: event.TypeMember, StateKey: new(bob), Sender: matrix.UserID(bob), Content: map[string]any{"membership": "join"}})
		if err := h.send(join); err != nil {
			t.Fatalf("send bob's join: %v", err)
		}
		h.checkCache(true)
		if m := h.message(bob, "hi"); !slices.Contains(authOf(m), join.EventID()) {
			t.Fatalf("bob's message: auth %v, want his join %s", authOf(m), join.EventID())
		}
		leave := h.build(event.Proto{Type: event.TypeMember, StateKey: new(bob), Sender: matrix.UserID(bob), Content: map[string]any{"membership": "leave"}})
		if err := h.send(leave); err != nil {
			t.Fatalf("send bob's leave: %v", err)
		}
		refused := h.message(bob, "still here?")
		if !slices.Contains(authOf(refused), leave.EventID()) {
			t.Fatalf("bob's message after leaving: auth %v, want his leave %s", authOf(refused), leave.EventID())
		}
		if err := h.send(refused); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("bob's message after leaving = %v, want M_FORBIDDEN", err)
		}
		h.checkCache(true)
		next := h.message(alice, "after the refusal")
		if !slices.Equal(next.PrevEventIDs(), []matrix.EventID{leave.EventID()}) {
			t.Fatalf("after a refused event: prev %v, want [%s]", next.PrevEventIDs(), leave.EventID())
		}

		// A refused event and an accepted one in one batch: the savepoint
		// undoes the first only.
		if err := h.handle(h.request(refused), h.request(next)); !apierr.HasCode(err, apierr.CodeForbidden) {
			t.Fatalf("batch with a refused event = %v, want M_FORBIDDEN", err)
		}
		h.checkCache(true)
		if m := h.message(alice, "after the batch"); !slices.Equal(m.PrevEventIDs(), []matrix.EventID{next.EventID()}) {
			t.Fatalf("after the batch: prev %v, want [%s]", m.PrevEventIDs(), next.EventID())
		}

		// Two events built on the same head fork the room, the second one
		// changing the state of both branches' resolution; the next event
		// merges them.
		tu := storage.Tuple{Type: "m.room.name"}
		left := h.build(event.Proto{Type: tu.Type, StateKey: new(""), Sender: matrix.UserID(alice), Content: map[string]any{"name": "left"}})
		right := h.build(event.Proto{Type: tu.Type, StateKey: new(""), Sender: matrix.UserID(alice), Content: map[string]any{"name": "right"}})
		for _, e := range []*event.PDU{left, right} {
			if err := h.send(e); err != nil {
				t.Fatalf("send branch %s: %v", e.EventID(), err)
			}
			h.checkCache(true)
		}
		res, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: tu.Type}}})
		if err != nil || len(res.LatestEvents) != 2 || len(res.StateEventIDs) != 1 {
			t.Fatalf("after the fork: %+v, %v; want two latest events and a name", res, err)
		}
		h.checkCache(true)
		next = h.message(alice, "merge")
		if len(next.PrevEventIDs()) != 2 {
			t.Fatalf("merge: prev %v, want both branches", next.PrevEventIDs())
		}
		hits = r.headHits.Load()
		if err := h.send(next); err != nil {
			t.Fatalf("send merge: %v", err)
		}
		if r.headHits.Load() != hits+1 {
			t.Fatal("the merge was not processed on the cached head of two latest events")
		}
		h.checkCache(true)
		res, err = r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: tu.Type}}})
		if err != nil || !slices.Equal(res.LatestEvents, []string{string(next.EventID())}) || len(res.StateEventIDs) != 1 {
			t.Fatalf("after the merge: %+v, %v; want it the one latest event, and a name", res, err)
		}

		// A transaction that rolls back (the log fails before the commit)
		// leaves nothing of its event in the head. (A state event: a
		// pipelined message commits before it is published, see
		// TestOutputAfterFailedPublish.)
		lost := h.build(event.Proto{Type: "m.room.topic", StateKey: new(""), Sender: matrix.UserID(alice),
			Content: map[string]any{"topic": "lost"}})
		log.fail.Store(true)
		if err := h.send(lost); err == nil {
			t.Fatal("send with the log down succeeded")
		}
		log.fail.Store(false)
		h.checkCache(false)
		if m := h.message(alice, "after the rollback"); !slices.Equal(m.PrevEventIDs(), []matrix.EventID{next.EventID()}) || m.Depth() != next.Depth()+1 {
			t.Fatalf("after a rollback: prev %v depth %d, want [%s] %d", m.PrevEventIDs(), m.Depth(), next.EventID(), next.Depth()+1)
		}
		h.checkCache(true)

		// A redaction rewrites a current state event: the next read gets it redacted.
		topic := storage.Tuple{Type: "m.room.topic"}
		res, err = r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: topic.Type}}})
		if err != nil || len(res.StateEvents) != 1 || !strings.Contains(string(res.StateEvents[0]), "the first topic") {
			t.Fatalf("topic = %+v, %v", res, err)
		}
		red := h.build(event.Proto{Type: event.TypeRedaction, Sender: matrix.UserID(alice), Redacts: matrix.EventID(res.StateEventIDs[0].EventID),
			Content: map[string]any{}})
		if err := h.send(red); err != nil {
			t.Fatalf("send redaction: %v", err)
		}
		h.checkCache(true)
		res, err = r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
			StateToFetch: []api.StateKeyTuple{{Type: topic.Type}}})
		if err != nil || len(res.StateEvents) != 1 || strings.Contains(string(res.StateEvents[0]), "the first topic") ||
			!slices.Equal(res.LatestEvents, []string{string(red.EventID())}) {
			t.Fatalf("topic after its redaction = %s (latest %v), %v", res.StateEvents, res.LatestEvents, err)
		}
	})
}

// TestHeadCacheUnderConcurrentInput: with input committing in several rooms
// at once and queries racing it, every room's cached head ends up as the
// database has it (run with -race, this also checks the locking).
func TestHeadCacheUnderConcurrentInput(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, _ := newTestRoomserver(t, db)
		alice := "@alice:" + string(testOrigin)
		rooms := make([]*testRoom, 3)
		for i := range rooms {
			rooms[i] = newTestRoom(t, r, i)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, h := range rooms {
			// A reader that keeps asking for the head and more state.
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
						StateToFetch: []api.StateKeyTuple{{Type: event.TypeMember, StateKey: fmt.Sprintf("@u%d:%s", i%8, testOrigin)}}})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		var writers sync.WaitGroup
		for _, h := range rooms {
			writers.Go(func() {
				for i := range 15 {
					var e *event.PDU
					if i%5 == 4 {
						u := fmt.Sprintf("@u%d:%s", i%8, testOrigin)
						e = h.build(event.Proto{Type: event.TypeMember, StateKey: &u, Sender: matrix.UserID(u), Content: map[string]any{"membership": "join"}})
					} else {
						e = h.message(alice, fmt.Sprint(i))
					}
					if err := h.send(e); err != nil {
						t.Errorf("send %d in %s: %v", i, h.roomID, err)
						return
					}
				}
			})
		}
		writers.Wait()
		close(stop)
		wg.Wait()
		for _, h := range rooms {
			h.checkCache(false)
			// Every member event a reader asked for is the committed one.
			res, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID),
				StateToFetch: []api.StateKeyTuple{{Type: event.TypeMember, StateKey: fmt.Sprintf("@u4:%s", testOrigin)}}})
			if err != nil || len(res.StateEventIDs) != 1 {
				t.Fatalf("member @u4 of %s = %+v, %v", h.roomID, res, err)
			}
			h.checkCache(true)
		}
	})
}

// BenchmarkQueryLatestEventsAndState is the builder's query in a room of
// 20 members, answered from the head cache and, for comparison, read from
// the database as every query was before the cache.
func BenchmarkQueryLatestEventsAndState(b *testing.B) {
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		r, _ := newTestRoomserver(b, db)
		h := newTestRoom(b, r, 1)
		alice := "@alice:" + string(testOrigin)
		for i := range 19 {
			u := fmt.Sprintf("@u%d:%s", i, testOrigin)
			if err := h.send(h.build(event.Proto{Type: event.TypeMember, StateKey: &u, Sender: matrix.UserID(u),
				Content: map[string]any{"membership": "join"}})); err != nil {
				b.Fatal(err)
			}
		}
		req := api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID), StateToFetch: []api.StateKeyTuple{
			{Type: event.TypeCreate}, {Type: event.TypePowerLevels}, {Type: event.TypeMember, StateKey: alice}}}
		want := []storage.Tuple{{Type: event.TypeCreate}, {Type: event.TypePowerLevels}, {Type: event.TypeMember, StateKey: alice}}
		b.Run("cached", func(b *testing.B) {
			for b.Loop() {
				if res, err := r.QueryLatestEventsAndState(b.Context(), req); err != nil || len(res.StateEvents) != 3 {
					b.Fatal(res, err)
				}
			}
		})
		b.Run("database", func(b *testing.B) {
			for b.Loop() {
				head, err := r.readHead(b.Context(), r.st.DB.Reader(), req.RoomID, want)
				if err != nil {
					b.Fatal(err)
				}
				if res := head.response(want, head.state); len(res.StateEvents) != 3 {
					b.Fatal(res)
				}
			}
		})
	})
}

// TestCachedHeadGuard: when the room's stored head is not the cached one
// (something else wrote the room), an event processed on the cached head
// is not stored; the head is forgotten, and the event goes in when handled
// again, on the head read from the database. A message (pipelined on
// PostgreSQL) and a state event (the transaction path on both engines)
// are each checked.
func TestCachedHeadGuard(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, _ := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 1)
		alice := "@alice:" + string(testOrigin)
		last := h.message(alice, "one")
		if err := h.send(last); err != nil {
			t.Fatal(err)
		}
		for i, kind := range []string{"message", "state event"} {
			// The stored head goes back to another event than the last one.
			if _, err := db.ExecContext(t.Context(), `UPDATE roomserver_rooms SET latest_events = (
				SELECT '[' || MAX(event_nid) || ']' FROM roomserver_events WHERE event_id <> $1) WHERE room_id = $2`,
				string(last.EventID()), string(h.roomID)); err != nil {
				t.Fatal(err)
			}
			var e *event.PDU // built on the cached head
			if kind == "message" {
				e = h.message(alice, "two")
			} else {
				e = h.build(event.Proto{Type: "m.room.topic", StateKey: new(""), Sender: matrix.UserID(alice),
					Content: map[string]any{"topic": fmt.Sprint("topic ", i)}})
			}
			// The database's head would have taken it: only the cached one fails.
			if err := h.send(e); !errors.Is(err, storage.ErrMoved) {
				t.Fatalf("%s on a head that moved = %v, want ErrMoved", kind, err)
			}
			h.checkCache(false)
			hits := r.headHits.Load()
			if err := h.send(e); err != nil {
				t.Fatalf("%s sent again: %v", kind, err)
			}
			if r.headHits.Load() != hits {
				t.Fatalf("the %s's retry was stored on a cached head", kind)
			}
			h.checkCache(true)
			res, err := r.QueryLatestEventsAndState(t.Context(), api.QueryLatestEventsAndStateRequest{RoomID: string(h.roomID)})
			if err != nil || len(res.LatestEvents) != 2 || res.LatestEvents[0] != string(e.EventID()) {
				t.Fatalf("after the %s's retry: latest %v, %v; want it and the head it did not build on", kind, res.LatestEvents, err)
			}
			last = e
		}
	})
}
