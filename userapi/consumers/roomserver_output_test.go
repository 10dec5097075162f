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
		st, err := storage.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
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
		st, err := storage.Open(ctx, db)
		if err != nil {
			b.Fatal(err)
		}
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
