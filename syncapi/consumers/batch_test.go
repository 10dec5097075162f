package consumers_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/consumers"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// batch builds roomserver output messages with increasing sequences.
type batch struct {
	seq  uint64
	msgs []eventlog.Msg[rsapi.OutputEvent]
}

func (b *batch) add(roomID string, ev rsapi.OutputEvent) eventlog.Msg[rsapi.OutputEvent] {
	b.seq++
	ev.RoomID, ev.RoomVersion = roomID, "10"
	m := eventlog.Msg[rsapi.OutputEvent]{Stream: rsapi.OutputTopic.Name, Seq: b.seq, Key: roomID, Value: ev}
	b.msgs = append(b.msgs, m)
	return m
}

// TestRoomServerOutputBatch: events of several rooms, interleaved, in one
// batch land at increasing positions in batch order, each room's timeline
// reads back in order with its state built, and a redelivered batch
// (partly or wholly) stores nothing twice.
func TestRoomServerOutputBatch(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		alice := f.n.Listen("@a:x")
		defer alice.Close()

		rooms := []string{"!a:x", "!b:x", "!c:x"}
		var b batch
		timeline := map[string][]string{} // room → event ids in order
		add := func(roomID, id string, ev rsapi.OutputEvent) {
			ev.EventID = id
			b.add(roomID, ev)
			timeline[roomID] = append(timeline[roomID], id)
		}
		for _, r := range rooms {
			add(r, "$create"+r, rsapi.OutputEvent{Event: event("m.room.create", "@a:x", sk(""), `{}`), AddsState: []string{"$create" + r}})
		}
		for _, r := range rooms {
			add(r, "$join"+r, rsapi.OutputEvent{Event: event("m.room.member", "@a:x", sk("@a:x"), `{"membership":"join"}`), AddsState: []string{"$join" + r}})
		}
		for i := range 3 {
			for _, r := range rooms {
				add(r, "$msg"+string(rune('0'+i))+r, rsapi.OutputEvent{Event: event("m.room.message", "@a:x", nil, `{"body":"hi"}`)})
			}
		}
		// The same event twice in one batch (the roomserver published it twice).
		b.add("!a:x", b.msgs[len(b.msgs)-3].Value)
		if err := f.h.HandleBatch(ctx, b.msgs); err != nil {
			t.Fatalf("HandleBatch = %v", err)
		}

		ids := make([]string, 0, len(b.msgs))
		for _, m := range b.msgs[:len(b.msgs)-1] {
			ids = append(ids, m.Value.EventID)
		}
		evs, err := f.db.Events.SelectByIDs(ctx, f.db.DB.Reader(), ids)
		if err != nil || len(evs) != len(ids) {
			t.Fatalf("SelectByIDs = %d events, %v; want %d", len(evs), err, len(ids))
		}
		pos := map[string]streams.Position{}
		for _, e := range evs {
			pos[e.EventID] = e.Position
		}
		for i := 1; i < len(ids); i++ {
			if pos[ids[i]] <= pos[ids[i-1]] {
				t.Errorf("%s at %d, after %s at %d: positions not increasing in batch order", ids[i], pos[ids[i]], ids[i-1], pos[ids[i-1]])
			}
		}
		last := f.position()
		if last != pos[ids[len(ids)-1]] || last != streams.Position(len(ids)) {
			t.Errorf("stream at %d, last event at %d, want both %d (one position per stored event)", last, pos[ids[len(ids)-1]], len(ids))
		}
		if p := f.n.Current().Get(streams.PDU); p != last {
			t.Errorf("notifier at %d, storage at %d", p, last)
		}
		select {
		case <-alice.C():
		default:
			t.Error("the joining user was not woken")
		}
		checkTimelines := func() {
			t.Helper()
			for _, r := range rooms {
				evs, _, err := f.db.Events.Recent(ctx, f.db.DB.Reader(), r, 0, f.position(), 100)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range evs {
					got = append(got, e.EventID)
				}
				if !slices.Equal(got, timeline[r]) {
					t.Errorf("room %s timeline %v, want %v", r, got, timeline[r])
				}
				st, err := f.db.CurrentState.SelectRoom(ctx, f.db.DB.Reader(), r)
				if err != nil || len(st) != 2 || st[storage.Tuple{Type: "m.room.member", StateKey: "@a:x"}] != "$join"+r {
					t.Errorf("room %s state %v, %v", r, st, err)
				}
				if got := f.n.JoinedUsers(r); !slices.Equal(got, []string{"@a:x"}) {
					t.Errorf("room %s: notifier JoinedUsers = %v", r, got)
				}
			}
		}
		checkTimelines()

		// Redelivered: the second half of the batch with one new event, then
		// the whole batch again.
		var again batch
		again.seq = b.seq
		again.msgs = slices.Clone(b.msgs[len(b.msgs)/2:])
		add("!b:x", "$new", rsapi.OutputEvent{Event: event("m.room.message", "@a:x", nil, `{}`)})
		again.msgs = append(again.msgs, b.msgs[len(b.msgs)-1])
		if err := f.h.HandleBatch(ctx, again.msgs); err != nil {
			t.Fatalf("HandleBatch(redelivery) = %v", err)
		}
		if p := f.position(); p != last+1 {
			t.Errorf("after a partial redelivery with one new event: stream at %d, want %d", p, last+1)
		}
		if err := f.h.HandleBatch(ctx, b.msgs); err != nil {
			t.Fatalf("HandleBatch(whole redelivery) = %v", err)
		}
		if p := f.position(); p != last+1 {
			t.Errorf("after a whole redelivery: stream at %d, want %d", p, last+1)
		}
		checkTimelines()

		// A poison message fails the batch it is in, and nothing of it is stored.
		var poisoned batch
		poisoned.seq = b.seq + 10
		poisoned.add("!c:x", rsapi.OutputEvent{EventID: "$fine", Event: event("m.room.message", "@a:x", nil, `{}`)})
		poisoned.add("!c:x", rsapi.OutputEvent{EventID: "$bad", Event: json.RawMessage(`{}`)})
		if err := f.h.HandleBatch(ctx, poisoned.msgs); err == nil {
			t.Fatal("HandleBatch with a poison message = nil")
		}
		if p := f.position(); p != last+1 {
			t.Errorf("a failed batch took positions: %d, want %d", p, last+1)
		}
		if evs, err := f.db.Events.SelectByIDs(ctx, f.db.DB.Reader(), []string{"$fine"}); err != nil || len(evs) != 0 {
			t.Errorf("a failed batch stored %v, %v", evs, err)
		}

		// A failure inside the transaction, after a run of plain messages
		// was written (here the state changes table is gone when the state
		// event comes): the whole batch is rolled back.
		var failing batch
		failing.seq = b.seq + 20
		failing.add("!c:x", rsapi.OutputEvent{EventID: "$written", Event: event("m.room.message", "@a:x", nil, `{}`)})
		failing.add("!c:x", rsapi.OutputEvent{EventID: "$topic", Event: event("m.room.topic", "@a:x", sk(""), `{"topic":"t"}`),
			AddsState: []string{"$topic"}})
		if _, err := f.db.DB.ExecContext(ctx, `ALTER TABLE syncapi_state_deltas RENAME TO syncapi_state_deltas_gone`); err != nil {
			t.Fatal(err)
		}
		err = f.h.HandleBatch(ctx, failing.msgs)
		if _, rerr := f.db.DB.ExecContext(ctx, `ALTER TABLE syncapi_state_deltas_gone RENAME TO syncapi_state_deltas`); rerr != nil {
			t.Fatal(rerr)
		}
		if err == nil {
			t.Fatal("HandleBatch without its state table = nil")
		}
		if p := f.position(); p != last+1 {
			t.Errorf("a batch failing in its transaction took positions: %d, want %d", p, last+1)
		}
		if evs, err := f.db.Events.SelectByIDs(ctx, f.db.DB.Reader(), []string{"$written"}); err != nil || len(evs) != 0 {
			t.Errorf("a batch failing in its transaction kept %v, %v", evs, err)
		}
	})
}

// TestNotificationCountsBatch: a batch commits what its messages would one
// after the other, at one position.
func TestNotificationCountsBatch(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s, err := storage.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		n := notifier.New(streams.Token{}, nil)
		h := consumers.NewNotificationCounts(s, n, slog.New(slog.DiscardHandler))
		counts := func(roomID string, total int64) eventlog.Msg[userapi.NotificationCounts] {
			return eventlog.Msg[userapi.NotificationCounts]{Key: roomID, Value: userapi.NotificationCounts{RoomID: roomID,
				Users: []userapi.UserCounts{{UserID: "@u:x", Total: userapi.Counts{NotificationCount: total}}}}}
		}
		msgs := []eventlog.Msg[userapi.NotificationCounts]{counts("!a:x", 1), counts("!b:x", 5), counts("!a:x", 2), {}}
		if err := h.HandleBatch(ctx, msgs); err != nil {
			t.Fatalf("HandleBatch = %v", err)
		}
		got, err := s.Counts.ForUser(ctx, s.DB.Reader(), "@u:x", 100)
		if err != nil {
			t.Fatal(err)
		}
		for room, want := range map[string]int64{"!a:x": 2, "!b:x": 5} {
			var uc userapi.UserCounts
			if err := json.Unmarshal(got[room].Counts, &uc); err != nil || uc.Total.NotificationCount != want || got[room].Position != 1 {
				t.Errorf("room %s: counts %s at %d (%v), want %d at 1", room, got[room].Counts, got[room].Position, err, want)
			}
		}
		if p := n.Current().Get(streams.Notification); p != 1 {
			t.Errorf("notifier at %d, want 1", p)
		}
		// The next batch takes the next position, a user repeated in it
		// keeping the last counts.
		msgs = []eventlog.Msg[userapi.NotificationCounts]{counts("!b:x", 6), counts("!b:x", 7)}
		if err := h.HandleBatch(ctx, msgs); err != nil {
			t.Fatalf("HandleBatch = %v", err)
		}
		if got, err = s.Counts.ForUser(ctx, s.DB.Reader(), "@u:x", 100); err != nil {
			t.Fatal(err)
		}
		var uc userapi.UserCounts
		if err := json.Unmarshal(got["!b:x"].Counts, &uc); err != nil || uc.Total.NotificationCount != 7 || got["!b:x"].Position != 2 {
			t.Errorf("room !b:x: counts %s at %d (%v), want 7 at 2", got["!b:x"].Counts, got["!b:x"].Position, err)
		}
		if got["!a:x"].Position != 1 {
			t.Errorf("room !a:x moved to %d", got["!a:x"].Position)
		}
		if p, err := s.Positions.Current(ctx, s.DB.Reader(), streams.Notification); err != nil || p != 2 {
			t.Errorf("stream at %d, %v; want 2", p, err)
		}
		if p := n.Current().Get(streams.Notification); p != 2 {
			t.Errorf("notifier at %d, want 2", p)
		}
	})
}

// BenchmarkRoomServerOutputBatch measures storing message events in
// batches of 16 (one transaction each); ns/op is per event, comparable with
// BenchmarkRoomServerOutput.
func BenchmarkRoomServerOutputBatch(b *testing.B) {
	const size = 16
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		s, err := storage.Open(b.Context(), db)
		if err != nil {
			b.Fatal(err)
		}
		h := consumers.NewRoomServerOutput(s, notifier.New(streams.Token{}, nil), slog.New(slog.DiscardHandler))
		body := event("m.room.message", "@a:x", nil, `{"body":"hello"}`)
		var seq uint64
		msgs := make([]eventlog.Msg[rsapi.OutputEvent], 0, size)
		flush := func() {
			if err := h.HandleBatch(b.Context(), msgs); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
		for b.Loop() {
			seq++
			ev := rsapi.OutputEvent{RoomID: room, RoomVersion: "10", EventID: fmt.Sprintf("$bench%d", seq), Event: body}
			msgs = append(msgs, eventlog.Msg[rsapi.OutputEvent]{Stream: rsapi.OutputTopic.Name, Seq: seq, Key: room, Value: ev})
			if len(msgs) == size {
				flush()
			}
		}
		if len(msgs) > 0 {
			flush()
		}
	})
}
