package storage

// Reads of syncapi_output_room_events for the endpoints beyond /sync
// (/messages, /context, /event, timestamp_to_event) and the redaction
// update, kept apart from the /sync reads in output_room_events_table.go.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// addOriginServerTS is migration 3: every event's origin_server_ts as a
// column, indexed per room, so timestamp_to_event is an index range read.
// Events stored before it get theirs from their JSON.
func addOriginServerTS(ctx context.Context, tx *sql.Tx, _ sqlutil.Dialect) error {
	for _, stmt := range []string{
		`ALTER TABLE syncapi_output_room_events ADD COLUMN origin_server_ts BIGINT NOT NULL DEFAULT 0`,
		`CREATE INDEX syncapi_output_room_events_ts ON syncapi_output_room_events (room_id, origin_server_ts, position)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("add origin_server_ts: %w", err)
		}
	}
	type row struct {
		pos streams.Position
		ts  int64
	}
	var rows []row
	rs, err := tx.QueryContext(ctx, `SELECT position, event_json FROM syncapi_output_room_events`)
	if err != nil {
		return fmt.Errorf("read events for origin_server_ts: %w", err)
	}
	for rs.Next() {
		var r row
		var js string
		if err := rs.Scan(&r.pos, &js); err != nil {
			rs.Close()
			return fmt.Errorf("scan event for origin_server_ts: %w", err)
		}
		if r.ts = originServerTS([]byte(js)); r.ts != 0 {
			rows = append(rows, r)
		}
	}
	err = rs.Err()
	rs.Close()
	if err != nil {
		return fmt.Errorf("read events for origin_server_ts: %w", err)
	}
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `UPDATE syncapi_output_room_events SET origin_server_ts = $1 WHERE position = $2`,
			r.ts, r.pos); err != nil {
			return fmt.Errorf("set origin_server_ts at %d: %w", r.pos, err)
		}
	}
	return nil
}

// originServerTS reads a PDU's origin_server_ts, 0 when absent or not an
// integer (the roomserver would not have accepted such an event).
func originServerTS(pdu []byte) int64 {
	var e struct {
		TS json.Number `json:"origin_server_ts"`
	}
	if json.Unmarshal(pdu, &e) != nil {
		return 0
	}
	ts, err := e.TS.Int64()
	if err != nil {
		return 0
	}
	return ts
}

// Range returns up to limit events of a room with after < position <=
// upTo: the oldest first when forward, the newest first when not. Stream
// positions order a room's events totally, so paging by position never
// repeats or skips an event.
func (t OutputRoomEventsTable) Range(ctx context.Context, q sqlutil.Querier, roomID string, after, upTo streams.Position, forward bool, limit int) ([]Event, error) {
	if limit <= 0 || upTo <= after {
		return nil, nil
	}
	order := "DESC"
	if forward {
		order = "ASC"
	}
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events
		WHERE room_id = $1 AND position > $2 AND position <= $3 ORDER BY position `+order+` LIMIT $4`,
		roomID, after, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("select events of room %s in (%d, %d]: %w", roomID, after, upTo, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events of room %s: %w", roomID, err)
	}
	return evs, nil
}

// ErrNoEvent is returned by SelectByID for an event that is not stored.
var ErrNoEvent = errors.New("event not stored")

// SelectByID loads one stored event; ErrNoEvent when there is none.
func (t OutputRoomEventsTable) SelectByID(ctx context.Context, q sqlutil.Querier, eventID string) (Event, error) {
	evs, err := t.SelectByIDs(ctx, q, []string{eventID})
	if err != nil {
		return Event{}, err
	}
	if len(evs) == 0 {
		return Event{}, fmt.Errorf("event %s: %w", eventID, ErrNoEvent)
	}
	return evs[0], nil
}

// UpdateJSON replaces the stored JSON of an event of a room (a redaction
// applied to it). It reports false when no such event is stored. Writing
// the same JSON again changes nothing, so a repeated message is harmless.
func (t OutputRoomEventsTable) UpdateJSON(ctx context.Context, q sqlutil.Querier, roomID, eventID string, js []byte) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE syncapi_output_room_events SET event_json = $1 WHERE event_id = $2 AND room_id = $3`,
		string(js), eventID, roomID)
	if err != nil {
		return false, fmt.Errorf("update event %s: %w", eventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update event %s: %w", eventID, err)
	}
	return n > 0, nil
}

// TSCursor is a place in a room's events ordered by (origin_server_ts,
// position).
type TSCursor struct {
	TS       int64
	Position streams.Position
}

// ByTimestamp returns up to limit events of a room with position <= upTo,
// ordered by (origin_server_ts, position): forward, those at or after ts
// (the first call) or strictly after cursor (later calls), ascending;
// backward, those at or before, descending. Pass the last event's
// TSCursor to read the next batch.
func (t OutputRoomEventsTable) ByTimestamp(ctx context.Context, q sqlutil.Querier, roomID string, ts int64, cursor *TSCursor, forward bool, upTo streams.Position, limit int) ([]Event, []TSCursor, error) {
	cmp, order, strict := ">=", "ASC", ">"
	if !forward {
		cmp, order, strict = "<=", "DESC", "<"
	}
	query := `SELECT ` + eventColumns + `, origin_server_ts FROM syncapi_output_room_events
		WHERE room_id = $1 AND position <= $2 AND origin_server_ts ` + cmp + ` $3`
	args := []any{roomID, upTo, ts}
	if cursor != nil {
		query += ` AND (origin_server_ts ` + strict + ` $4 OR (origin_server_ts = $4 AND position ` + strict + ` $5))`
		args = append(args, cursor.TS, cursor.Position)
	}
	query += fmt.Sprintf(` ORDER BY origin_server_ts %s, position %s LIMIT %d`, order, order, max(limit, 1))
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("select events of room %s by timestamp %d: %w", roomID, ts, err)
	}
	defer rows.Close()
	var evs []Event
	var cursors []TSCursor
	for rows.Next() {
		var e Event
		var stateKey sql.NullString
		var js string
		var c TSCursor
		if err := rows.Scan(&e.Position, &e.EventID, &e.RoomID, &e.RoomVersion, &e.Type, &e.Sender, &stateKey, &js,
			&e.ReplacesEventID, &e.Txn.UserID, &e.Txn.DeviceID, &e.Txn.TxnID, &c.TS); err != nil {
			return nil, nil, fmt.Errorf("scan event: %w", err)
		}
		if stateKey.Valid {
			e.StateKey = &stateKey.String
		}
		e.JSON = []byte(js)
		c.Position = e.Position
		evs = append(evs, e)
		cursors = append(cursors, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read events of room %s by timestamp: %w", roomID, err)
	}
	return evs, cursors, nil
}
