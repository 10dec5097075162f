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
	var pos streams.Position
	var users []string
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		users = users[:0]
		var err error
		if pos, err = c.db.Positions.Next(ctx, tx, streams.Notification); err != nil {
			return err
		}
		for _, u := range v.Users {
			if u.UserID == "" {
				continue
			}
			js, err := json.Marshal(u)
			if err != nil {
				return fmt.Errorf("encode counts of %s: %w", u.UserID, err)
			}
			if err := c.db.Counts.Upsert(ctx, tx, u.UserID, v.RoomID, js, pos); err != nil {
				return err
			}
			users = append(users, u.UserID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store notification counts of room %s: %w", v.RoomID, err)
	}
	c.notifier.OnUsers(streams.Notification, pos, users...)
	return nil
}
