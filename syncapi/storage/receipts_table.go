package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func receiptsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_receipts (
	room_id      TEXT NOT NULL,
	-- m.read or m.read.private.
	receipt_type TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	-- '' for an unthreaded receipt, "main" or a thread root id for a threaded one.
	thread_id    TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	ts           BIGINT NOT NULL,
	position     BIGINT NOT NULL,
	PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
)`
}

func receiptsIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_receipts_position ON syncapi_receipts (room_id, position)`
}

// Receipt is a user's latest receipt of one type (and thread) in a room.
type Receipt struct {
	RoomID   string
	Type     string
	UserID   string
	ThreadID string
	EventID  string
	TS       int64
	Position streams.Position
}

// ReceiptsTable is syncapi_receipts: the latest receipt per (room, type,
// user, thread), at the position of its last change.
type ReceiptsTable struct{ d sqlutil.Dialect }

// Upsert stores a receipt, replacing the previous one of its key.
func (t ReceiptsTable) Upsert(ctx context.Context, q sqlutil.Querier, r Receipt) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, position)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, receipt_type, user_id, thread_id)
		DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, position = excluded.position`,
		r.RoomID, r.Type, r.UserID, r.ThreadID, r.EventID, r.TS, r.Position)
	if err != nil {
		return fmt.Errorf("upsert %s receipt of %s in room %s: %w", r.Type, r.UserID, r.RoomID, err)
	}
	return nil
}

// Changed returns the receipts of the given rooms changed with after <
// position <= upTo, in position order.
func (t ReceiptsTable) Changed(ctx context.Context, q sqlutil.Querier, roomIDs []string, after, upTo streams.Position) ([]Receipt, error) {
	if len(roomIDs) == 0 || upTo <= after {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, position FROM syncapi_receipts
		WHERE `+t.d.In("room_id", 1)+` AND position > $2 AND position <= $3 ORDER BY position`, t.d.List(roomIDs), after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select receipts in (%d, %d]: %w", after, upTo, err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		var r Receipt
		if err := rows.Scan(&r.RoomID, &r.Type, &r.UserID, &r.ThreadID, &r.EventID, &r.TS, &r.Position); err != nil {
			return nil, fmt.Errorf("scan receipt: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read receipts: %w", err)
	}
	return out, nil
}
