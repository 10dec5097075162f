package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/jackc/pgx/v5/pgconn"
)

// headMovedCode is the SQLSTATE roomserver_head_moved raises.
const headMovedCode = "AXHM1"

// headMovedFunction (migration 4, PostgreSQL) lets WritePipelined fail when
// a room's head moved. Its statement is its own transaction, so a guard
// that updates fewer rooms than it should must raise, not just count.
func headMovedFunction(d sqlutil.Dialect) string {
	if d.Engine != sqlutil.Postgres {
		return `SELECT 1`
	}
	return `CREATE FUNCTION roomserver_head_moved(updated BIGINT, wanted BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'forward extremities of % of % rooms moved', wanted - updated, wanted USING ERRCODE = '` + headMovedCode + `';
END
$$`
}

// ErrStoredBefore is returned by WritePipelined, having written nothing,
// when a transaction id or an event of the batch is stored already.
var ErrStoredBefore = errors.New("transaction id or event stored before")

// Pipelined are the writes of a batch of messages built on their rooms'
// cached heads: transaction ids (Txns[i] made TxnEvents[i]), event rows
// numbered by AllocNIDs, and one head move per room.
type Pipelined struct {
	Txns      []Txn
	TxnEvents []string
	Events    []Event
	Rooms     []RoomUpdate
	// Epoch is Deferred's epoch when the batch began, before anything
	// cached was read for it.
	Epoch string
}

// WritePipelined (PostgreSQL) makes w's writes with one statement, which
// commits on its own: one round trip for the batch. It writes nothing and
// fails with ErrStoredBefore when a transaction id or an event is stored
// already, and with ErrMoved when a room's extremities are not its
// update's Before.
func (s *Storage) WritePipelined(ctx context.Context, w Pipelined) error {
	users, devices, scopes, txnIDs := make([]string, len(w.Txns)), make([]string, len(w.Txns)), make([]string, len(w.Txns)), make([]string, len(w.Txns))
	for i, t := range w.Txns {
		users[i], devices[i], scopes[i], txnIDs[i] = t.UserID, t.DeviceID, t.Scope, t.TxnID
	}
	n := len(w.Events)
	nids, evRooms, tuples, depths, snaps := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	ids, jsons := make([]string, n), make([]string, n)
	for i, e := range w.Events {
		nids[i], evRooms[i], ids[i], tuples[i], depths[i], jsons[i], snaps[i] = e.NID, e.RoomNID, e.EventID, e.TupleNID, e.Depth, string(e.JSON), e.SnapshotNID
	}
	m := len(w.Rooms)
	roomNIDs, roomSnaps, roomDepths := make([]int64, m), make([]int64, m), make([]int64, m)
	latest, was := make([]string, m), make([]string, m)
	for i, u := range w.Rooms {
		roomNIDs[i], latest[i], roomSnaps[i], roomDepths[i], was[i] = u.NID, latestJSON(u.Latest), u.SnapshotNID, u.Depth, latestJSON(u.Before)
	}
	// No ON CONFLICT: a row stored already fails the statement, and with
	// it every write of the batch. The guard defers the commit (the input
	// is acked only once it is flushed) and fails the statement if commits
	// may have been lost since the caches it was built on were filled.
	args := []any{users, devices, scopes, txnIDs, w.TxnEvents,
		nids, evRooms, ids, tuples, depths, jsons, snaps,
		roomNIDs, latest, roomSnaps, roomDepths, was, int64(m)}
	guard := `''`
	if s.Deferred != nil {
		guard, args = s.Deferred.Guard(19), append(args, w.Epoch)
	}
	var updated int64
	var deferred string
	err := s.DB.QueryRowContext(ctx, `WITH t AS (
		INSERT INTO roomserver_txns (user_id, device_id, scope, txn_id, event_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
	), e AS (
		INSERT INTO roomserver_events (event_nid, room_nid, event_id, tuple_nid, depth, event_json, snapshot_nid) OVERRIDING SYSTEM VALUE
		SELECT * FROM unnest($6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::bigint[])
	), r AS (
		UPDATE roomserver_rooms AS r SET latest_events = v.latest, snapshot_nid = v.snap, depth = v.depth
		FROM unnest($13::bigint[], $14::text[], $15::bigint[], $16::bigint[], $17::text[]) AS v(room_nid, latest, snap, depth, was)
		WHERE r.room_nid = v.room_nid AND r.latest_events = v.was
		RETURNING 1
	)
	SELECT CASE WHEN count(*) = $18 THEN count(*) ELSE roomserver_head_moved(count(*), $18) END, `+guard+` FROM r`,
		args...).Scan(&updated, &deferred)
	err = s.Deferred.Check(ctx, err, w.Epoch)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case sqlutil.IsUniqueViolation(err):
		return ErrStoredBefore
	case errors.As(err, &pe) && pe.Code == headMovedCode:
		return fmt.Errorf("pipelined input: %s: %w", pe.Message, ErrMoved)
	default:
		return fmt.Errorf("pipelined input of %d events: %w", n, err)
	}
}
