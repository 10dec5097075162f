package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func eventsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_events (
	event_nid    ` + d.ID() + `,
	room_nid     BIGINT NOT NULL,
	event_id     TEXT NOT NULL UNIQUE,
	-- The (type, state_key) nid for state events, 0 for others.
	tuple_nid    BIGINT NOT NULL DEFAULT 0,
	depth        BIGINT NOT NULL,
	event_json   TEXT NOT NULL,
	-- The state after this event; 0 for outliers, which are stored without state.
	snapshot_nid BIGINT NOT NULL DEFAULT 0,
	outlier      BOOLEAN NOT NULL DEFAULT FALSE,
	-- Rejected events are kept so they are not fetched again, never used as state or prev events.
	rejected     BOOLEAN NOT NULL DEFAULT FALSE,
	reject_reason TEXT NOT NULL DEFAULT ''
)`
}

func eventsIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX roomserver_events_room ON roomserver_events (room_nid, depth)`
}

// Event is an event row.
type Event struct {
	NID         int64
	RoomNID     int64
	EventID     string
	TupleNID    int64
	Depth       int64
	JSON        []byte
	SnapshotNID int64
	Outlier     bool
	Rejected    bool
}

// EventsTable is roomserver_events.
type EventsTable struct{ d sqlutil.Dialect }

// Insert stores an event; an event already stored keeps its row and its nid
// is returned with inserted=false.
func (t EventsTable) Insert(ctx context.Context, q sqlutil.Querier, e Event) (nid int64, inserted bool, err error) {
	err = q.QueryRowContext(ctx, `INSERT INTO roomserver_events
		(room_nid, event_id, tuple_nid, depth, event_json, snapshot_nid, outlier, rejected)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING RETURNING event_nid`,
		e.RoomNID, e.EventID, e.TupleNID, e.Depth, string(e.JSON), e.SnapshotNID, e.Outlier, e.Rejected).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		err = q.QueryRowContext(ctx, `SELECT event_nid FROM roomserver_events WHERE event_id = $1`, e.EventID).Scan(&nid)
		if err != nil {
			return 0, false, fmt.Errorf("select existing event %s: %w", e.EventID, err)
		}
		return nid, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("insert event %s: %w", e.EventID, err)
	}
	return nid, true, nil
}

// AllocNIDs reserves n event numbers (PostgreSQL) for WritePipelined.
func (t EventsTable) AllocNIDs(ctx context.Context, q sqlutil.Querier, n int) ([]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT nextval(pg_get_serial_sequence('roomserver_events', 'event_nid')) FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("reserve %d event numbers: %w", n, err)
	}
	defer rows.Close()
	nids := make([]int64, 0, n)
	for rows.Next() {
		var nid int64
		if err := rows.Scan(&nid); err != nil {
			return nil, fmt.Errorf("reserve event numbers: %w", err)
		}
		nids = append(nids, nid)
	}
	return nids, rows.Err()
}

// SetSnapshot records the state after an event.
func (t EventsTable) SetSnapshot(ctx context.Context, q sqlutil.Querier, eventNID, snapshotNID int64) error {
	if _, err := q.ExecContext(ctx, `UPDATE roomserver_events SET snapshot_nid = $1 WHERE event_nid = $2`, snapshotNID, eventNID); err != nil {
		return fmt.Errorf("set snapshot of event %d: %w", eventNID, err)
	}
	return nil
}

const eventColumns = `event_nid, room_nid, event_id, tuple_nid, depth, event_json, snapshot_nid, outlier, rejected`

func scanEvent(s interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var js string
	err := s.Scan(&e.NID, &e.RoomNID, &e.EventID, &e.TupleNID, &e.Depth, &js, &e.SnapshotNID, &e.Outlier, &e.Rejected)
	e.JSON = []byte(js)
	return e, err
}

// SelectByIDs loads the events with the given ids that are stored.
func (t EventsTable) SelectByIDs(ctx context.Context, q sqlutil.Querier, ids []string) ([]Event, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return t.selectWhere(ctx, q, t.d.In("event_id", 1), t.d.List(ids))
}

// SelectByNIDs loads events by nid.
func (t EventsTable) SelectByNIDs(ctx context.Context, q sqlutil.Querier, nids []int64) ([]Event, error) {
	if len(nids) == 0 {
		return nil, nil
	}
	return t.selectWhere(ctx, q, t.d.In("event_nid", 1), t.d.List(nids))
}

func (t EventsTable) selectWhere(ctx context.Context, q sqlutil.Querier, where string, arg any) ([]Event, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM roomserver_events WHERE `+where, arg)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// UpdateJSON replaces an event's JSON: a redaction stores the redacted form,
// which every reader then gets. The event id does not change.
func (t EventsTable) UpdateJSON(ctx context.Context, q sqlutil.Querier, eventNID int64, js []byte) error {
	if _, err := q.ExecContext(ctx, `UPDATE roomserver_events SET event_json = $1 WHERE event_nid = $2`, string(js), eventNID); err != nil {
		return fmt.Errorf("update json of event %d: %w", eventNID, err)
	}
	return nil
}
