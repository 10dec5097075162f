package storage

import (
	"context"
	"database/sql"
	"encoding/json"
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

// Version 2 of the table (push migration 2). Every message notifies most of
// a room's members, so this is the server's busiest table per message: a
// row holds only what differs between members. The event (its id, room,
// JSON and timestamp) is userapi_push_events' row of the same seq, the room
// and the actions are small ids, and no id column is kept: (localpart, seq)
// identifies a row, since one event notifies a user once, and pages
// /notifications.
const notificationsV2Schema = `CREATE TABLE userapi_notifications_v2 (
	localpart   TEXT NOT NULL,
	-- seq is the event's roomserver output sequence (userapi_push_events.seq).
	seq         BIGINT NOT NULL,
	room_nid    BIGINT NOT NULL,
	-- thread_id is the thread root, '' for the main timeline.
	thread_id   TEXT NOT NULL,
	highlight   BOOLEAN NOT NULL,
	read        BOOLEAN NOT NULL DEFAULT FALSE,
	actions_nid BIGINT NOT NULL
)`

// notificationsFromV1 carries the version 1 rows over (their ids become
// the rooms' and actions' ids of migration 2).
const notificationsFromV1 = `INSERT INTO userapi_notifications_v2 (localpart, seq, room_nid, thread_id, highlight, read, actions_nid)
	SELECT n.localpart, n.seq, r.id, n.thread_id, n.highlight, n.read, a.id FROM userapi_notifications n
	JOIN userapi_push_rooms r ON r.room_id = n.room_id JOIN userapi_push_actions a ON a.actions = n.actions`

// notificationsUserSeqIndex is the table's only index: each one costs a
// B-tree page per notified member per message. Receipts need no index of
// their own: what they mark read and recount lies in a seq range of the
// user's rows (after the first unread of the room, NotificationCountsTable's
// first_seq, and after the receipt's event).
const notificationsUserSeqIndex = `CREATE INDEX userapi_notifications_user ON userapi_notifications (localpart, seq)`

// notificationsV3Schema (push migration 3) is version 2 keyed by
// (localpart, seq), its only lookup, instead of an index beside the rows:
// on SQLite the rows then live in the key's B-tree (WITHOUT ROWID), so a
// notified member costs one B-tree insert rather than two.
func notificationsV3Schema(d sqlutil.Dialect) string {
	return notificationsKeyedSchema(d, "userapi_notifications_v3", "localpart", "TEXT")
}

// notificationsKeyedSchema is table, a notifications table keyed by
// (user, seq) with the user in column userCol of type userType.
func notificationsKeyedSchema(d sqlutil.Dialect, table, userCol, userType string) string {
	return `CREATE TABLE ` + table + ` (
	` + userCol + ` ` + userType + ` NOT NULL,
	-- seq is the event's roomserver output sequence (userapi_push_events.seq).
	seq         BIGINT NOT NULL,
	room_nid    BIGINT NOT NULL,
	-- thread_id is the thread root, '' for the main timeline.
	thread_id   TEXT NOT NULL,
	highlight   BOOLEAN NOT NULL,
	read        BOOLEAN NOT NULL DEFAULT FALSE,
	actions_nid BIGINT NOT NULL,
	PRIMARY KEY (` + userCol + `, seq)
)` + d.WithoutRowID()
}

// notificationsFromV2 carries the version 2 rows over; one event notifies
// a user once, so no key repeats. (WHERE TRUE: SQLite would read ON as
// the start of a join constraint.)
const notificationsFromV2 = `INSERT INTO userapi_notifications_v3 (localpart, seq, room_nid, thread_id, highlight, read, actions_nid)
	SELECT localpart, seq, room_nid, thread_id, highlight, read, actions_nid FROM userapi_notifications WHERE TRUE
	ON CONFLICT (localpart, seq) DO NOTHING`

// notificationsRekey is push migration 3: on SQLite the table is copied
// into notificationsV3Schema. On PostgreSQL a table with a primary key is
// still a heap beside a B-tree, as it is with the (localpart, seq) index
// it has, so the copy would gain nothing: it is left as it is.
func notificationsRekey(ctx context.Context, tx *sql.Tx, d sqlutil.Dialect) error {
	if d.Engine == sqlutil.Postgres {
		return nil
	}
	return sqlutil.Exec(notificationsV3Schema, sqlutil.Static(notificationsFromV2),
		sqlutil.Static(`DROP TABLE userapi_notifications`),
		sqlutil.Static(`ALTER TABLE userapi_notifications_v3 RENAME TO userapi_notifications`),
	)(ctx, tx, d)
}

// notificationsV4Schema (push migration 4) is version 3 with the user's
// number (userapi_push_users) in place of the localpart, on both engines.
func notificationsV4Schema(d sqlutil.Dialect) string {
	return notificationsKeyedSchema(d, "userapi_notifications_v4", "user_nid", "BIGINT")
}

// notificationsFromV3 carries the version 3 rows over; on PostgreSQL the
// table was still version 2's, whose (localpart, seq) index is not unique,
// so a repeated key keeps its first row. WHERE TRUE as in
// notificationsFromV2.
const notificationsFromV3 = `INSERT INTO userapi_notifications_v4 (user_nid, seq, room_nid, thread_id, highlight, read, actions_nid)
	SELECT u.id, n.seq, n.room_nid, n.thread_id, n.highlight, n.read, n.actions_nid
	FROM userapi_notifications n JOIN userapi_push_users u ON u.localpart = n.localpart WHERE TRUE
	ON CONFLICT (user_nid, seq) DO NOTHING`

// notificationsByUser is push migration 4: users numbered, notifications
// keyed by (user number, seq).
var notificationsByUser = sqlutil.Exec(pushUsersSchema, sqlutil.Static(pushUsersFromV3),
	notificationsV4Schema, sqlutil.Static(notificationsFromV3),
	sqlutil.Static(`DROP TABLE userapi_notifications`),
	sqlutil.Static(`ALTER TABLE userapi_notifications_v4 RENAME TO userapi_notifications`),
)

// NotificationRow is a notification as /notifications lists it.
type NotificationRow struct {
	// ID is the event's stream sequence: the position for paging.
	ID        int64
	RoomID    string
	ThreadID  string
	TS        int64 // the event's origin_server_ts
	Highlight bool
	Read      bool
	Actions   string
	Event     string // the stored event
}

// NewNotification is one notified user of an event, for Insert.
type NewNotification struct {
	Localpart  string
	UserNID    int64 // PushTables.Users number of Localpart
	Highlight  bool
	ActionsNID int64 // PushTables.Actions number of the actions
}

// EventNotifications are the notifications of one event: its stream
// sequence, room and thread (empty for the main timeline).
type EventNotifications struct {
	Seq     int64
	RoomNID int64
	Thread  string
	Rows    []NewNotification
}

// NotificationsTable is userapi_notifications.
type NotificationsTable struct{ d sqlutil.Dialect }

// notifChunk is the most rows of one INSERT on SQLite: its driver looks up
// every bound parameter by a linear scan, so a statement of n parameters
// costs O(n²) to bind (6,000 parameters took 40% of the server's CPU).
const notifChunk = 16

// Insert stores the notifications of several events: a batch of the push
// consumer costs one round trip on PostgreSQL instead of one per event.
func (t NotificationsTable) Insert(ctx context.Context, q sqlutil.Querier, evs []EventNotifications) error {
	c, err := notifColumns(evs)
	if err != nil {
		return err
	}
	if len(c.seqs) == 0 {
		return nil
	}
	if t.d.Engine == sqlutil.Postgres {
		// One statement, whatever the number of rows.
		if _, err := q.ExecContext(ctx, notifsInsertUnnest(1), c.seqs, c.rooms, c.threads, c.users, c.highlights, c.actions); err != nil {
			return fmt.Errorf("insert %d notifications: %w", len(c.seqs), err)
		}
		return nil
	}
	args := make([]any, 0, 6*notifChunk)
	for i := 0; i < len(c.seqs); i += notifChunk {
		n := min(notifChunk, len(c.seqs)-i)
		var b strings.Builder
		b.WriteString(`INSERT INTO userapi_notifications (seq, room_nid, thread_id, user_nid, highlight, actions_nid) VALUES `)
		sqlutil.AppendRows(&b, "(?, ?, ?, ?, ?, ?)", n, 1)
		args = args[:0]
		for j := i; j < i+n; j++ {
			args = append(args, c.seqs[j], c.rooms[j], c.threads[j], c.users[j], c.highlights[j], c.actions[j])
		}
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert %d notifications: %w", n, err)
		}
	}
	return nil
}

// notifsInsertUnnest (PostgreSQL) inserts notifColumns' six arrays,
// parameters $first.. $first+5.
func notifsInsertUnnest(first int) string {
	return `INSERT INTO userapi_notifications (seq, room_nid, thread_id, user_nid, highlight, actions_nid)
	SELECT * FROM unnest(` + fmt.Sprintf("$%d::bigint[], $%d::bigint[], $%d::text[], $%d::bigint[], $%d::boolean[], $%d::bigint[]",
		first, first+1, first+2, first+3, first+4, first+5) + `)`
}

// notifCols are the notifications of evs as columns, one entry a row.
type notifCols struct {
	seqs, rooms, users, actions []int64
	threads                     []string
	highlights                  []bool
}

func notifColumns(evs []EventNotifications) (notifCols, error) {
	var c notifCols
	for _, e := range evs {
		for _, r := range e.Rows {
			if r.UserNID == 0 {
				return notifCols{}, fmt.Errorf("notification of %s at %d has no user number", r.Localpart, e.Seq)
			}
			c.seqs, c.rooms, c.threads = append(c.seqs, e.Seq), append(c.rooms, e.RoomNID), append(c.threads, e.Thread)
			c.users, c.highlights, c.actions = append(c.users, r.UserNID), append(c.highlights, r.Highlight), append(c.actions, r.ActionsNID)
		}
	}
	return c, nil
}

// Select pages through a user's notifications, newest first: sequences
// below before (0: no bound), at most limit.
func (NotificationsTable) Select(ctx context.Context, q sqlutil.Querier, localpart string, before int64, limit int, onlyHighlight bool) ([]NotificationRow, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := q.QueryContext(ctx, `SELECT n.seq, e.room_id, n.thread_id, n.highlight, n.read, a.actions, e.event
		FROM userapi_notifications n JOIN userapi_push_events e ON e.seq = n.seq
		JOIN userapi_push_actions a ON a.id = n.actions_nid
		WHERE n.user_nid = `+pushUserNID(1)+` AND n.seq < $2 AND (n.highlight OR NOT $3) ORDER BY n.seq DESC LIMIT $4`,
		localpart, before, onlyHighlight, limit)
	if err != nil {
		return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
	}
	defer rows.Close()
	var out []NotificationRow
	for rows.Next() {
		var r NotificationRow
		if err := rows.Scan(&r.ID, &r.RoomID, &r.ThreadID, &r.Highlight, &r.Read, &r.Actions, &r.Event); err != nil {
			return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
		}
		var ts struct {
			TS int64 `json:"origin_server_ts"`
		}
		_ = json.Unmarshal([]byte(r.Event), &ts) // a stored event always decodes; 0 if not
		r.TS = ts.TS
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select notifications of %s: %w", localpart, err)
	}
	return out, nil
}

// MarkRead marks a user's notifications in a room read up to and including
// stream sequence seq: all threads, or one thread (empty for the main timeline) when
// thread is not nil. Only the user's rows from the first unread one of the
// room (or thread) on are scanned.
func (NotificationsTable) MarkRead(ctx context.Context, q sqlutil.Querier, localpart, roomID string, seq int64, thread *string) error {
	var err error
	if thread == nil {
		_, err = q.ExecContext(ctx, `UPDATE userapi_notifications SET read = TRUE
			WHERE user_nid = `+pushUserNID(1)+` AND seq <= $3 AND seq >= (SELECT MIN(first_seq) FROM userapi_notification_counts
				WHERE room_id = $2 AND localpart = $1)
			AND room_nid = (SELECT id FROM userapi_push_rooms WHERE room_id = $2) AND read = FALSE`, localpart, roomID, seq)
	} else {
		_, err = q.ExecContext(ctx, `UPDATE userapi_notifications SET read = TRUE
			WHERE user_nid = `+pushUserNID(1)+` AND seq <= $3 AND seq >= (SELECT MIN(first_seq) FROM userapi_notification_counts
				WHERE room_id = $2 AND localpart = $1 AND thread_id = $4)
			AND room_nid = (SELECT id FROM userapi_push_rooms WHERE room_id = $2) AND read = FALSE AND thread_id = $4`,
			localpart, roomID, seq, *thread)
	}
	if err != nil {
		return fmt.Errorf("mark notifications of %s in %s read: %w", localpart, roomID, err)
	}
	return nil
}
