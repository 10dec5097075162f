package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/pushrules"
	"github.com/axon-hs/axon/matrix/signing"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

const pushServer = "test"

// fakeRoom answers QueryCurrentState with a room of members, its create
// and power levels events (real PDUs: push parses them).
type fakeRoom struct {
	roomID string
	state  []json.RawMessage
}

func (f *fakeRoom) QueryCurrentState(_ context.Context, req rsapi.QueryCurrentStateRequest) (rsapi.QueryCurrentStateResponse, error) {
	if req.RoomID != f.roomID {
		return rsapi.QueryCurrentStateResponse{}, fmt.Errorf("unknown room %s", req.RoomID)
	}
	return rsapi.QueryCurrentStateResponse{RoomVersion: "10", StateEvents: f.state}, nil
}

// newFakeRoom makes a room whose members are @u0:test … @u<n-1>:test,
// joined with display names U0 …; u0 created it.
func newFakeRoom(t testing.TB, roomID string, n int) *fakeRoom {
	t.Helper()
	v, _ := event.Version("10")
	key, err := signing.GenerateKey("ed25519:t")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRoom{roomID: roomID}
	build := func(typ, stateKey string, content any) {
		sk := stateKey
		pdu, err := event.Proto{Type: typ, StateKey: &sk, Sender: matrix.UserID(member(0)), RoomID: matrix.RoomID(roomID),
			Content: content, Depth: 1, OriginServerTS: 1}.Build(v, pushServer, key)
		if err != nil {
			t.Fatal(err)
		}
		f.state = append(f.state, pdu.JSON())
	}
	build(event.TypeCreate, "", map[string]any{"room_version": "10"})
	build(event.TypePowerLevels, "", map[string]any{"users": map[string]int{member(0): 100}})
	for i := range n {
		build(event.TypeMember, member(i), map[string]any{"membership": "join", "displayname": fmt.Sprintf("U%d", i)})
	}
	return f
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func member(i int) string { return fmt.Sprintf("@u%d:%s", i, pushServer) }

// message is an m.room.message output event; thread "" is the main
// timeline; mentions are the m.mentions user ids.
func message(roomID, eventID, sender, body, thread string, mentions ...string) rsapi.OutputEvent {
	content := map[string]any{"msgtype": "m.text", "body": body}
	if thread != "" {
		content["m.relates_to"] = map[string]any{"rel_type": "m.thread", "event_id": thread}
	}
	if len(mentions) > 0 {
		content["m.mentions"] = map[string]any{"user_ids": mentions}
	}
	raw, _ := json.Marshal(map[string]any{"type": "m.room.message", "sender": sender, "room_id": roomID,
		"event_id": eventID, "origin_server_ts": 1_700_000_000_000, "content": content})
	return rsapi.OutputEvent{RoomID: roomID, RoomVersion: "10", EventID: eventID, Event: raw}
}

// fakeLog records what is published.
type fakeLog struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (l *fakeLog) Publish(_ context.Context, topic, _ string, data []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if topic == api.NotificationCountsTopic.Name {
		l.msgs = append(l.msgs, data)
	}
	return uint64(len(l.msgs)), nil
}

func (l *fakeLog) Subscribe(context.Context, string, string, eventlog.ConsumeOptions, func(context.Context, eventlog.RawMsg) error) (eventlog.Subscription, error) {
	return nil, errors.New("not supported")
}

func (l *fakeLog) Close() error { return nil }

// last returns the counts of user in the last published message naming them.
func (l *fakeLog) last(t *testing.T, user string) (api.UserCounts, bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.msgs) - 1; i >= 0; i-- {
		var m api.NotificationCounts
		if err := json.Unmarshal(l.msgs[i], &m); err != nil {
			t.Fatal(err)
		}
		for _, u := range m.Users {
			if u.UserID == user {
				return u, true
			}
		}
	}
	return api.UserCounts{}, false
}

// TestRoomServerOutputNotifies: u0 writes in a room of three; the others
// get notifications (a mention highlights, a thread reply counts in its
// thread), stored once however often an event is delivered, paged newest
// first, counted and published; a receipt then marks read and recounts.
func TestRoomServerOutputNotifies(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := openStorage(t, db)
		const room = "!r:test"
		evlog := &fakeLog{}
		c := NewRoomServerOutput(st, newFakeRoom(t, room, 3), evlog, nil, pushServer, slog.Default())
		u0, u1, u2 := member(0), member(1), member(2)
		evs := []rsapi.OutputEvent{
			message(room, "$m1", u0, "hello", ""),
			message(room, "$m2", u0, "look", "", u1),
			message(room, "$m3", u0, "in thread", "$m1"),
			message(room, "$m4", u1, "from u1", ""),
		}
		for i, ev := range evs {
			for range 2 { // a redelivery changes nothing
				if err := c.Handle(ctx, eventlog.Msg[rsapi.OutputEvent]{Seq: uint64(10 + i), Value: ev}); err != nil {
					t.Fatalf("Handle(%s) = %v", ev.EventID, err)
				}
			}
		}

		type note struct {
			room      string
			seq       int64
			highlight bool
			read      bool
		}
		list := func(local string, before int64, limit int, onlyHighlight bool) []note {
			t.Helper()
			rows, err := st.Push.Notifs.Select(ctx, db.Reader(), local, before, limit, onlyHighlight)
			if err != nil {
				t.Fatal(err)
			}
			var out []note
			for _, r := range rows {
				var actions []pushrules.Action
				if err := json.Unmarshal([]byte(r.Actions), &actions); err != nil {
					t.Fatalf("actions %q: %v", r.Actions, err)
				}
				if o := pushrules.OutcomeOf(actions); !o.Notify || o.Highlight != r.Highlight {
					t.Errorf("notification %d: actions %s with highlight %v", r.ID, r.Actions, r.Highlight)
				}
				if r.TS != 1_700_000_000_000 || !strings.Contains(r.Event, `"event_id"`) {
					t.Errorf("notification %d: ts %d, event %s", r.ID, r.TS, r.Event)
				}
				out = append(out, note{r.RoomID, r.ID, r.Highlight, r.Read})
			}
			return out
		}
		check := func(what string, got, want []note) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s = %+v, want %+v", what, got, want)
			}
		}
		check("u1 page 1", list("u1", 0, 2, false), []note{{room, 12, false, false}, {room, 11, true, false}})
		check("u1 page 2", list("u1", 11, 2, false), []note{{room, 10, false, false}})
		check("u1 highlights", list("u1", 0, 10, true), []note{{room, 11, true, false}})
		check("u2", list("u2", 0, 10, false), []note{{room, 13, false, false}, {room, 12, false, false}, {room, 11, false, false}, {room, 10, false, false}})
		check("u0 (the sender of all but one)", list("u0", 0, 10, false), []note{{room, 13, false, false}})

		got, ok := evlog.last(t, u1)
		want := api.UserCounts{UserID: u1, Total: api.Counts{NotificationCount: 3, HighlightCount: 1},
			Main: api.Counts{NotificationCount: 2, HighlightCount: 1}, Threads: map[string]api.Counts{"$m1": {NotificationCount: 1}}}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("published counts of u1 = %+v, want %+v", got, want)
		}
		if got, _ := evlog.last(t, u2); got.Total.NotificationCount != 4 || got.Main.NotificationCount != 3 {
			t.Errorf("published counts of u2 = %+v, want 4 in all, 3 in the main timeline", got)
		}

		// u1 reads up to $m2 (unthreaded): $m1 and $m2 are read, the
		// thread reply after it is not.
		rc := NewReceipts(st, c.PublishCounts, pushServer, slog.Default())
		r := syncapi.OutputReceipt{RoomID: room, UserID: u1, Type: "m.read", EventID: "$m2"}
		if err := rc.Handle(ctx, eventlog.Msg[syncapi.OutputReceipt]{Seq: 1, Value: r, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		check("u1 after receipt", list("u1", 0, 10, false), []note{{room, 12, false, false}, {room, 11, true, true}, {room, 10, false, true}})
		got, _ = evlog.last(t, u1)
		want = api.UserCounts{UserID: u1, Total: api.Counts{NotificationCount: 1},
			Threads: map[string]api.Counts{"$m1": {NotificationCount: 1}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("published counts of u1 after receipt = %+v, want %+v", got, want)
		}
		// A new message counts on top of what is left.
		if err := c.Handle(ctx, eventlog.Msg[rsapi.OutputEvent]{Seq: 20, Value: message(room, "$m5", u0, "more", "")}); err != nil {
			t.Fatal(err)
		}
		got, _ = evlog.last(t, u1)
		want = api.UserCounts{UserID: u1, Total: api.Counts{NotificationCount: 2}, Main: api.Counts{NotificationCount: 1},
			Threads: map[string]api.Counts{"$m1": {NotificationCount: 1}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("published counts of u1 after $m5 = %+v, want %+v", got, want)
		}
		if n, err := st.Push.Counts.SelectUnread(ctx, db.Reader(), "u1"); err != nil || n != 2 {
			t.Errorf("SelectUnread(u1) = %d, %v; want 2", n, err)
		}

		// u2 mutes everything: the compiled rules are cached, yet the very
		// next event is judged by the new ones.
		var ur pushrules.UserRules
		if err := ur.SetEnabled(u2, pushrules.KindOverride, ".m.rule.master", true); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ur)
		if ok, err := st.Push.Rules.CompareAndSwap(ctx, db, "u2", 0, raw); err != nil || !ok {
			t.Fatalf("CompareAndSwap(u2) = %v, %v", ok, err)
		}
		if err := c.Handle(ctx, eventlog.Msg[rsapi.OutputEvent]{Seq: 21, Value: message(room, "$m6", u0, "muted?", "")}); err != nil {
			t.Fatal(err)
		}
		if got := list("u2", 0, 1, false); len(got) != 1 || got[0].seq != 20 {
			t.Errorf("u2's newest notification after muting = %+v, want $m5's (20)", got)
		}
		if got := list("u1", 0, 1, false); len(got) != 1 || got[0].seq != 21 {
			t.Errorf("u1's newest notification = %+v, want $m6's (21)", got)
		}
	})
}

// BenchmarkHandleMessage is push evaluation of one message in a room of 20
// local members (19 are notified): evaluation, storing the notifications
// and counts, and reading the counts back for publishing.
func BenchmarkHandleMessage(b *testing.B) {
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		ctx := b.Context()
		st := openStorage(b, db)
		const room = "!bench:test"
		c := NewRoomServerOutput(st, newFakeRoom(b, room, 20), nil, nil, pushServer, slog.Default())
		seq := uint64(0)
		handle := func() {
			seq++
			ev := message(room, fmt.Sprintf("$e%d", seq), member(int(seq%20)), "hello there", "")
			if err := c.Handle(ctx, eventlog.Msg[rsapi.OutputEvent]{Seq: seq, Value: ev}); err != nil {
				b.Fatal(err)
			}
		}
		for range 200 { // warm caches, a table with rows
			handle()
		}
		start := cpuTime()
		for b.Loop() {
			handle()
		}
		// The process's CPU time, commits included: wall time mostly
		// measures the neighbours on a shared machine.
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
}

// fakeRooms answers QueryCurrentState for several rooms.
type fakeRooms map[string]*fakeRoom

func (f fakeRooms) QueryCurrentState(ctx context.Context, req rsapi.QueryCurrentStateRequest) (rsapi.QueryCurrentStateResponse, error) {
	r, ok := f[req.RoomID]
	if !ok {
		return rsapi.QueryCurrentStateResponse{}, fmt.Errorf("unknown room %s", req.RoomID)
	}
	return r.QueryCurrentState(ctx, req)
}

// fakeDelivery records the queued pushes as "user event".
type fakeDelivery struct {
	mu     sync.Mutex
	pushes []string
}

func (d *fakeDelivery) Enqueue(_ context.Context, p Push) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pushes = append(d.pushes, p.UserID+" "+p.EventID)
}

// join is a member event of user joining roomID.
func join(roomID, eventID, user string) rsapi.OutputEvent {
	raw, _ := json.Marshal(map[string]any{"type": event.TypeMember, "sender": user, "state_key": user, "room_id": roomID,
		"event_id": eventID, "origin_server_ts": 1_700_000_000_000, "content": map[string]any{"membership": "join"}})
	return rsapi.OutputEvent{RoomID: roomID, RoomVersion: "10", EventID: eventID, Event: raw}
}

// pushOutcome is everything push evaluation leaves behind, comparable.
type pushOutcome struct {
	notifs []storage.NotificationRow
	counts []storage.CountRow
	// published is the latest counts published of each user, by room
	// then user id: what a consumer of the counts ends with.
	published map[string]map[string]api.UserCounts
	messages  int              // counts messages published
	pushes    []string         // sorted per run of one event
	stored    map[string]int64 // event id → seq
}

// outcome reads what c (on st) stored and published for users in rooms.
func outcome(t *testing.T, st *storage.Storage, evlog *fakeLog, d *fakeDelivery, rooms, users, events []string) pushOutcome {
	t.Helper()
	ctx := t.Context()
	var o pushOutcome
	locals := make([]string, len(users))
	for i, u := range users {
		locals[i] = strings.TrimSuffix(strings.TrimPrefix(u, "@"), ":"+pushServer)
		rows, err := st.Push.Notifs.Select(ctx, st.DB.Reader(), locals[i], 0, 100, false)
		if err != nil {
			t.Fatal(err)
		}
		o.notifs = append(o.notifs, rows...)
	}
	for _, r := range rooms {
		rows, err := st.Push.Counts.Select(ctx, st.DB.Reader(), r, locals)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(rows, func(a, b storage.CountRow) int {
			return strings.Compare(a.Localpart+" "+a.ThreadID, b.Localpart+" "+b.ThreadID)
		})
		o.counts = append(o.counts, rows...)
	}
	evlog.mu.Lock()
	o.published = map[string]map[string]api.UserCounts{}
	for _, raw := range evlog.msgs {
		var m api.NotificationCounts
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if o.published[m.RoomID] == nil {
			o.published[m.RoomID] = map[string]api.UserCounts{}
		}
		for _, u := range m.Users {
			o.published[m.RoomID][u.UserID] = u
		}
		o.messages++
	}
	evlog.mu.Unlock()
	d.mu.Lock()
	o.pushes = slices.Sorted(slices.Values(d.pushes))
	d.mu.Unlock()
	o.stored = map[string]int64{}
	for _, id := range events {
		seq, err := st.Push.Events.SelectSeq(ctx, st.DB.Reader(), id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		o.stored[id] = seq
	}
	return o
}

// TestRoomServerOutputBatch: one batch of events of two rooms, holding an
// event already stored, a repeated event and a join, leaves the same
// notifications, counts, published counts and pushes as handling its
// messages one by one; a later event of a room sees the counts and the
// state of the earlier ones; the batch handed again changes nothing.
func TestRoomServerOutputBatch(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		other := storagetest.SQLite(t)
		if strings.HasSuffix(t.Name(), "/postgres") {
			other = storagetest.Postgres(t)
		}
		const ra, rb = "!a:test", "!b:test"
		u0, u1, u2, u3 := member(0), member(1), member(2), member(3)
		msg := func(seq int, ev rsapi.OutputEvent) eventlog.Msg[rsapi.OutputEvent] {
			return eventlog.Msg[rsapi.OutputEvent]{Seq: uint64(seq), Value: ev}
		}
		before := msg(11, message(rb, "$b1", u0, "first in b", ""))
		batch := []eventlog.Msg[rsapi.OutputEvent]{
			msg(10, message(ra, "$a1", u0, "hello", "")),
			before, // stored already
			msg(12, message(ra, "$a2", u0, "look", "", u1)),
			msg(13, join(ra, "$j3", u3)),
			msg(14, message(rb, "$b2", u1, "to u2", "", u2)),
			msg(15, message(ra, "$a3", u0, "in thread", "$a1")),
			msg(12, message(ra, "$a2", u0, "look", "", u1)), // repeated
			msg(16, message(ra, "$a4", u1, "from u1", "")),
			msg(17, message(rb, "$b3", u0, "again", "$b2", u1)),
			msg(18, message(ra, "$a5", u0, "u3 too", "")),
		}
		rooms, users := []string{ra, rb}, []string{u0, u1, u2, u3}
		events := []string{"$a1", "$a2", "$a3", "$a4", "$a5", "$j3", "$b1", "$b2", "$b3"}
		// run hands the messages to a new consumer on db (after before, alone)
		// and returns what it left and a function to read it again.
		run := func(db *sqlutil.DB, handle func(c *RoomServerOutput) error) (pushOutcome, func() pushOutcome) {
			t.Helper()
			st := openStorage(t, db)
			evlog, d := &fakeLog{}, &fakeDelivery{}
			c := NewRoomServerOutput(st, fakeRooms{ra: newFakeRoom(t, ra, 3), rb: newFakeRoom(t, rb, 3)}, evlog, d, pushServer, slog.Default())
			if err := c.Handle(ctx, before); err != nil {
				t.Fatal(err)
			}
			if err := handle(c); err != nil {
				t.Fatal(err)
			}
			again := func() pushOutcome {
				if err := c.HandleBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				return outcome(t, st, evlog, d, rooms, users, events)
			}
			return outcome(t, st, evlog, d, rooms, users, events), again
		}
		want, _ := run(other, func(c *RoomServerOutput) error {
			for _, m := range batch {
				if err := c.Handle(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
		got, again := run(db, func(c *RoomServerOutput) error { return c.HandleBatch(ctx, batch) })
		// One message of counts per stored event that notified someone
		// ($b1 by the first Handle): all but the join; the batch merges
		// them into one per room (and $b1's).
		if want.messages != 8 || got.messages != 3 {
			t.Errorf("%d count messages published one by one, %d in a batch; want 8 and 3", want.messages, got.messages)
		}
		want.messages = got.messages
		if !reflect.DeepEqual(got, want) {
			t.Errorf("batch:\n%+v\none by one:\n%+v", got, want)
		}

		// What both should be, lest they agree on something wrong.
		if len(got.stored) != len(events) {
			t.Errorf("stored events = %v, want all of %v", got.stored, events)
		}
		wantCounts := []storage.CountRow{
			// !a: u0 is notified of u1's $a4; u1 of $a1, $a2 (highlight), $a3
			// (thread), $a5; u2 of all but the join; u3 of what follows its join.
			{Localpart: "u0", Notification: 1},
			{Localpart: "u1", Notification: 3, Highlight: 1},
			{Localpart: "u1", ThreadID: "$a1", Notification: 1},
			{Localpart: "u2", Notification: 4},
			{Localpart: "u2", ThreadID: "$a1", Notification: 1},
			{Localpart: "u3", Notification: 2},
			{Localpart: "u3", ThreadID: "$a1", Notification: 1},
			// !b: $b1 and $b2 notify u1 (not the sender of $b2) and u2; $b3 is
			// in thread $b2 and highlights u1.
			{Localpart: "u0", Notification: 1},
			{Localpart: "u1", Notification: 1},
			{Localpart: "u1", ThreadID: "$b2", Notification: 1, Highlight: 1},
			{Localpart: "u2", Notification: 2, Highlight: 1},
			{Localpart: "u2", ThreadID: "$b2", Notification: 1},
		}
		if !slices.Equal(got.counts, wantCounts) {
			t.Errorf("counts = %+v, want %+v", got.counts, wantCounts)
		}
		// The published counts are the stored ones (two users shown).
		wantPub := map[string]api.UserCounts{
			ra + " " + u1: {UserID: u1, Total: api.Counts{NotificationCount: 4, HighlightCount: 1},
				Main: api.Counts{NotificationCount: 3, HighlightCount: 1}, Threads: map[string]api.Counts{"$a1": {NotificationCount: 1}}},
			rb + " " + u2: {UserID: u2, Total: api.Counts{NotificationCount: 3, HighlightCount: 1},
				Main: api.Counts{NotificationCount: 2, HighlightCount: 1}, Threads: map[string]api.Counts{"$b2": {NotificationCount: 1}}},
		}
		for k, w := range wantPub {
			room, user, _ := strings.Cut(k, " ")
			if p := got.published[room][user]; !reflect.DeepEqual(p, w) {
				t.Errorf("published counts of %s in %s = %+v, want %+v", user, room, p, w)
			}
		}

		// The batch again (a redelivery) changes nothing and publishes nothing.
		if re := again(); !reflect.DeepEqual(re, got) {
			t.Errorf("after redelivery:\n%+v\nbefore:\n%+v", re, got)
		}
	})
}

// TestRoomServerOutputBatchFails: a batch that fails in its transaction
// stores, publishes and queues nothing and leaves the cached room state as
// it was; its messages handled one by one afterwards (as the log retries
// them) count as if it never ran.
func TestRoomServerOutputBatchFails(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := openStorage(t, db)
		const room = "!r:test"
		u0, u1, u2, u3 := member(0), member(1), member(2), member(3)
		evlog, d := &fakeLog{}, &fakeDelivery{}
		c := NewRoomServerOutput(st, newFakeRoom(t, room, 3), evlog, d, pushServer, slog.Default())
		batch := []eventlog.Msg[rsapi.OutputEvent]{
			{Seq: 10, Value: message(room, "$m1", u0, "hello", "")},
			{Seq: 11, Value: join(room, "$j3", u3)},
			{Seq: 12, Value: message(room, "$m2", u0, "look", "", u1)},
		}
		events := []string{"$m1", "$j3", "$m2"}
		broken := errors.New("broken")
		c.afterStore = func(eventID string) error {
			if eventID == "$m2" {
				return broken
			}
			return nil
		}
		if err := c.HandleBatch(ctx, batch); !errors.Is(err, broken) {
			t.Fatalf("HandleBatch = %v, want %v", err, broken)
		}
		got := outcome(t, st, evlog, d, []string{room}, []string{u0, u1, u2, u3}, events)
		if len(got.notifs)+len(got.counts)+got.messages+len(got.pushes)+len(got.stored) != 0 {
			t.Fatalf("a failed batch left %+v", got)
		}

		c.afterStore = nil
		// u3's join was not applied: $m1 alone does not notify u3.
		for _, m := range batch {
			if err := c.Handle(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		got = outcome(t, st, evlog, d, []string{room}, []string{u0, u1, u2, u3}, events)
		want := []storage.CountRow{
			{Localpart: "u1", Notification: 2, Highlight: 1},
			{Localpart: "u2", Notification: 2},
			{Localpart: "u3", Notification: 1},
		}
		if !slices.Equal(got.counts, want) || len(got.stored) != 3 || got.messages != 2 {
			t.Errorf("after the retry: counts %+v (want %+v), stored %v, %d count messages (want 2)",
				got.counts, want, got.stored, got.messages)
		}
		if wantPushes := []string{u1 + " $m1", u1 + " $m2", u2 + " $m1", u2 + " $m2", u3 + " $m2"}; !slices.Equal(got.pushes, wantPushes) {
			t.Errorf("pushes = %v, want %v", got.pushes, wantPushes)
		}
	})
}

// BenchmarkHandleBatch is BenchmarkHandleMessage in batches of 32 (one
// transaction each); the metrics are per message.
func BenchmarkHandleBatch(b *testing.B) {
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		ctx := b.Context()
		st := openStorage(b, db)
		const room, size = "!bench:test", 32
		c := NewRoomServerOutput(st, newFakeRoom(b, room, 20), nil, nil, pushServer, slog.Default())
		seq := uint64(0)
		msgs := make([]eventlog.Msg[rsapi.OutputEvent], size)
		handle := func() {
			for i := range msgs {
				seq++
				msgs[i] = eventlog.Msg[rsapi.OutputEvent]{Seq: seq, Value: message(room, fmt.Sprintf("$e%d", seq), member(int(seq%20)), "hello there", "")}
			}
			if err := c.HandleBatch(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
		for range 200 / size { // warm caches, a table with rows
			handle()
		}
		start, wall, n := cpuTime(), time.Now(), 0
		for b.Loop() {
			handle()
			n += size
		}
		b.ReportMetric(float64(time.Since(wall).Nanoseconds())/float64(n), "ns/msg")
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(n), "cpu-ns/msg")
	})
}

// openStorage opens the userapi storage on db, failing the test otherwise.
func openStorage(tb testing.TB, db *sqlutil.DB) *storage.Storage {
	tb.Helper()
	st, err := storage.Open(tb.Context(), db)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// TestRoomServerOutputOneStatement: on PostgreSQL a batch of fresh events
// is stored in one statement (storeFresh), a batch redelivered wholly or
// in part by the transaction path; either way each batch leaves the same
// notifications, counts, published messages and pushes as the transaction
// path alone (afterStore set) on the same engine. The counts published
// include rows the batch did not touch (another thread) and leave out
// those of users not notified in the room. On SQLite both sides take the
// transaction path, so only the absolute checks (stored events, counts)
// test anything there.
func TestRoomServerOutputOneStatement(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		pg := db.Dialect.Engine == sqlutil.Postgres
		other := storagetest.SQLite(t)
		if pg {
			other = storagetest.Postgres(t)
		}
		const ra, rb = "!a:test", "!b:test"
		u0, u1, u2, u3 := member(0), member(1), member(2), member(3)
		rooms, users := []string{ra, rb}, []string{u0, u1, u2, u3}
		var events []string
		seq := 0
		msg := func(ev rsapi.OutputEvent) eventlog.Msg[rsapi.OutputEvent] {
			seq++
			events = append(events, ev.EventID)
			return eventlog.Msg[rsapi.OutputEvent]{Seq: uint64(seq), Value: ev}
		}
		type side struct {
			c     *RoomServerOutput
			st    *storage.Storage
			evlog *fakeLog
			d     *fakeDelivery
		}
		open := func(db *sqlutil.DB) side {
			st := openStorage(t, db)
			s := side{st: st, evlog: &fakeLog{}, d: &fakeDelivery{}}
			s.c = NewRoomServerOutput(st, fakeRooms{ra: newFakeRoom(t, ra, 3), rb: newFakeRoom(t, rb, 3)}, s.evlog, s.d, pushServer, slog.Default())
			return s
		}
		got, want := open(db), open(other)
		want.c.afterStore = func(string) error { return nil } // the transaction path
		// published are the counts messages, in order, each with its users
		// sorted (they follow the members' map order).
		published := func(s side) []string {
			s.evlog.mu.Lock()
			defer s.evlog.mu.Unlock()
			out := make([]string, len(s.evlog.msgs))
			for i, raw := range s.evlog.msgs {
				var m api.NotificationCounts
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				slices.SortFunc(m.Users, func(a, b api.UserCounts) int { return strings.Compare(a.UserID, b.UserID) })
				js, _ := json.Marshal(m)
				out[i] = string(js)
			}
			return out
		}
		step := func(name string, batch []eventlog.Msg[rsapi.OutputEvent], oneStatement bool) {
			t.Helper()
			before := got.c.oneStatement.Load()
			for _, s := range []side{got, want} {
				if err := s.c.HandleBatch(ctx, batch); err != nil {
					t.Fatalf("%s: HandleBatch = %v", name, err)
				}
			}
			if n := got.c.oneStatement.Load() - before; n != map[bool]int64{true: 1}[oneStatement && pg] {
				t.Errorf("%s: %d batches stored in one statement", name, n)
			}
			if n := want.c.oneStatement.Load(); n != 0 {
				t.Errorf("%s: the transaction path stored %d batches in one statement", name, n)
			}
			g, w := outcome(t, got.st, got.evlog, got.d, rooms, users, events), outcome(t, want.st, want.evlog, want.d, rooms, users, events)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s:\n%+v\ntransaction path:\n%+v", name, g, w)
			}
			if g, w := published(got), published(want); !slices.Equal(g, w) {
				t.Errorf("%s: published\n%s\ntransaction path:\n%s", name, g, w)
			}
		}

		step("fresh", []eventlog.Msg[rsapi.OutputEvent]{
			msg(message(ra, "$a1", u0, "hello", "")),
			msg(message(ra, "$a2", u0, "in thread", "$a1", u1)),
			msg(message(rb, "$b1", u0, "hello b", "")),
			msg(message(rb, "$b2", u2, "from u2", "")),
		}, true)
		// Main timeline rows are updated, thread rows read untouched, u3's
		// rows made; in !b u1 has rows but is not notified.
		second := []eventlog.Msg[rsapi.OutputEvent]{
			msg(message(ra, "$a3", u0, "again", "", u2)),
			msg(join(ra, "$j4", u3)),
			msg(message(ra, "$a5", u1, "u3 too", "")),
			msg(message(rb, "$b3", u1, "from u1", "")),
		}
		step("fresh, rows of other threads", second, true)
		if g, _ := got.evlog.last(t, u1); g.Threads["$a1"] != (api.Counts{NotificationCount: 1, HighlightCount: 1}) || g.Main.NotificationCount != 2 {
			t.Errorf("published counts of u1 = %+v, want 2 in the main timeline and thread $a1's", g)
		}
		nMsgs := len(published(got))
		step("redelivered wholly", second, false)
		if n := len(published(got)); n != nMsgs {
			t.Errorf("a redelivery published %d count messages", n-nMsgs)
		}
		// Stored events that notified no one (the notifications' key
		// would catch the others) must fail the statement as well.
		step("redelivered, no one notified", second[1:2], false)
		step("redelivered in part", []eventlog.Msg[rsapi.OutputEvent]{
			second[2],
			msg(message(ra, "$a6", u0, "new", "$a1")),
			second[3],
			msg(message(rb, "$b4", u0, "new b", "", u1)),
		}, false)
		step("fresh after a fallback", []eventlog.Msg[rsapi.OutputEvent]{
			msg(message(ra, "$a7", u2, "later", "")),
		}, true)
		step("fresh, no one notified", []eventlog.Msg[rsapi.OutputEvent]{
			msg(join(rb, "$j8", u3)),
		}, true)

		// What both should hold, lest they agree on something wrong.
		final := outcome(t, got.st, got.evlog, got.d, rooms, users, events)
		if len(final.stored) != len(events) {
			t.Errorf("stored events = %v, want all of %v", final.stored, events)
		}
		wantCounts := []storage.CountRow{
			// !a: u0 of $a5, $a7; u1 of $a1, $a2 (thread, highlight), $a3, $a6
			// (thread), $a7; u2 of all but $a7, $a3 highlighting; u3 of $a5,
			// $a6, $a7.
			{Localpart: "u0", Notification: 2},
			{Localpart: "u1", Notification: 3},
			{Localpart: "u1", ThreadID: "$a1", Notification: 2, Highlight: 1},
			{Localpart: "u2", Notification: 3, Highlight: 1},
			{Localpart: "u2", ThreadID: "$a1", Notification: 2},
			{Localpart: "u3", Notification: 2},
			{Localpart: "u3", ThreadID: "$a1", Notification: 1},
			// !b: u0 of $b2, $b3; u1 of $b1, $b2, $b4 (highlight); u2 of $b1,
			// $b3, $b4.
			{Localpart: "u0", Notification: 2},
			{Localpart: "u1", Notification: 3, Highlight: 1},
			{Localpart: "u2", Notification: 3},
		}
		if !slices.Equal(final.counts, wantCounts) {
			t.Errorf("counts = %+v, want %+v", final.counts, wantCounts)
		}
	})
}
