package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func notificationCountsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_notification_counts (
	user_id  TEXT NOT NULL,
	room_id  TEXT NOT NULL,
	-- The userapi's counts as JSON (total, main timeline, per thread): absolute values, replaced whole.
	counts   TEXT NOT NULL,
	position BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id)
)`
}

// NotificationCountsTable is syncapi_notification_counts: the unread
// counts the userapi published last for each (user, room).
type NotificationCountsTable struct{ d sqlutil.Dialect }

// Upsert stores a user's counts in a room.
func (t NotificationCountsTable) Upsert(ctx context.Context, q sqlutil.Querier, userID, roomID string, counts []byte, pos streams.Position) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_notification_counts (user_id, room_id, counts, position)
		VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, room_id) DO UPDATE SET counts = excluded.counts, position = excluded.position`,
		userID, roomID, string(counts), pos)
	if err != nil {
		return fmt.Errorf("upsert notification counts of %s in room %s: %w", userID, roomID, err)
	}
	return nil
}

// NotificationCounts are one room's stored counts.
type NotificationCounts struct {
	RoomID   string
	Counts   []byte
	Position streams.Position
}

// ForUser returns a user's counts in every room up to upTo.
func (t NotificationCountsTable) ForUser(ctx context.Context, q sqlutil.Querier, userID string, upTo streams.Position) (map[string]NotificationCounts, error) {
	rows, err := q.QueryContext(ctx, `SELECT room_id, counts, position FROM syncapi_notification_counts
		WHERE user_id = $1 AND position <= $2`, userID, upTo)
	if err != nil {
		return nil, fmt.Errorf("select notification counts of %s: %w", userID, err)
	}
	defer rows.Close()
	out := map[string]NotificationCounts{}
	for rows.Next() {
		var c NotificationCounts
		var js string
		if err := rows.Scan(&c.RoomID, &js, &c.Position); err != nil {
			return nil, fmt.Errorf("scan notification counts of %s: %w", userID, err)
		}
		c.Counts = []byte(js)
		out[c.RoomID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read notification counts of %s: %w", userID, err)
	}
	return out, nil
}
