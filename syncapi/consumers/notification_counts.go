package consumers

import (
	"context"
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

// Handle stores the counts of one message; see HandleBatch.
func (c *NotificationCounts) Handle(ctx context.Context, m eventlog.Msg[userapi.NotificationCounts]) error {
	return c.HandleBatch(ctx, []eventlog.Msg[userapi.NotificationCounts]{m})
}

// HandleBatch stores the counts of every user in the messages, atomically
// at one position: the counts are absolute and a later message's counts of
// a (user, room) replace an earlier one's, so the batch commits what the
// messages one after the other would have left. A repeat
// stores the same values again (at a new position, which only makes /sync
// report them once more).
func (c *NotificationCounts) HandleBatch(ctx context.Context, msgs []eventlog.Msg[userapi.NotificationCounts]) error {
	var rooms []string                          // in first-seen order
	byRoom := map[string][]storage.UserCounts{} // in message order: the last of a user wins
	var users []string
	seen := map[string]bool{}
	for _, m := range msgs {
		v := m.Value
		if v.RoomID == "" {
			continue
		}
		for _, u := range v.Users {
			if u.UserID == "" {
				continue
			}
			js, err := json.Marshal(u)
			if err != nil {
				return fmt.Errorf("encode counts of %s: %w", u.UserID, err)
			}
			if _, ok := byRoom[v.RoomID]; !ok {
				rooms = append(rooms, v.RoomID)
			}
			byRoom[v.RoomID] = append(byRoom[v.RoomID], storage.UserCounts{UserID: u.UserID, Counts: js})
			if !seen[u.UserID] {
				seen[u.UserID] = true
				users = append(users, u.UserID)
			}
		}
	}
	if len(rooms) == 0 {
		return nil
	}
	// One position, taken before the counts are written: its row lock
	// orders the stream's writers until the commit (of the transaction, or
	// on PostgreSQL of the one statement), whatever the batch holds.
	all := make([]storage.RoomCounts, len(rooms))
	for i, roomID := range rooms {
		all[i] = storage.RoomCounts{RoomID: roomID, Users: byRoom[roomID]}
	}
	pos, err := c.db.StoreCounts(ctx, all)
	if err != nil {
		return fmt.Errorf("store notification counts of %d rooms: %w", len(rooms), err)
	}
	c.notifier.OnUsers(streams.Notification, pos, users...)
	return nil
}
