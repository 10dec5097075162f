package consumers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// receiptWait is how long a receipt whose event push evaluation has not
// handled yet is retried. The syncapi accepts a receipt only for an event
// it stored, so push evaluation (another consumer of the same roomserver
// output) normally catches up within moments; a receipt still unmatched
// after this is dropped, and the user's next receipt clears the counts.
const receiptWait = 10 * time.Minute

// Receipts clears notification counts when a local user's read receipt
// arrives (syncapi.ReceiptTopic): the user's notifications in the room up
// to the receipt's event are marked read, the counts recounted from the
// unread ones and republished on api.NotificationCountsTopic.
//
// Client-Server API, "Receiving notifications": "a user's unread
// notification count ... is reset when the user sends a read receipt"; a
// threaded receipt clears its thread only ("main" is the main timeline), an
// unthreaded one every thread. Private receipts count as well.
type Receipts struct {
	st         *storage.Storage
	publish    func(ctx context.Context, roomID string, localparts []string) error
	serverName string
	log        *slog.Logger
	now        func() time.Time
}

// NewReceipts returns the handler; publish publishes the current counts of
// users in a room (RoomServerOutput.PublishCounts).
func NewReceipts(st *storage.Storage, publish func(ctx context.Context, roomID string, localparts []string) error, serverName string, log *slog.Logger) *Receipts {
	return &Receipts{st: st, publish: publish, serverName: serverName, log: log, now: time.Now}
}

// Handle applies one receipt. Marking read up to an event and recounting
// are idempotent, and an older receipt arriving after a newer one marks
// nothing new, so redelivery and reordering are harmless.
func (c *Receipts) Handle(ctx context.Context, m eventlog.Msg[syncapi.OutputReceipt]) error {
	r := m.Value
	if r.Type != "m.read" && r.Type != "m.read.private" {
		return nil
	}
	localpart, ok := localpartOf(r.UserID, c.serverName)
	if !ok || r.RoomID == "" || r.EventID == "" {
		return nil // not ours to count: only local users have counts here
	}
	seq, err := c.st.Push.Events.SelectSeq(ctx, c.st.DB.Reader(), r.EventID)
	if errors.Is(err, storage.ErrNotFound) {
		if !m.Time.IsZero() && c.now().Sub(m.Time) > receiptWait {
			return eventlog.Permanent(fmt.Errorf("receipt of %s for %s: push evaluation never handled the event", r.UserID, r.EventID))
		}
		return fmt.Errorf("receipt of %s for %s: event not yet evaluated for push: %w", r.UserID, r.EventID, err)
	}
	if err != nil {
		return err
	}
	var thread *string
	switch r.ThreadID {
	case "":
	case "main":
		main := ""
		thread = &main
	default:
		t := r.ThreadID
		thread = &t
	}
	err = c.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.st.Push.Notifs.MarkRead(ctx, tx, localpart, r.RoomID, seq, thread); err != nil {
			return err
		}
		return c.st.Push.Counts.Recount(ctx, tx, localpart, r.RoomID, seq, thread)
	})
	if err != nil {
		return fmt.Errorf("apply receipt of %s in %s: %w", r.UserID, r.RoomID, err)
	}
	// Published after commit, absolute counts: a repeat publishes the same.
	// A failure is retried with the message (marking read again is a no-op).
	return c.publish(ctx, r.RoomID, []string{localpart})
}
