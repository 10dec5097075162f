package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

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

// UserCounts are one user's counts in a room, for UpsertMany.
type UserCounts struct {
	UserID string
	Counts []byte
}

// upsertBatch bounds the rows of one statement: SQLite's driver binds
// parameters by a linear scan of their names, so a statement of n of them
// costs O(n²). (PostgreSQL takes StoreCounts' one array statement.)
const upsertBatch = 64

// UpsertMany stores the counts of many users in a room at one position, in
// one statement per upsertBatch users: the notification stream's counter
// row stays locked until the transaction ends, so one round trip per user
// (an event notifies every member) serialised the whole stream. A user
// listed twice keeps the last counts, as with one Upsert after the other.
func (t NotificationCountsTable) UpsertMany(ctx context.Context, q sqlutil.Querier, roomID string, users []UserCounts, pos streams.Position) error {
	rows := lastOfEach(users)
	for len(rows) > 0 {
		n := min(len(rows), upsertBatch)
		var b strings.Builder
		b.WriteString(`INSERT INTO syncapi_notification_counts (user_id, room_id, counts, position) VALUES `)
		sqlutil.AppendRows(&b, "(?, $1, ?, $2)", n, 3)
		args := []any{roomID, pos}
		for _, u := range rows[:n] {
			args = append(args, u.UserID, string(u.Counts))
		}
		b.WriteString(` ON CONFLICT (user_id, room_id) DO UPDATE SET counts = excluded.counts, position = excluded.position`)
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("upsert notification counts of %d users in room %s: %w", n, roomID, err)
		}
		rows = rows[n:]
	}
	return nil
}

// RoomCounts are the counts of users in one room, for UpsertAll.
type RoomCounts struct {
	RoomID string
	Users  []UserCounts
}

// UpsertAll is UpsertMany for each of rooms, in order (a room listed twice
// ends with its last counts of each user). On PostgreSQL StoreCounts
// writes them all with one statement.
func (t NotificationCountsTable) UpsertAll(ctx context.Context, q sqlutil.Querier, rooms []RoomCounts, pos streams.Position) error {
	for _, r := range rooms {
		if err := t.UpsertMany(ctx, q, r.RoomID, r.Users, pos); err != nil {
			return err
		}
	}
	return nil
}

// countsArrays flattens rooms into parallel arrays for unnest, one entry
// per (user, room): the last counts of each, as UpsertAll documents.
func countsArrays(rooms []RoomCounts) (users, roomIDs, counts []string) {
	var order []string
	byRoom := map[string][]UserCounts{}
	for _, r := range rooms {
		if _, ok := byRoom[r.RoomID]; !ok {
			order = append(order, r.RoomID)
		}
		byRoom[r.RoomID] = append(byRoom[r.RoomID], r.Users...)
	}
	for _, room := range order {
		for _, u := range lastOfEach(byRoom[room]) {
			users, roomIDs, counts = append(users, u.UserID), append(roomIDs, room), append(counts, string(u.Counts))
		}
	}
	return users, roomIDs, counts
}

// StoreCounts stores rooms' counts (as UpsertAll) at the next notification
// position and returns it. On PostgreSQL it is one autocommitted statement,
// one round trip where the transaction of Next and UpsertAll takes four; the
// counts take their position from the counter's upsert, so its row lock is
// held before any counts are written and until the statement commits, as
// Next's is until the transaction commits.
func (s *Storage) StoreCounts(ctx context.Context, rooms []RoomCounts) (streams.Position, error) {
	var pos streams.Position
	if s.DB.Dialect.Engine != sqlutil.Postgres {
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			if pos, err = s.Positions.Next(ctx, tx, streams.Notification); err != nil {
				return err
			}
			return s.Counts.UpsertAll(ctx, tx, rooms, pos)
		})
		return pos, err
	}
	users, roomIDs, counts := countsArrays(rooms)
	err := s.DB.QueryRowContext(ctx, `WITH p AS (`+positionsNext("1")+`), c AS (
		INSERT INTO syncapi_notification_counts (user_id, room_id, counts, position)
		SELECT v.u, v.r, v.c, p.position FROM p, unnest($2::text[], $3::text[], $4::text[]) AS v(u, r, c)
		ON CONFLICT (user_id, room_id) DO UPDATE SET counts = excluded.counts, position = excluded.position
	)
	SELECT position FROM p`,
		streams.Notification.String(), users, roomIDs, counts).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("store notification counts of %d users in %d rooms: %w", len(users), len(rooms), err)
	}
	return pos, nil
}

// lastOfEach keeps each user's last entry: a statement may not update one
// row twice (PostgreSQL refuses).
func lastOfEach(users []UserCounts) []UserCounts {
	last := make(map[string]int, len(users))
	for i, u := range users {
		last[u.UserID] = i
	}
	rows := make([]UserCounts, 0, len(last))
	for i, u := range users {
		if last[u.UserID] == i {
			rows = append(rows, u)
		}
	}
	return rows
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
