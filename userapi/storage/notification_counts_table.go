package storage

import (
	"context"
	"database/sql"
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

// notificationCountsV2Schema (push migration 2) is the table again with
// first_seq, at most the stream sequence of the first unread notification
// counted by the row (rows carried over start at 0), so that a receipt
// scans the user's notifications from there on only. Each message updates
// a row per notified member; on SQLite the rows live in the key's B-tree
// (WITHOUT ROWID), which halves the pages every update touches.
func notificationCountsV2Schema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_notification_counts_v2 (
	room_id            TEXT NOT NULL,
	localpart          TEXT NOT NULL,
	thread_id          TEXT NOT NULL,
	notification_count BIGINT NOT NULL,
	highlight_count    BIGINT NOT NULL,
	first_seq          BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (room_id, localpart, thread_id)
)` + d.WithoutRowID()
}

const notificationCountsFromV1 = `INSERT INTO userapi_notification_counts_v2
	(room_id, localpart, thread_id, notification_count, highlight_count, first_seq)
	SELECT room_id, localpart, thread_id, notification_count, highlight_count, 0 FROM userapi_notification_counts`

// notificationCountsThreadsIndex (push migration 2) finds a room's thread
// rows, usually none, without reading its main timeline rows.
const notificationCountsThreadsIndex = `CREATE INDEX userapi_notification_counts_threads
	ON userapi_notification_counts (room_id, localpart) WHERE thread_id <> ''`

// CountRow is a row of userapi_notification_counts.
type CountRow struct {
	Localpart    string
	ThreadID     string
	Notification int64
	Highlight    int64
}

// NotificationCountsTable is userapi_notification_counts.
type NotificationCountsTable struct{ d sqlutil.Dialect }

// CountDelta is what a batch of events adds to one user's count row.
type CountDelta struct {
	Localpart    string
	Notification int64
	Highlight    int64
}

// countsBatch bounds the rows of one statement of Add (SQLite's path: its
// driver binds parameters by a linear scan of their names, so a statement
// of n of them costs O(n²)).
const countsBatch = 64

// Add adds deltas to the users' rows of a thread (empty for the main
// timeline) in a room, in statements of many rows; firstSeq is the stream
// sequence of the earliest event counted, the first_seq of a new row.
func (NotificationCountsTable) Add(ctx context.Context, q sqlutil.Querier, roomID string, firstSeq int64, thread string, deltas []CountDelta) error {
	for len(deltas) > 0 {
		n := min(len(deltas), countsBatch)
		var b strings.Builder
		b.Grow(400 + n*24)
		b.WriteString(`INSERT INTO userapi_notification_counts (room_id, first_seq, thread_id, localpart, notification_count, highlight_count) VALUES `)
		// Few parameters a row: the driver's cost of binding grows with
		// the square of their number.
		sqlutil.AppendRows(&b, "($1, $2, $3, ?, ?, ?)", n, 4)
		args := make([]any, 3, 3+3*n)
		args[0], args[1], args[2] = roomID, firstSeq, thread
		for _, d := range deltas[:n] {
			args = append(args, d.Localpart, d.Notification, d.Highlight)
		}
		b.WriteString(countsAddConflict)
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("add %d notification counts in %s: %w", n, roomID, err)
		}
		deltas = deltas[n:]
	}
	return nil
}

// CountGroup is what a batch adds to the rows of one thread of a room
// (Add's arguments).
type CountGroup struct {
	RoomID, Thread string
	FirstSeq       int64
	Deltas         []CountDelta
}

// AddGroups is Add for each of groups: on PostgreSQL one statement for
// them all, which adds up what groups list twice for one row (PostgreSQL
// refuses a statement that updates a row twice).
func (t NotificationCountsTable) AddGroups(ctx context.Context, q sqlutil.Querier, groups []CountGroup) error {
	if t.d.Engine != sqlutil.Postgres {
		for _, g := range groups {
			if err := t.Add(ctx, q, g.RoomID, g.FirstSeq, g.Thread, g.Deltas); err != nil {
				return err
			}
		}
		return nil
	}
	c := countColumns(groups)
	if len(c.rooms) == 0 {
		return nil
	}
	if _, err := q.ExecContext(ctx, countsAddUnnest(1),
		c.rooms, c.firsts, c.threads, c.locals, c.notes, c.highs); err != nil {
		return fmt.Errorf("add %d notification counts in %d threads: %w", len(c.rooms), len(groups), err)
	}
	return nil
}

// countCols are the rows AddGroups writes on PostgreSQL, as columns.
type countCols struct {
	rooms, threads, locals []string
	firsts, notes, highs   []int64
}

// countColumns adds up what groups list twice for one row.
func countColumns(groups []CountGroup) countCols {
	var c countCols
	row := map[[3]string]int{} // (room, thread, localpart) → index
	for _, g := range groups {
		for _, d := range g.Deltas {
			k := [3]string{g.RoomID, g.Thread, d.Localpart}
			if i, ok := row[k]; ok {
				c.notes[i] += d.Notification
				c.highs[i] += d.Highlight
				c.firsts[i] = min(c.firsts[i], g.FirstSeq)
				continue
			}
			row[k] = len(c.rooms)
			c.rooms, c.threads, c.firsts = append(c.rooms, g.RoomID), append(c.threads, g.Thread), append(c.firsts, g.FirstSeq)
			c.locals, c.notes, c.highs = append(c.locals, d.Localpart), append(c.notes, d.Notification), append(c.highs, d.Highlight)
		}
	}
	return c
}

// SelectRooms returns the count rows of the listed users in each of the
// rooms (want: room → localparts), one statement for all of them: it reads
// every listed user's rows in every listed room and keeps the pairs asked
// for (a push batch's rooms mostly share their members).
func (t NotificationCountsTable) SelectRooms(ctx context.Context, q sqlutil.Querier, want map[string][]string) (map[string][]CountRow, error) {
	w := wantedCounts(want)
	if len(w.listed) == 0 {
		return map[string][]CountRow{}, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT room_id, localpart, thread_id, notification_count, highlight_count
		FROM userapi_notification_counts WHERE `+t.d.In("room_id", 1)+` AND `+t.d.In("localpart", 2), t.d.List(w.rooms), t.d.List(w.locals))
	if err != nil {
		return nil, fmt.Errorf("select notification counts in %d rooms: %w", len(w.rooms), err)
	}
	return w.scan(rows, len(want))
}

// wanted is SelectRooms' want as the statement asks for it: every listed
// user in every listed room, the pairs asked for kept by scan.
type wanted struct {
	rooms, locals []string
	listed        map[[2]string]bool
}

func wantedCounts(want map[string][]string) wanted {
	w := wanted{listed: map[[2]string]bool{}}
	seen := map[string]bool{}
	for room, ls := range want {
		w.rooms = append(w.rooms, room)
		for _, l := range ls {
			w.listed[[2]string{room, l}] = true
			if !seen[l] {
				seen[l] = true
				w.locals = append(w.locals, l)
			}
		}
	}
	return w
}

// scan reads rows of (room_id, localpart, thread_id, notification_count,
// highlight_count) by room, those of the pairs listed, and closes rows.
func (w wanted) scan(rows *sql.Rows, nRooms int) (map[string][]CountRow, error) {
	defer rows.Close()
	out := make(map[string][]CountRow, nRooms)
	for rows.Next() {
		var room string
		var r CountRow
		if err := rows.Scan(&room, &r.Localpart, &r.ThreadID, &r.Notification, &r.Highlight); err != nil {
			return nil, fmt.Errorf("select notification counts: %w", err)
		}
		if w.listed[[2]string{room, r.Localpart}] {
			out[room] = append(out[room], r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select notification counts: %w", err)
	}
	return out, nil
}

// Select returns the count rows of the listed users in a room.
func (t NotificationCountsTable) Select(ctx context.Context, q sqlutil.Querier, roomID string, localparts []string) ([]CountRow, error) {
	got, err := t.SelectRooms(ctx, q, map[string][]string{roomID: localparts})
	return got[roomID], err
}

// Recount sets a user's counts in a room from the unread notifications,
// after NotificationsTable.MarkRead with the same seq and thread marked
// some read: those of all threads, or of one thread (empty for the main timeline).
// What it marked read is at or below seq, so only the user's rows after
// seq are counted.
func (NotificationCountsTable) Recount(ctx context.Context, q sqlutil.Querier, localpart, roomID string, seq int64, thread *string) error {
	var err error
	if thread == nil {
		_, err = q.ExecContext(ctx, `DELETE FROM userapi_notification_counts WHERE room_id = $1 AND localpart = $2`, roomID, localpart)
	} else {
		_, err = q.ExecContext(ctx, `DELETE FROM userapi_notification_counts WHERE room_id = $1 AND localpart = $2 AND thread_id = $3`,
			roomID, localpart, *thread)
	}
	if err != nil {
		return fmt.Errorf("recount notifications of %s in %s: %w", localpart, roomID, err)
	}
	// thread_id = $4 OR $4 IS NULL would keep one text, but then the
	// parameter's type cannot be inferred on PostgreSQL.
	recount := `INSERT INTO userapi_notification_counts (room_id, localpart, thread_id, notification_count, highlight_count, first_seq)
		SELECT $1, $2, thread_id, COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END), MIN(seq)
		FROM userapi_notifications WHERE user_nid = ` + pushUserNID(2) + ` AND seq > $3
		AND room_nid = (SELECT id FROM userapi_push_rooms WHERE room_id = $1) AND read = FALSE`
	if thread == nil {
		_, err = q.ExecContext(ctx, recount+` GROUP BY thread_id`, roomID, localpart, seq)
	} else {
		_, err = q.ExecContext(ctx, recount+` AND thread_id = $4 GROUP BY thread_id`, roomID, localpart, seq, *thread)
	}
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

// countsAddConflict adds a row's counts to those stored (first_seq stays:
// the row's first unread notification is older).
const countsAddConflict = ` ON CONFLICT (room_id, localpart, thread_id) DO UPDATE SET
	notification_count = userapi_notification_counts.notification_count + excluded.notification_count,
	highlight_count = userapi_notification_counts.highlight_count + excluded.highlight_count`

// countsAddUnnest (PostgreSQL) adds countColumns' six arrays, parameters
// $first.. $first+5, to the counts.
func countsAddUnnest(first int) string {
	return `INSERT INTO userapi_notification_counts (room_id, first_seq, thread_id, localpart, notification_count, highlight_count)
	SELECT * FROM unnest(` + fmt.Sprintf("$%d::text[], $%d::bigint[], $%d::text[], $%d::text[], $%d::bigint[], $%d::bigint[]",
		first, first+1, first+2, first+3, first+4, first+5) + `)` + countsAddConflict
}
