package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestMessagesMonolith(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { messagesScenario(t, startMonolith(t, ""), true) })
	t.Run("postgres", func(t *testing.T) { messagesScenario(t, startMonolith(t, storagetest.PostgresDSN(t)), true) })
}

// TestMessagesPolylith runs the paging, context, event, timestamp and
// redaction part through the proxy that sends syncapi paths to the syncapi
// process.
func TestMessagesPolylith(t *testing.T) {
	messagesScenario(t, startPolylith(t).server, false)
}

// pageAll pages a room from the start in direction dir with pages of
// limit until end is omitted, and returns the events in the order served.
func pageAll(t *testing.T, cli *mautrix.Client, room id.RoomID, dir mautrix.Direction, limit int, filter *mautrix.FilterPart) []*event.Event {
	t.Helper()
	out, err := tryPageAll(t, cli, room, dir, limit, filter)
	must(t, "Messages", err)
	return out
}

func tryPageAll(t *testing.T, cli *mautrix.Client, room id.RoomID, dir mautrix.Direction, limit int, filter *mautrix.FilterPart) ([]*event.Event, error) {
	t.Helper()
	var out []*event.Event
	from := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		r, err := cli.Messages(t.Context(), room, from, "", dir, filter, limit)
		if err != nil {
			return nil, err
		}
		if len(r.Chunk) > limit {
			t.Fatalf("page of %d events with limit %d", len(r.Chunk), limit)
		}
		out = append(out, r.Chunk...)
		if r.End == "" {
			return out, nil
		}
		from = r.End
	}
}

func msgIDs(evs []*event.Event) []id.EventID {
	out := []id.EventID{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// waitMessages pages backwards until every id in want is served.
func waitMessages(t *testing.T, cli *mautrix.Client, room id.RoomID, want ...id.EventID) []*event.Event {
	t.Helper()
	var evs []*event.Event
	waitFor(t, 20*time.Second, func() error {
		// A join the syncapi has not stored yet is M_FORBIDDEN for a while.
		var err error
		if evs, err = tryPageAll(t, cli, room, mautrix.DirectionBackward, 100, nil); err != nil {
			return err
		}
		got := msgIDs(evs)
		for _, w := range want {
			if !slices.Contains(got, w) {
				return fmt.Errorf("%s not served yet", w)
			}
		}
		return nil
	})
	return evs
}

func messagesScenario(t *testing.T, s *server, full bool) {
	ctx := t.Context()
	alice, bob, carol := userClient(t, s, "alice"), userClient(t, s, "bob"), userClient(t, s, "carol")
	room := publicRoom(t, alice, bob, carol)

	// Three senders at once, ten messages each.
	const perSender = 10
	senders := []*mautrix.Client{alice, bob, carol}
	sent := make([][]id.EventID, len(senders))
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for i, c := range senders {
		wg.Go(func() {
			for n := range perSender {
				r, err := c.SendText(ctx, room.RoomID, fmt.Sprintf("%s %d", c.UserID, n))
				if err != nil {
					errs <- err
					return
				}
				sent[i] = append(sent[i], r.EventID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SendText: %v", err)
	}
	var all []id.EventID
	for _, ids := range sent {
		all = append(all, ids...)
	}
	backward := waitMessages(t, alice, room.RoomID, all...)

	// Backward and forward, with small pages: every event once, the same
	// order both ways, each sender's messages in the order sent.
	for _, limit := range []int{3, 7} {
		b := msgIDs(pageAll(t, alice, room.RoomID, mautrix.DirectionBackward, limit, nil))
		f := msgIDs(pageAll(t, alice, room.RoomID, mautrix.DirectionForward, limit, nil))
		if !slices.Equal(b, msgIDs(backward)) {
			t.Fatalf("limit %d: backward pages differ from one big page", limit)
		}
		slices.Reverse(b)
		if !slices.Equal(b, f) {
			t.Fatalf("limit %d: forward %v is not backward reversed %v", limit, f, b)
		}
		seen := map[id.EventID]int{}
		for i, e := range f {
			if _, dup := seen[e]; dup {
				t.Fatalf("limit %d: %s served twice", limit, e)
			}
			seen[e] = i
		}
		for si, ids := range sent {
			for n := 1; n < len(ids); n++ {
				if seen[ids[n]] <= seen[ids[n-1]] {
					t.Fatalf("sender %d: message %d served before message %d", si, n, n-1)
				}
			}
		}
	}
	forward := msgIDs(pageAll(t, alice, room.RoomID, mautrix.DirectionForward, 50, nil))
	if forward[0] == "" || len(forward) < len(all)+5 {
		t.Fatalf("forward = %d events", len(forward))
	}

	// Filters: only carol's messages.
	onlyCarol := pageAll(t, alice, room.RoomID, mautrix.DirectionForward, 4, &mautrix.FilterPart{
		Types: []event.Type{event.EventMessage}, Senders: []id.UserID{carol.UserID}})
	if got := msgIDs(onlyCarol); !slices.Equal(got, sent[2]) {
		t.Fatalf("carol's messages = %v, want %v", got, sent[2])
	}

	// Context around a message in the middle, and its tokens.
	mid := len(forward) / 2
	c, err := alice.Context(ctx, room.RoomID, forward[mid], nil, 6)
	must(t, "Context", err)
	if c.Event.ID != forward[mid] || !slices.Equal(msgIDs(c.EventsBefore), reversedIDs(forward[mid-3:mid])) ||
		!slices.Equal(msgIDs(c.EventsAfter), forward[mid+1:mid+4]) || c.Start == "" || c.End == "" || len(c.State) == 0 {
		t.Fatalf("context = before %v event %s after %v", msgIDs(c.EventsBefore), c.Event.ID, msgIDs(c.EventsAfter))
	}
	more, err := alice.Messages(ctx, room.RoomID, c.End, "", mautrix.DirectionForward, nil, 2)
	must(t, "Messages(from context end)", err)
	if !slices.Equal(msgIDs(more.Chunk), forward[mid+4:mid+6]) {
		t.Fatalf("after the context: %v, want %v", msgIDs(more.Chunk), forward[mid+4:mid+6])
	}

	// One event, and the one closest to its timestamp.
	ev, err := bob.GetEvent(ctx, room.RoomID, sent[0][3])
	must(t, "GetEvent", err)
	if ev.ID != sent[0][3] || ev.Sender != alice.UserID || ev.RoomID != room.RoomID || ev.Timestamp == 0 {
		t.Fatalf("GetEvent = %+v", ev)
	}
	_, err = bob.GetEvent(ctx, room.RoomID, "$nope")
	mustErr(t, "GetEvent(unknown)", err, "M_NOT_FOUND")
	at := time.UnixMilli(ev.Timestamp)
	for _, dir := range []mautrix.Direction{mautrix.DirectionForward, mautrix.DirectionBackward} {
		r, err := bob.TimestampToEvent(ctx, room.RoomID, at, dir)
		must(t, "TimestampToEvent", err)
		found, err := bob.GetEvent(ctx, room.RoomID, r.EventID)
		must(t, "GetEvent(found)", err)
		if found.Timestamp != r.Timestamp.UnixMilli() || found.Timestamp != ev.Timestamp {
			t.Fatalf("TimestampToEvent(%c) = %s at %d, want an event at %d", dir, r.EventID, r.Timestamp.UnixMilli(), ev.Timestamp)
		}
	}
	_, err = bob.TimestampToEvent(ctx, room.RoomID, time.Now().Add(time.Hour), mautrix.DirectionForward)
	mustErr(t, "TimestampToEvent(future)", err, "M_NOT_FOUND")

	// A redaction: the redacted form in /messages, /event and a new /sync.
	secret, err := carol.SendText(ctx, room.RoomID, "secret")
	must(t, "SendText", err)
	red, err := carol.RedactEvent(ctx, room.RoomID, secret.EventID, mautrix.ReqRedact{Reason: "oops"})
	must(t, "RedactEvent", err)
	redacted := func(e *event.Event) error {
		if e.Unsigned.RedactedBecause == nil || e.Unsigned.RedactedBecause.ID != red.EventID || string(e.Content.VeryRaw) != "{}" {
			return fmt.Errorf("%s not redacted: content %s, unsigned %+v", e.ID, e.Content.VeryRaw, e.Unsigned)
		}
		return nil
	}
	waitFor(t, 20*time.Second, func() error {
		r, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 2)
		if err != nil {
			return err
		}
		if got := msgIDs(r.Chunk); !slices.Equal(got, []id.EventID{red.EventID, secret.EventID}) {
			return fmt.Errorf("latest = %v", got)
		}
		return redacted(r.Chunk[1])
	})
	ev, err = alice.GetEvent(ctx, room.RoomID, secret.EventID)
	must(t, "GetEvent(redacted)", err)
	must(t, "redacted /event", redacted(ev))
	sr, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	must(t, "Sync", err)
	tl := sr.Rooms.Join[room.RoomID].Timeline.Events
	i := slices.IndexFunc(tl, func(e *event.Event) bool { return e.ID == secret.EventID })
	if i < 0 {
		t.Fatalf("redacted event not in the timeline")
	}
	must(t, "redacted in /sync", redacted(tl[i]))

	// Someone never in the room may not read it.
	erin := userClient(t, s, "erin")
	_, err = erin.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 5)
	mustErr(t, "Messages(not a member)", err, "M_FORBIDDEN")
	_, err = erin.GetEvent(ctx, room.RoomID, secret.EventID)
	mustErr(t, "GetEvent(not a member)", err, "M_NOT_FOUND")

	if !full {
		return
	}

	// History visibility: with joined, a late joiner does not see what came
	// before; with shared, it does.
	for _, hv := range []event.HistoryVisibility{event.HistoryVisibilityJoined, event.HistoryVisibilityShared} {
		r, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "CreateRoom", err)
		_, err = alice.SendStateEvent(ctx, r.RoomID, event.StateHistoryVisibility, "", &event.HistoryVisibilityEventContent{HistoryVisibility: hv})
		must(t, "SendStateEvent(history_visibility)", err)
		early, err := alice.SendText(ctx, r.RoomID, "early")
		must(t, "SendText", err)
		_, err = erin.JoinRoomByID(ctx, r.RoomID)
		must(t, "JoinRoomByID", err)
		late, err := alice.SendText(ctx, r.RoomID, "late")
		must(t, "SendText", err)
		got := msgIDs(waitMessages(t, erin, r.RoomID, late.EventID))
		_, getErr := erin.GetEvent(ctx, r.RoomID, early.EventID)
		if hv == event.HistoryVisibilityJoined {
			if slices.Contains(got, early.EventID) {
				t.Fatalf("joined: the late joiner sees the early message")
			}
			mustErr(t, "GetEvent(early, joined)", getErr, "M_NOT_FOUND")
			_, err = erin.Context(ctx, r.RoomID, early.EventID, nil, 2)
			mustErr(t, "Context(early, joined)", err, "M_NOT_FOUND")
		} else {
			if !slices.Contains(got, early.EventID) {
				t.Fatalf("shared: the late joiner does not see the early message")
			}
			must(t, "GetEvent(early, shared)", getErr)
		}
	}

	// Ignoring: bob ignores carol; her messages go from his /messages, his
	// context and his /sync, and stay for alice.
	must(t, "SetAccountData", bob.SetAccountData(ctx, "m.ignored_user_list", map[string]any{
		"ignored_users": map[string]any{string(carol.UserID): map[string]any{}}}))
	carolMsg, err := carol.SendText(ctx, room.RoomID, "ignored")
	must(t, "SendText", err)
	after, err := alice.SendText(ctx, room.RoomID, "after")
	must(t, "SendText", err)
	waitFor(t, 20*time.Second, func() error {
		evs, err := tryPageAll(t, bob, room.RoomID, mautrix.DirectionBackward, 50, nil)
		if err != nil {
			return err
		}
		got := msgIDs(evs)
		if !slices.Contains(got, after.EventID) {
			return fmt.Errorf("alice's last message not served yet")
		}
		for _, e := range evs {
			if e.Sender == carol.UserID && e.StateKey == nil {
				return fmt.Errorf("carol's %s still served to bob", e.ID)
			}
		}
		return nil
	})
	c, err = bob.Context(ctx, room.RoomID, after.EventID, nil, 10)
	must(t, "Context", err)
	for _, e := range c.EventsBefore {
		if e.Sender == carol.UserID && e.StateKey == nil {
			t.Fatalf("carol's %s in bob's context", e.ID)
		}
	}
	bs, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	must(t, "Sync", err)
	for _, e := range bs.Rooms.Join[room.RoomID].Timeline.Events {
		if e.Sender == carol.UserID && e.Type == event.EventMessage {
			t.Fatalf("carol's %s in bob's sync", e.ID)
		}
	}
	if got := msgIDs(waitMessages(t, alice, room.RoomID, carolMsg.EventID)); !slices.Contains(got, carolMsg.EventID) {
		t.Fatal("alice does not see carol's message")
	}
}

func reversedIDs(ids []id.EventID) []id.EventID {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}
