package storage

import (
	"context"
	"database/sql"
	"errors"
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

// StorePlain stores plain events (no state key; PlainText found them
// plain) at the next len(rows) PDU positions, in order, with their search
// text, and returns the last position: the batch holds last-len(rows)+1 ..
// last. Each row's Event.Position is ignored. It is PostgreSQL only: there
// one autocommitted statement of data-modifying CTEs takes one round trip,
// where a transaction of NextN, InsertMany and IndexPlain takes six (as
// with NextN, the counter row stays locked until the statement commits).
// It reports false, storing nothing, when any of the events was stored
// already; the caller then takes the path that skips stored events. The
// event ids must be distinct.
func (s *Storage) StorePlain(ctx context.Context, rows []SearchRow) (streams.Position, bool, error) {
	if s.DB.Dialect.Engine != sqlutil.Postgres {
		return 0, false, errors.New("StorePlain needs PostgreSQL")
	}
	n := len(rows)
	if n == 0 {
		return 0, false, errors.New("StorePlain of no events")
	}
	var ids, roomIDs, versions, types, senders, jsons, replaces, txnUsers, txnDevices, txnIDs, textIDs, texts []string
	ts := make([]int64, 0, n)
	for _, r := range rows {
		e := r.Event
		if e.StateKey != nil {
			return 0, false, fmt.Errorf("StorePlain of state event %s", e.EventID)
		}
		ids, roomIDs, versions = append(ids, e.EventID), append(roomIDs, e.RoomID), append(versions, e.RoomVersion)
		types, senders, jsons = append(types, e.Type), append(senders, e.Sender), append(jsons, string(e.JSON))
		replaces, txnUsers = append(replaces, e.ReplacesEventID), append(txnUsers, e.Txn.UserID)
		txnDevices, txnIDs = append(txnDevices, e.Txn.DeviceID), append(txnIDs, e.Txn.TxnID)
		ts = append(ts, originServerTS(e.JSON))
		if r.Text != "" {
			textIDs, texts = append(textIDs, e.EventID), append(texts, r.Text)
		}
	}
	// No ON CONFLICT on the events: a stored event id fails the statement,
	// which undoes the counter increment as well.
	var last streams.Position
	err := s.DB.QueryRowContext(ctx, `WITH p AS (`+positionsNext("$2::bigint")+`), e AS (
		INSERT INTO syncapi_output_room_events
		(position, event_id, room_id, room_version, type, sender, event_json, replaces_event_id,
		 txn_user_id, txn_device_id, txn_id, origin_server_ts)
		SELECT p.position - $2::bigint + v.ord, v.event_id, v.room_id, v.room_version, v.type, v.sender, v.event_json,
			v.replaces, v.txn_user, v.txn_device, v.txn_id, v.ts
		FROM p, unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::text[], $11::text[], $12::text[], $13::bigint[])
			WITH ORDINALITY AS v(event_id, room_id, room_version, type, sender, event_json, replaces,
			txn_user, txn_device, txn_id, ts, ord)
		RETURNING position, event_id, room_id, type
	), s AS (
		INSERT INTO syncapi_search (position, vec, room_id, type)
		SELECT e.position, to_tsvector(`+searchConfig+`, t.body), e.room_id, e.type
		FROM e JOIN unnest($14::text[], $15::text[]) AS t(event_id, body) ON t.event_id = e.event_id
		ON CONFLICT (position) DO NOTHING
	)
	SELECT position FROM p`,
		streams.PDU.String(), int64(n), ids, roomIDs, versions, types, senders, jsons, replaces,
		txnUsers, txnDevices, txnIDs, ts, textIDs, texts).Scan(&last)
	if sqlutil.IsUniqueViolation(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store %d plain events: %w", n, err)
	}
	return last, true, nil
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
