package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// The counts are kept beside the notifications rather than counted from
// them: /sync reads them for every room, and counting unread rows would
// cost as much as the user is behind.
const notificationCountsSchema = `CREATE TABLE userapi_notification_counts (
	localpart          TEXT NOT NULL,
	room_id            TEXT NOT NULL,
	thread_id          TEXT NOT NULL,
	notification_count BIGINT NOT NULL,
	highlight_count    BIGINT NOT NULL,
	PRIMARY KEY (room_id, localpart, thread_id)
)`

// CountRow is a row of userapi_notification_counts (or an increment).
type CountRow struct {
	Localpart    string
	ThreadID     string
	Notification int64
	Highlight    int64
}

// NotificationCountsTable is userapi_notification_counts.
type NotificationCountsTable struct{ d sqlutil.Dialect }

// Add adds increments to the counts of a room, in statements of many rows.
func (NotificationCountsTable) Add(ctx context.Context, q sqlutil.Querier, roomID string, incs []CountRow) error {
	for len(incs) > 0 {
		n := min(len(incs), notifBatch)
		var b strings.Builder
		b.WriteString(`INSERT INTO userapi_notification_counts (room_id, localpart, thread_id, notification_count, highlight_count) VALUES `)
		args := []any{roomID}
		for i, r := range incs[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			k := len(args)
			fmt.Fprintf(&b, "($1, $%d, $%d, $%d, $%d)", k+1, k+2, k+3, k+4)
			args = append(args, r.Localpart, r.ThreadID, r.Notification, r.Highlight)
		}
		b.WriteString(` ON CONFLICT (room_id, localpart, thread_id) DO UPDATE SET
			notification_count = userapi_notification_counts.notification_count + excluded.notification_count,
			highlight_count = userapi_notification_counts.highlight_count + excluded.highlight_count`)
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("add %d notification counts in %s: %w", n, roomID, err)
		}
		incs = incs[n:]
	}
	return nil
}

// Select returns the count rows of the listed users in a room.
func (t NotificationCountsTable) Select(ctx context.Context, q sqlutil.Querier, roomID string, localparts []string) ([]CountRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT localpart, thread_id, notification_count, highlight_count
		FROM userapi_notification_counts WHERE room_id = $1 AND `+t.d.In("localpart", 2), roomID, t.d.List(localparts))
	if err != nil {
		return nil, fmt.Errorf("select notification counts in %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []CountRow
	for rows.Next() {
		var r CountRow
		if err := rows.Scan(&r.Localpart, &r.ThreadID, &r.Notification, &r.Highlight); err != nil {
			return nil, fmt.Errorf("select notification counts in %s: %w", roomID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select notification counts in %s: %w", roomID, err)
	}
	return out, nil
}

// Recount sets a user's counts in a room from the unread notifications
// (after a read receipt marked some read).
func (NotificationCountsTable) Recount(ctx context.Context, q sqlutil.Querier, localpart, roomID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM userapi_notification_counts WHERE room_id = $1 AND localpart = $2`, roomID, localpart); err != nil {
		return fmt.Errorf("recount notifications of %s in %s: %w", localpart, roomID, err)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_notification_counts (room_id, localpart, thread_id, notification_count, highlight_count)
		SELECT room_id, localpart, thread_id, COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END)
		FROM userapi_notifications WHERE room_id = $1 AND localpart = $2 AND read = FALSE GROUP BY room_id, localpart, thread_id`,
		roomID, localpart)
	if err != nil {
		return fmt.Errorf("recount notifications of %s in %s: %w", localpart, roomID, err)
	}
	return nil
}

// SelectUnread returns a user's unread notification count over every room
// (the push gateway's counts.unread).
func (NotificationCountsTable) SelectUnread(ctx context.Context, q sqlutil.Querier, localpart string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(notification_count), 0) FROM userapi_notification_counts WHERE localpart = $1`, localpart).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("select unread count of %s: %w", localpart, err)
	}
	return n, nil
}
