package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func roomsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_rooms (
	room_nid      ` + d.ID() + `,
	room_id       TEXT NOT NULL UNIQUE,
	room_version  TEXT NOT NULL,
	-- The forward extremities, a JSON array of event nids.
	latest_events TEXT NOT NULL DEFAULT '[]',
	-- The current state: the snapshot after the latest events (resolved if several).
	snapshot_nid  BIGINT NOT NULL DEFAULT 0,
	-- The greatest depth among the latest events.
	depth         BIGINT NOT NULL DEFAULT 0
)`
}

// Room is a room row.
type Room struct {
	NID          int64
	RoomID       string
	Version      string
	LatestEvents []int64
	SnapshotNID  int64
	Depth        int64
}

// RoomsTable is roomserver_rooms.
type RoomsTable struct{ d sqlutil.Dialect }

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Insert creates a room row and returns its nid; a room that already exists
// keeps its row.
func (t RoomsTable) Insert(ctx context.Context, q sqlutil.Querier, roomID, version string) (int64, error) {
	var nid int64
	err := q.QueryRowContext(ctx, `INSERT INTO roomserver_rooms (room_id, room_version) VALUES ($1, $2)
		ON CONFLICT (room_id) DO UPDATE SET room_version = roomserver_rooms.room_version RETURNING room_nid`, roomID, version).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("insert room %s: %w", roomID, err)
	}
	return nid, nil
}

// Select loads a room by id; ErrNotFound if unknown.
func (t RoomsTable) Select(ctx context.Context, q sqlutil.Querier, roomID string) (Room, error) {
	r := Room{RoomID: roomID}
	var latest string
	err := q.QueryRowContext(ctx, `SELECT room_nid, room_version, latest_events, snapshot_nid, depth FROM roomserver_rooms WHERE room_id = $1`,
		roomID).Scan(&r.NID, &r.Version, &latest, &r.SnapshotNID, &r.Depth)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("select room %s: %w", roomID, err)
	}
	if err := json.Unmarshal([]byte(latest), &r.LatestEvents); err != nil {
		return r, fmt.Errorf("decode latest events of %s: %w", roomID, err)
	}
	return r, nil
}

// ErrMoved is returned by UpdateLatest when the room's forward extremities
// are not the ones the caller built on.
var ErrMoved = errors.New("room head moved")

// UpdateLatest moves the room's forward extremities from before (nil: a
// new room's none) to latest, and its current state. It fails with
// ErrMoved, writing nothing, when the stored extremities are not before:
// the caller decided from a head that is not the room's.
func (t RoomsTable) UpdateLatest(ctx context.Context, q sqlutil.Querier, roomNID int64, before, latest []int64, snapshotNID, depth int64) error {
	was := latestJSON(before)
	res, err := q.ExecContext(ctx, `UPDATE roomserver_rooms SET latest_events = $1, snapshot_nid = $2, depth = $3 WHERE room_nid = $4 AND latest_events = $5`,
		latestJSON(latest), snapshotNID, depth, roomNID, was)
	if err != nil {
		return fmt.Errorf("update latest events of room %d: %w", roomNID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update latest events of room %d: %w", roomNID, err)
	}
	if n != 1 {
		return fmt.Errorf("update latest events of room %d from %s: %w", roomNID, was, ErrMoved)
	}
	return nil
}

// RoomUpdate is one room's UpdateLatest, for WritePipelined.
type RoomUpdate struct {
	NID                int64
	Before, Latest     []int64
	SnapshotNID, Depth int64
}

// latestJSON is the stored form of forward extremities: a JSON array of
// event numbers, [] for none.
func latestJSON(nids []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range nids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteByte(']')
	return b.String()
}
