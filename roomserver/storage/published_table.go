package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func publishedSchema(sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_published (
	-- A room listed in this server's public room directory.
	room_id TEXT PRIMARY KEY
)`
}

// PublishedTable is roomserver_published: the public room directory.
type PublishedTable struct{ d sqlutil.Dialect }

// Set lists or unlists a room; repeating it changes nothing.
func (t PublishedTable) Set(ctx context.Context, q sqlutil.Querier, roomID string, published bool) error {
	var err error
	if published {
		_, err = q.ExecContext(ctx, `INSERT INTO roomserver_published (room_id) VALUES ($1) ON CONFLICT (room_id) DO NOTHING`, roomID)
	} else {
		_, err = q.ExecContext(ctx, `DELETE FROM roomserver_published WHERE room_id = $1`, roomID)
	}
	if err != nil {
		return fmt.Errorf("set visibility of %s: %w", roomID, err)
	}
	return nil
}

// Has reports whether a room is listed.
func (t PublishedTable) Has(ctx context.Context, q sqlutil.Querier, roomID string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM roomserver_published WHERE room_id = $1`, roomID).Scan(&n); err != nil {
		return false, fmt.Errorf("select visibility of %s: %w", roomID, err)
	}
	return n > 0, nil
}

// All lists the published rooms, sorted by id.
func (t PublishedTable) All(ctx context.Context, q sqlutil.Querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT room_id FROM roomserver_published ORDER BY room_id`)
	if err != nil {
		return nil, fmt.Errorf("select published rooms: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan published room: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
