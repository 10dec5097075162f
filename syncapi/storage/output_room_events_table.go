package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func outputRoomEventsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_output_room_events (
	-- The PDU stream position, from syncapi_stream_positions.
	position          BIGINT PRIMARY KEY,
	event_id          TEXT NOT NULL UNIQUE,
	room_id           TEXT NOT NULL,
	room_version      TEXT NOT NULL,
	type              TEXT NOT NULL,
	sender            TEXT NOT NULL,
	-- NULL for message events: the empty string is a valid state key.
	state_key         TEXT,
	-- The full PDU as the roomserver published it; the client format is derived when serving.
	event_json        TEXT NOT NULL,
	-- The state event this one replaced in the current state ('' if none), for unsigned.replaces_state.
	replaces_event_id TEXT NOT NULL DEFAULT '',
	-- The sending device's transaction, shown to that device only ('' when none).
	txn_user_id       TEXT NOT NULL DEFAULT '',
	txn_device_id     TEXT NOT NULL DEFAULT '',
	txn_id            TEXT NOT NULL DEFAULT ''
)`
}

func outputRoomEventsIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_output_room_events_room ON syncapi_output_room_events (room_id, position)`
}

// TxnID is the client transaction that made an event.
type TxnID struct {
	UserID   string
	DeviceID string
	TxnID    string
}

// Event is a stored room event.
type Event struct {
	Position        streams.Position
	EventID         string
	RoomID          string
	RoomVersion     string
	Type            string
	Sender          string
	StateKey        *string
	JSON            []byte
	ReplacesEventID string
	Txn             TxnID
}

// OutputRoomEventsTable is syncapi_output_room_events.
type OutputRoomEventsTable struct{ d sqlutil.Dialect }

// Insert stores an event at e.Position. It reports false, and changes
// nothing, when the event id is already stored.
func (t OutputRoomEventsTable) Insert(ctx context.Context, q sqlutil.Querier, e Event) (bool, error) {
	return t.InsertMany(ctx, q, []Event{e})
}

// insertManyRows bounds the rows of one multi-row INSERT: the SQLite
// driver's cost of binding grows with the square of the parameters.
const insertManyRows = 32

// InsertMany stores events at their positions, a statement per
// insertManyRows of them. It reports false when any was stored already
// (nothing is skipped silently: the caller's transaction must not commit).
func (t OutputRoomEventsTable) InsertMany(ctx context.Context, q sqlutil.Querier, evs []Event) (bool, error) {
	for len(evs) > 0 {
		n := min(len(evs), insertManyRows)
		var b strings.Builder
		b.WriteString(`INSERT INTO syncapi_output_room_events
		(position, event_id, room_id, room_version, type, sender, state_key, event_json, replaces_event_id,
		 txn_user_id, txn_device_id, txn_id, origin_server_ts) VALUES `)
		sqlutil.AppendRows(&b, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", n, 1)
		args := make([]any, 0, n*13)
		for _, e := range evs[:n] {
			var stateKey sql.NullString
			if e.StateKey != nil {
				stateKey = sql.NullString{String: *e.StateKey, Valid: true}
			}
			args = append(args, e.Position, e.EventID, e.RoomID, e.RoomVersion, e.Type, e.Sender, stateKey, string(e.JSON),
				e.ReplacesEventID, e.Txn.UserID, e.Txn.DeviceID, e.Txn.TxnID, originServerTS(e.JSON))
		}
		b.WriteString(` ON CONFLICT (event_id) DO NOTHING`)
		res, err := q.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return false, fmt.Errorf("insert %d events: %w", n, err)
		}
		if got, err := res.RowsAffected(); err != nil {
			return false, fmt.Errorf("insert %d events: %w", n, err)
		} else if got != int64(n) {
			return false, nil
		}
		evs = evs[n:]
	}
	return true, nil
}

// StoredIDs returns which of ids are stored: one round trip for a batch.
func (t OutputRoomEventsTable) StoredIDs(ctx context.Context, q sqlutil.Querier, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT event_id FROM syncapi_output_room_events WHERE `+t.d.In("event_id", 1), t.d.PlanEach(t.d.List(ids))...)
	if err != nil {
		return nil, fmt.Errorf("look up %d event ids: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan event id: %w", err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read event ids: %w", err)
	}
	return out, nil
}

const eventColumns = `position, event_id, room_id, room_version, type, sender, state_key, event_json, replaces_event_id,
	txn_user_id, txn_device_id, txn_id`

// eventColumnsOf is eventColumns qualified by a table alias, for joins.
func eventColumnsOf(alias string) string {
	return alias + `.position, ` + alias + `.event_id, ` + alias + `.room_id, ` + alias + `.room_version, ` +
		alias + `.type, ` + alias + `.sender, ` + alias + `.state_key, ` + alias + `.event_json, ` +
		alias + `.replaces_event_id, ` + alias + `.txn_user_id, ` + alias + `.txn_device_id, ` + alias + `.txn_id`
}

func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var stateKey sql.NullString
		var js string
		if err := rows.Scan(&e.Position, &e.EventID, &e.RoomID, &e.RoomVersion, &e.Type, &e.Sender, &stateKey, &js,
			&e.ReplacesEventID, &e.Txn.UserID, &e.Txn.DeviceID, &e.Txn.TxnID); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if stateKey.Valid {
			e.StateKey = &stateKey.String
		}
		e.JSON = []byte(js)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// SelectByIDs loads the stored events among ids, in position order.
func (t OutputRoomEventsTable) SelectByIDs(ctx context.Context, q sqlutil.Querier, ids []string) ([]Event, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events
		WHERE `+t.d.In("event_id", 1)+` ORDER BY position`, t.d.List(ids))
	if err != nil {
		return nil, fmt.Errorf("select %d events by id: %w", len(ids), err)
	}
	return scanEvents(rows)
}

// Recent returns the last limit events of a room with after < position <=
// upTo, oldest first, and whether more events of that range were left out.
func (t OutputRoomEventsTable) Recent(ctx context.Context, q sqlutil.Querier, roomID string, after, upTo streams.Position, limit int) ([]Event, bool, error) {
	if limit <= 0 || upTo <= after {
		return nil, false, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events
		WHERE room_id = $1 AND position > $2 AND position <= $3 ORDER BY position DESC LIMIT $4`,
		roomID, after, upTo, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("select events of room %s in (%d, %d]: %w", roomID, after, upTo, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, false, fmt.Errorf("events of room %s: %w", roomID, err)
	}
	limited := len(evs) > limit
	if limited {
		evs = evs[:limit]
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs, limited, nil
}

// InRange returns the events of the given rooms with after < position <=
// upTo, in position order. It scans the whole range, whatever the rooms:
// callers bound it (positions are dense, so it holds at most upTo-after
// events), which is cheaper than a seek per room for the few positions a
// woken long-poll asks about.
func (t OutputRoomEventsTable) InRange(ctx context.Context, q sqlutil.Querier, roomIDs []string, after, upTo streams.Position) ([]Event, error) {
	if len(roomIDs) == 0 || upTo <= after {
		return nil, nil
	}
	// (room_id || '') keeps the planners off the room index.
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events
		WHERE position > $2 AND position <= $3 AND `+t.d.In("(room_id || '')", 1)+` ORDER BY position`, t.d.List(roomIDs), after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select events of %d rooms in (%d, %d]: %w", len(roomIDs), after, upTo, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events of %d rooms in (%d, %d]: %w", len(roomIDs), after, upTo, err)
	}
	return evs, nil
}

// RoomsWithEvents returns which of roomIDs have events with after <
// position <= upTo.
func (t OutputRoomEventsTable) RoomsWithEvents(ctx context.Context, q sqlutil.Querier, roomIDs []string, after, upTo streams.Position) ([]string, error) {
	if len(roomIDs) == 0 || upTo <= after {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT room_id FROM syncapi_output_room_events
		WHERE `+t.d.In("room_id", 1)+` AND position > $2 AND position <= $3`, t.d.List(roomIDs), after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select rooms with events in (%d, %d]: %w", after, upTo, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("scan room id: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rooms with events: %w", err)
	}
	return out, nil
}
