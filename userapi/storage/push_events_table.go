package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const pushEventsSchema = `CREATE TABLE userapi_push_events (
	event_id TEXT PRIMARY KEY,
	room_id  TEXT NOT NULL,
	-- seq is the roomserver output stream sequence: it orders a room's
	-- events, so a read receipt clears the notifications up to its event.
	seq      BIGINT NOT NULL,
	-- The client event, kept only when it notified someone (for /notifications).
	event    TEXT NOT NULL DEFAULT ''
)`

// pushEventsSeqIndex joins notifications (which carry the seq) to their
// event (push migration 2).
const pushEventsSeqIndex = `CREATE INDEX userapi_push_events_seq ON userapi_push_events (seq)`

// PushEventsTable is userapi_push_events: every event push evaluation has
// handled. Its primary key makes the consumer idempotent.
type PushEventsTable struct{}

// PushEvent is a row for InsertMany.
type PushEvent struct {
	EventID, RoomID string
	Seq             int64
	Event           []byte // nil when it notified nobody
}

// pushEventsPerStatement bounds the rows of one InsertMany statement (four
// parameters each: the driver's cost of binding grows with the square of
// their number).
const pushEventsPerStatement = 64

// InsertMany records events as handled, in statements of many rows, and
// returns the ids of those recorded now (not before).
func (PushEventsTable) InsertMany(ctx context.Context, q sqlutil.Querier, evs []PushEvent) (map[string]bool, error) {
	fresh := make(map[string]bool, len(evs))
	for len(evs) > 0 {
		n := min(len(evs), pushEventsPerStatement)
		var b strings.Builder
		b.WriteString(`INSERT INTO userapi_push_events (event_id, room_id, seq, event) VALUES `)
		sqlutil.AppendRows(&b, "(?, ?, ?, ?)", n, 1)
		args := make([]any, 0, 4*n)
		for _, e := range evs[:n] {
			args = append(args, e.EventID, e.RoomID, e.Seq, string(e.Event)) // '' when nil
		}
		b.WriteString(` ON CONFLICT (event_id) DO NOTHING RETURNING event_id`)
		rows, err := q.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("record %d push events: %w", n, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("record %d push events: %w", n, err)
			}
			fresh[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("record %d push events: %w", n, err)
		}
		evs = evs[n:]
	}
	return fresh, nil
}

// SelectSeq returns the stream sequence of a handled event, or an error
// wrapping ErrNotFound.
func (PushEventsTable) SelectSeq(ctx context.Context, q sqlutil.Querier, eventID string) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT seq FROM userapi_push_events WHERE event_id = $1`, eventID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("select push event %s: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("select push event %s: %w", eventID, err)
	}
	return seq, nil
}
