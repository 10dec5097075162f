package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// ErrStoredBefore is returned by StoreFresh, having written nothing, when
// an event of the batch was recorded before.
var ErrStoredBefore = errors.New("push event stored before")

// StoreFresh (PostgreSQL) is the push consumer's transaction for a batch
// none of whose events was recorded before, as one autocommitted statement:
// one round trip where Events.InsertMany, Notifs.Insert, Counts.AddGroups
// and Counts.SelectRooms in a transaction take six. It records evs, inserts
// notifs, adds groups to the counts and returns the count rows of want, as
// SelectRooms would after them. The event ids must be distinct; one
// recorded before fails the statement with ErrStoredBefore.
func (t PushTables) StoreFresh(ctx context.Context, q sqlutil.Querier, evs []PushEvent, notifs []EventNotifications,
	groups []CountGroup, want map[string][]string) (map[string][]CountRow, error) {
	if t.Counts.d.Engine != sqlutil.Postgres {
		return nil, errors.New("StoreFresh needs PostgreSQL")
	}
	ids, rooms, events := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	seqs := make([]int64, len(evs))
	for i, e := range evs {
		ids[i], rooms[i], seqs[i], events[i] = e.EventID, e.RoomID, e.Seq, string(e.Event) // '' when nil
	}
	n, err := notifColumns(notifs)
	if err != nil {
		return nil, err
	}
	c := countColumns(groups)
	w := wantedCounts(want)
	// No ON CONFLICT on the events: one recorded before fails the statement
	// and with it every write. The counts are read from the upsert's
	// RETURNING for the rows it wrote and from the table for the others
	// (a plain read of the table would not see the upsert's writes, only
	// the versions before them): of a row read both ways, the upsert's
	// comes first and is kept. (A NOT EXISTS against the upsert's rows
	// was planned as a nested loop over them, quadratic in the batch: a
	// fifth of the userapi's database CPU under load.)
	rows, err := q.QueryContext(ctx, `WITH e AS (
		INSERT INTO userapi_push_events (event_id, room_id, seq, event)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
	), n AS (
		`+notifsInsertUnnest(5)+`
	), c AS (
		`+countsAddUnnest(11)+`
		RETURNING room_id, localpart, thread_id, notification_count, highlight_count
	)
	SELECT DISTINCT ON (room_id, localpart, thread_id) room_id, localpart, thread_id, notification_count, highlight_count
	FROM (
		SELECT room_id, localpart, thread_id, notification_count, highlight_count, 0 AS src FROM c
		UNION ALL
		SELECT t.room_id, t.localpart, t.thread_id, t.notification_count, t.highlight_count, 1
		FROM userapi_notification_counts t WHERE t.room_id = ANY($17::text[]) AND t.localpart = ANY($18::text[])
	) r ORDER BY room_id, localpart, thread_id, src`,
		ids, rooms, seqs, events,
		n.seqs, n.rooms, n.threads, n.users, n.highlights, n.actions,
		c.rooms, c.firsts, c.threads, c.locals, c.notes, c.highs,
		w.rooms, w.locals)
	if sqlutil.IsUniqueViolation(err) {
		return nil, ErrStoredBefore
	}
	if err != nil {
		return nil, fmt.Errorf("%d push events in one statement: %w", len(evs), err)
	}
	out, err := w.scan(rows, len(want))
	if sqlutil.IsUniqueViolation(err) {
		return nil, ErrStoredBefore
	}
	return out, err
}
