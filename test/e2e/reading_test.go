package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestReadingMonolith(t *testing.T) {
	onBothEngines(t, readingScenario)
}

func TestReadingPolylith(t *testing.T) {
	readingScenario(t, startPolylith(t).server)
}

// syncUntil syncs from since (initial when empty) until cond accepts the
// response, and returns it.
func syncUntil(t *testing.T, cli *mautrix.Client, since string, cond func(*mautrix.RespSync) error) *mautrix.RespSync {
	t.Helper()
	var resp *mautrix.RespSync
	waitFor(t, 15*time.Second, func() error {
		r, err := cli.SyncRequest(t.Context(), 2000, since, "", false, event.PresenceOnline)
		if err != nil {
			return err
		}
		resp = r
		return cond(r)
	})
	return resp
}

// readingScenario: typing, receipts (public, private, threaded), the fully
// read marker and presence between two users, as a client sees them.
func readingScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob := userClient(t, s, "alice"), userClient(t, s, "bob")
	room := publicRoom(t, alice, bob)
	sent, err := alice.SendText(ctx, room.RoomID, "hello")
	must(t, "SendText", err)
	start := syncUntil(t, bob, "", func(r *mautrix.RespSync) error {
		if len(messages(r, room.RoomID)) == 0 {
			return fmt.Errorf("no message yet")
		}
		return nil
	})

	_, err = alice.UserTyping(ctx, room.RoomID, true, 20*time.Second)
	must(t, "UserTyping", err)
	r := syncUntil(t, bob, start.NextBatch, func(r *mautrix.RespSync) error {
		for _, e := range r.Rooms.Join[room.RoomID].Ephemeral.Events {
			if e.Type == event.EphemeralEventTyping {
				_ = e.Content.ParseRaw(e.Type)
				if ids := e.Content.AsTyping().UserIDs; len(ids) == 1 && ids[0] == alice.UserID {
					return nil
				}
			}
		}
		return fmt.Errorf("alice not typing yet")
	})

	must(t, "SendReceipt", alice.SendReceipt(ctx, room.RoomID, sent.EventID, event.ReceiptTypeRead, nil))
	must(t, "SendReceipt(private)", bob.SendReceipt(ctx, room.RoomID, sent.EventID, event.ReceiptTypeReadPrivate, nil))
	syncUntil(t, bob, r.NextBatch, func(r *mautrix.RespSync) error {
		for _, e := range r.Rooms.Join[room.RoomID].Ephemeral.Events {
			if e.Type != event.EphemeralEventReceipt {
				continue
			}
			_ = e.Content.ParseRaw(e.Type)
			rc := *e.Content.AsReceipt()
			if _, ok := rc[sent.EventID][event.ReceiptTypeRead][alice.UserID]; ok {
				if _, ok := rc[sent.EventID][event.ReceiptTypeReadPrivate][bob.UserID]; ok {
					return nil
				}
			}
		}
		return fmt.Errorf("receipts not there yet")
	})
	// Bob's private receipt stays private.
	syncUntil(t, alice, "", func(r *mautrix.RespSync) error {
		for _, e := range r.Rooms.Join[room.RoomID].Ephemeral.Events {
			if e.Type == event.EphemeralEventReceipt {
				if bytes.Contains(e.Content.VeryRaw, []byte("private")) {
					t.Fatalf("alice sees a private receipt: %s", e.Content.VeryRaw)
				}
				return nil
			}
		}
		return fmt.Errorf("no receipt yet")
	})

	// The fully read marker comes back as room account data.
	must(t, "SetReadMarkers", bob.SetReadMarkers(ctx, room.RoomID, &mautrix.ReqSetReadMarkers{FullyRead: sent.EventID}))
	syncUntil(t, bob, "", func(r *mautrix.RespSync) error {
		for _, e := range r.Rooms.Join[room.RoomID].AccountData.Events {
			if e.Type == event.AccountDataFullyRead {
				return nil
			}
		}
		return fmt.Errorf("no m.fully_read yet")
	})

	must(t, "SetPresence", alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away"}))
	p, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "away" {
		t.Fatalf("GetPresence(alice) = %+v, %v", p, err)
	}
	syncUntil(t, bob, "", func(r *mautrix.RespSync) error {
		for _, e := range r.Presence.Events {
			if e.Sender == alice.UserID {
				return nil
			}
		}
		return fmt.Errorf("no presence of alice yet")
	})
	_, err = bob.UserTyping(ctx, id.RoomID("!nowhere:"+string(s.ServerName)), true, time.Second)
	mustErr(t, "UserTyping(unknown room)", err, "M_FORBIDDEN")
}
