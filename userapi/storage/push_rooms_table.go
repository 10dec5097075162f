package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// userapi_push_rooms numbers the rooms with notifications, so that a
// notification row carries a small integer rather than the room id.
func pushRoomsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_push_rooms (
	id      ` + d.ID() + `,
	room_id TEXT NOT NULL UNIQUE
)`
}

const pushRoomsFromV1 = `INSERT INTO userapi_push_rooms (room_id) SELECT DISTINCT room_id FROM userapi_notifications`

// PushRoomsTable is userapi_push_rooms.
type PushRoomsTable struct{}

// NID returns the room's number, assigning one the first time. It is
// meant for a cache: the number of a room never changes.
func (PushRoomsTable) NID(ctx context.Context, q sqlutil.Querier, roomID string) (int64, error) {
	nid, err := assignNID(ctx, q, "userapi_push_rooms", "room_id", roomID)
	if err != nil {
		return 0, fmt.Errorf("number push room %s: %w", roomID, err)
	}
	return nid, nil
}

// assignNID returns the id of the row of table whose unique column col is
// val, inserting the row the first time. It reads first and inserts only a
// value never seen: an upsert would lock and rewrite an existing row every
// time (see the roomserver's StateKeysTable.Assign); a concurrent insert of
// the same value makes the insert return nothing, and the read is repeated.
// table and col are constants of this package.
func assignNID(ctx context.Context, q sqlutil.Querier, table, col, val string) (int64, error) {
	sel := `SELECT id FROM ` + table + ` WHERE ` + col + ` = $1`
	var nid int64
	err := q.QueryRowContext(ctx, sel, val).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		err = q.QueryRowContext(ctx, `INSERT INTO `+table+` (`+col+`) VALUES ($1) ON CONFLICT (`+col+`) DO NOTHING RETURNING id`, val).Scan(&nid)
		if errors.Is(err, sql.ErrNoRows) {
			err = q.QueryRowContext(ctx, sel, val).Scan(&nid)
		}
	}
	return nid, err
}
