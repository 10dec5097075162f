package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/jackc/pgx/v5/pgconn"
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
	// (a plain read of the table would not see the upsert's writes).
	rows, err := q.QueryContext(ctx, `WITH e AS (
		INSERT INTO userapi_push_events (event_id, room_id, seq, event)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
	), n AS (
		INSERT INTO userapi_notifications (seq, room_nid, thread_id, user_nid, highlight, actions_nid)
		SELECT * FROM unnest($5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::boolean[], $10::bigint[])
	), c AS (
		INSERT INTO userapi_notification_counts (room_id, first_seq, thread_id, localpart, notification_count, highlight_count)
		SELECT * FROM unnest($11::text[], $12::bigint[], $13::text[], $14::text[], $15::bigint[], $16::bigint[])
		ON CONFLICT (room_id, localpart, thread_id) DO UPDATE SET
			notification_count = userapi_notification_counts.notification_count + excluded.notification_count,
			highlight_count = userapi_notification_counts.highlight_count + excluded.highlight_count
		RETURNING room_id, localpart, thread_id, notification_count, highlight_count
	)
	SELECT room_id, localpart, thread_id, notification_count, highlight_count FROM c
	UNION ALL
	SELECT t.room_id, t.localpart, t.thread_id, t.notification_count, t.highlight_count
	FROM userapi_notification_counts t
	WHERE t.room_id = ANY($17::text[]) AND t.localpart = ANY($18::text[]) AND NOT EXISTS (
		SELECT 1 FROM c WHERE c.room_id = t.room_id AND c.localpart = t.localpart AND c.thread_id = t.thread_id)`,
		ids, rooms, seqs, events,
		n.seqs, n.rooms, n.threads, n.users, n.highlights, n.actions,
		c.rooms, c.firsts, c.threads, c.locals, c.notes, c.highs,
		w.rooms, w.locals)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
		return nil, ErrStoredBefore
	}
	if err != nil {
		return nil, fmt.Errorf("%d push events in one statement: %w", len(evs), err)
	}
	out, err := w.scan(rows, len(want))
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
		return nil, ErrStoredBefore
	}
	return out, err
}
