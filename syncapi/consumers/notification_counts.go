package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// NotificationCounts consumes userapi.NotificationCountsTopic: the unread
// counts that /sync reports in unread_notifications and
// unread_thread_notifications.
type NotificationCounts struct {
	db       *storage.Storage
	notifier *notifier.Notifier
	log      *slog.Logger
}

// NewNotificationCounts returns the handler.
func NewNotificationCounts(db *storage.Storage, n *notifier.Notifier, log *slog.Logger) *NotificationCounts {
	return &NotificationCounts{db: db, notifier: n, log: log}
}

// Handle stores the counts of every user in the message. The counts are
// absolute, so a repeat stores the same values again (at a new position,
// which only makes /sync report them once more).
func (c *NotificationCounts) Handle(ctx context.Context, m eventlog.Msg[userapi.NotificationCounts]) error {
	v := m.Value
	if v.RoomID == "" || len(v.Users) == 0 {
		return nil
	}
	var users []string
	var rows []storage.UserCounts
	for _, u := range v.Users {
		if u.UserID == "" {
			continue
		}
		js, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("encode counts of %s: %w", u.UserID, err)
		}
		rows = append(rows, storage.UserCounts{UserID: u.UserID, Counts: js})
		users = append(users, u.UserID)
	}
	if len(rows) == 0 {
		return nil
	}
	// The position is taken last: its row lock orders the stream's writers
	// until the commit, so nothing else happens while it is held.
	var pos streams.Position
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if pos, err = c.db.Positions.Next(ctx, tx, streams.Notification); err != nil {
			return err
		}
		return c.db.Counts.UpsertMany(ctx, tx, v.RoomID, rows, pos)
	})
	if err != nil {
		return fmt.Errorf("store notification counts of room %s: %w", v.RoomID, err)
	}
	c.notifier.OnUsers(streams.Notification, pos, users...)
	return nil
}
