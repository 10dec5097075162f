package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func stateDeltasSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_state_deltas (
	-- The position of the room event whose acceptance made this change.
	position   BIGINT NOT NULL,
	room_id    TEXT NOT NULL,
	type       TEXT NOT NULL,
	state_key  TEXT NOT NULL,
	-- The event that became current; '' when the tuple left the state (state resolution).
	event_id   TEXT NOT NULL,
	-- content.membership of m.room.member events, '' otherwise.
	membership TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room_id, type, state_key, position)
)`
}

func stateDeltasIndexes(sqlutil.Dialect) string {
	// A user's memberships across rooms, at or between positions.
	return `CREATE INDEX syncapi_state_deltas_member ON syncapi_state_deltas (state_key, type, position)`
}

// Delta is one change of room state at a position.
type Delta struct {
	Position   streams.Position
	RoomID     string
	Tuple      Tuple
	EventID    string // "" for a removal
	Membership string
}

// Membership is a user's membership in a room as of some position.
type Membership struct {
	RoomID     string
	Membership string
	EventID    string
	Position   streams.Position // where it became the user's membership
}

// StateDeltasTable is syncapi_state_deltas: the history of room state as a
// list of changes, so the state at any position is the latest change of
// each tuple up to it. Only changes are stored, never a copy of the state
// per event.
type StateDeltasTable struct{ d sqlutil.Dialect }

// Insert records a change; recording the same change twice is a no-op.
func (t StateDeltasTable) Insert(ctx context.Context, q sqlutil.Querier, d Delta) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_state_deltas (position, room_id, type, state_key, event_id, membership)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, type, state_key, position) DO NOTHING`,
		d.Position, d.RoomID, d.Tuple.Type, d.Tuple.StateKey, d.EventID, d.Membership)
	if err != nil {
		return fmt.Errorf("insert state change (%s, %s) of room %s at %d: %w", d.Tuple.Type, d.Tuple.StateKey, d.RoomID, d.Position, err)
	}
	return nil
}

// latestUpTo keeps, of the changes of alias d, the latest of each tuple up
// to the position in parameter $n.
func latestUpTo(n int) string {
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM syncapi_state_deltas l WHERE l.room_id = d.room_id AND l.type = d.type
		AND l.state_key = d.state_key AND l.position > d.position AND l.position <= $%d)`, n)
}

func scanMemberships(ctx context.Context, q sqlutil.Querier, query string, args ...any) ([]Membership, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		if err := rows.Scan(&m.RoomID, &m.Membership, &m.EventID, &m.Position); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MembershipsAt returns the memberships of a user at position at, one per
// room where the user has a membership event in the state.
func (t StateDeltasTable) MembershipsAt(ctx context.Context, q sqlutil.Querier, userID string, at streams.Position) ([]Membership, error) {
	out, _, err := t.MembershipState(ctx, q, userID, at)
	return out, err
}

// MembershipState returns what MembershipsAt does and the position of the
// user's latest membership change up to at (0 when none), removals
// included: the memberships stay the same from that position until the
// user's next change, which is what lets callers cache them.
func (t StateDeltasTable) MembershipState(ctx context.Context, q sqlutil.Querier, userID string, at streams.Position) ([]Membership, streams.Position, error) {
	// Removals ('' event ids) are read too, for the latest change, and dropped here.
	all, err := scanMemberships(ctx, q, `SELECT d.room_id, d.membership, d.event_id, d.position FROM syncapi_state_deltas d
		WHERE d.state_key = $1 AND d.type = 'm.room.member' AND d.position <= $2 AND `+latestUpTo(2)+`
		ORDER BY d.position`, userID, at)
	if err != nil {
		return nil, 0, fmt.Errorf("memberships of %s at %d: %w", userID, at, err)
	}
	var latest streams.Position
	out := all[:0]
	for _, m := range all {
		latest = max(latest, m.Position)
		if m.EventID != "" {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, latest, nil
}

// MembershipChanges returns every change of a user's membership with after
// < position <= upTo, in position order; a removal from the room state has
// an empty EventID.
func (t StateDeltasTable) MembershipChanges(ctx context.Context, q sqlutil.Querier, userID string, after, upTo streams.Position) ([]Membership, error) {
	if upTo <= after {
		return nil, nil
	}
	out, err := scanMemberships(ctx, q, `SELECT room_id, membership, event_id, position FROM syncapi_state_deltas
		WHERE state_key = $1 AND type = 'm.room.member' AND position > $2 AND position <= $3 ORDER BY position`,
		userID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("membership changes of %s in (%d, %d]: %w", userID, after, upTo, err)
	}
	return out, nil
}

// StateAt returns the state events of a room at position at, in position
// order; only those of the given types when types is not empty.
func (t StateDeltasTable) StateAt(ctx context.Context, q sqlutil.Querier, roomID string, at streams.Position, types []string) ([]Event, error) {
	query := `SELECT ` + eventColumnsOf("e") + ` FROM syncapi_state_deltas d
		JOIN syncapi_output_room_events e ON e.event_id = d.event_id
		WHERE d.room_id = $1 AND d.position <= $2 AND d.event_id <> '' AND ` + latestUpTo(2)
	args := []any{roomID, at}
	if len(types) > 0 {
		query += ` AND ` + t.d.In("d.type", 3)
		args = append(args, t.d.List(types))
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY e.position`, args...)
	if err != nil {
		return nil, fmt.Errorf("select state of room %s at %d: %w", roomID, at, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("state of room %s at %d: %w", roomID, at, err)
	}
	return evs, nil
}

// StateChanges returns the state events of a room that became current with
// after < position <= upTo and still are at upTo, in position order: the
// state delta between the two positions. Tuples that left the state are not
// reported (the client-server API has no way to say so).
func (t StateDeltasTable) StateChanges(ctx context.Context, q sqlutil.Querier, roomID string, after, upTo streams.Position) ([]Event, error) {
	if upTo <= after {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumnsOf("e")+` FROM syncapi_state_deltas d
		JOIN syncapi_output_room_events e ON e.event_id = d.event_id
		WHERE d.room_id = $1 AND d.position > $2 AND d.position <= $3 AND d.event_id <> '' AND `+latestUpTo(3)+`
		ORDER BY e.position`, roomID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select state changes of room %s in (%d, %d]: %w", roomID, after, upTo, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("state changes of room %s: %w", roomID, err)
	}
	return evs, nil
}

// TupleChange is one change of one piece of state, with the JSON of the
// event that made it (empty for a removal).
type TupleChange struct {
	Position   streams.Position
	EventID    string
	Membership string
	JSON       []byte
}

// TupleHistory returns the changes of one piece of a room's state up to
// position upTo, oldest first.
func (t StateDeltasTable) TupleHistory(ctx context.Context, q sqlutil.Querier, roomID string, tu Tuple, upTo streams.Position) ([]TupleChange, error) {
	rows, err := q.QueryContext(ctx, `SELECT d.position, d.event_id, d.membership, COALESCE(e.event_json, '')
		FROM syncapi_state_deltas d LEFT JOIN syncapi_output_room_events e ON e.event_id = d.event_id
		WHERE d.room_id = $1 AND d.type = $2 AND d.state_key = $3 AND d.position <= $4 ORDER BY d.position`,
		roomID, tu.Type, tu.StateKey, upTo)
	if err != nil {
		return nil, fmt.Errorf("select history of (%s, %s) in room %s: %w", tu.Type, tu.StateKey, roomID, err)
	}
	defer rows.Close()
	var out []TupleChange
	for rows.Next() {
		var c TupleChange
		var js string
		if err := rows.Scan(&c.Position, &c.EventID, &c.Membership, &js); err != nil {
			return nil, fmt.Errorf("scan history of (%s, %s) in room %s: %w", tu.Type, tu.StateKey, roomID, err)
		}
		c.JSON = []byte(js)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history of (%s, %s) in room %s: %w", tu.Type, tu.StateKey, roomID, err)
	}
	return out, nil
}

// MembersAt returns the member events of the given users in a room's state
// at position at (lazy-loading members).
func (t StateDeltasTable) MembersAt(ctx context.Context, q sqlutil.Querier, roomID string, at streams.Position, userIDs []string) ([]Event, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumnsOf("e")+` FROM syncapi_state_deltas d
		JOIN syncapi_output_room_events e ON e.event_id = d.event_id
		WHERE d.room_id = $1 AND d.position <= $2 AND d.event_id <> '' AND d.type = 'm.room.member' AND `+
		t.d.In("d.state_key", 3)+` AND `+latestUpTo(2)+` ORDER BY e.position`, roomID, at, t.d.List(userIDs))
	if err != nil {
		return nil, fmt.Errorf("select members of room %s at %d: %w", roomID, at, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("members of room %s at %d: %w", roomID, at, err)
	}
	return evs, nil
}
