package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func notificationsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_notifications (
	id        ` + d.ID() + `,
	localpart TEXT NOT NULL,
	room_id   TEXT NOT NULL,
	event_id  TEXT NOT NULL,
	-- thread_id is the thread root, '' for the main timeline.
	thread_id TEXT NOT NULL,
	seq       BIGINT NOT NULL,
	ts        BIGINT NOT NULL,
	highlight BOOLEAN NOT NULL,
	read      BOOLEAN NOT NULL DEFAULT FALSE,
	actions   TEXT NOT NULL
)`
}

const (
	notificationsUserIndex = `CREATE INDEX userapi_notifications_user ON userapi_notifications (localpart, id)`
	notificationsRoomIndex = `CREATE INDEX userapi_notifications_room ON userapi_notifications (localpart, room_id, seq)`
)

// NotificationRow is a row of userapi_notifications.
type NotificationRow struct {
	ID        int64
	Localpart string
	RoomID    string
	EventID   string
	ThreadID  string
	Seq       int64
	TS        int64
	Highlight bool
	Read      bool
	Actions   string
	Event     string // from userapi_push_events, on Select
}

// NotificationsTable is userapi_notifications.
type NotificationsTable struct{ d sqlutil.Dialect }

// notifBatch bounds the rows of one INSERT (SQLite's variable limit).
const notifBatch = 500

// InsertBatch stores the notifications of one event, a few statements for
// all members together.
func (NotificationsTable) InsertBatch(ctx context.Context, q sqlutil.Querier, rows []NotificationRow) error {
	for len(rows) > 0 {
		n := min(len(rows), notifBatch)
		var b strings.Builder
		b.WriteString(`INSERT INTO userapi_notifications (localpart, room_id, event_id, thread_id, seq, ts, highlight, actions) VALUES `)
		args := make([]any, 0, n*8)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			k := len(args)
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", k+1, k+2, k+3, k+4, k+5, k+6, k+7, k+8)
			args = append(args, r.Localpart, r.RoomID, r.EventID, r.ThreadID, r.Seq, r.TS, r.Highlight, r.Actions)
		}
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert %d notifications for %s: %w", n, rows[0].EventID, err)
		}
		rows = rows[n:]
	}
	return nil
}

// Select pages through a user's notifications, newest first: ids below
// before (0: no bound), at most limit.
func (NotificationsTable) Select(ctx context.Context, q sqlutil.Querier, localpart string, before int64, limit int, onlyHighlight bool) ([]NotificationRow, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := q.QueryContext(ctx, `SELECT n.id, n.room_id, n.event_id, n.thread_id, n.seq, n.ts, n.highlight, n.read, n.actions, e.event
		FROM userapi_notifications n JOIN userapi_push_events e ON e.event_id = n.event_id
		WHERE n.localpart = $1 AND n.id < $2 AND (n.highlight OR NOT $3) ORDER BY n.id DESC LIMIT $4`,
		localpart, before, onlyHighlight, limit)
	if err != nil {
		return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
	}
	defer rows.Close()
	var out []NotificationRow
	for rows.Next() {
		r := NotificationRow{Localpart: localpart}
		if err := rows.Scan(&r.ID, &r.RoomID, &r.EventID, &r.ThreadID, &r.Seq, &r.TS, &r.Highlight, &r.Read, &r.Actions, &r.Event); err != nil {
			return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
	}
	return out, nil
}

// MarkRead marks a user's notifications in a room read up to and including
// stream sequence seq: all threads, or one thread (” = main timeline) when
// thread is not nil.
func (NotificationsTable) MarkRead(ctx context.Context, q sqlutil.Querier, localpart, roomID string, seq int64, thread *string) error {
	var err error
	if thread == nil {
		_, err = q.ExecContext(ctx, `UPDATE userapi_notifications SET read = TRUE
			WHERE localpart = $1 AND room_id = $2 AND seq <= $3 AND read = FALSE`, localpart, roomID, seq)
	} else {
		_, err = q.ExecContext(ctx, `UPDATE userapi_notifications SET read = TRUE
			WHERE localpart = $1 AND room_id = $2 AND seq <= $3 AND read = FALSE AND thread_id = $4`, localpart, roomID, seq, *thread)
	}
	if err != nil {
		return fmt.Errorf("mark notifications of %s in %s read: %w", localpart, roomID, err)
	}
	return nil
}
