package storage

import (
	"context"
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
	var nid int64
	// The no-op update makes RETURNING answer for an existing row too.
	err := q.QueryRowContext(ctx, `INSERT INTO userapi_push_rooms (room_id) VALUES ($1)
		ON CONFLICT (room_id) DO UPDATE SET room_id = excluded.room_id RETURNING id`, roomID).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("number push room %s: %w", roomID, err)
	}
	return nid, nil
}
