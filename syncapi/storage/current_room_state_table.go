package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func currentRoomStateSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_current_room_state (
	room_id    TEXT NOT NULL,
	type       TEXT NOT NULL,
	state_key  TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	-- content.membership of m.room.member events, '' for other types.
	membership TEXT NOT NULL DEFAULT '',
	-- The position at which this event became current: members are listed in this order (room heroes).
	position   BIGINT NOT NULL,
	PRIMARY KEY (room_id, type, state_key)
)`
}

func currentRoomStateIndexes(sqlutil.Dialect) string {
	// The rooms of a user: its member events across rooms.
	return `CREATE INDEX syncapi_current_room_state_member ON syncapi_current_room_state (state_key, type)`
}

// CurrentRoomStateTable is syncapi_current_room_state: the latest state of
// every room, for what only needs "now" (member counts, the notifier's
// joined users, what a new event replaces).
type CurrentRoomStateTable struct{ d sqlutil.Dialect }

// Select returns the event id of a piece of current state, "" if unset.
func (t CurrentRoomStateTable) Select(ctx context.Context, q sqlutil.Querier, roomID string, tu Tuple) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT event_id FROM syncapi_current_room_state
		WHERE room_id = $1 AND type = $2 AND state_key = $3`, roomID, tu.Type, tu.StateKey).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select state (%s, %s) of room %s: %w", tu.Type, tu.StateKey, roomID, err)
	}
	return id, nil
}

// SelectRoom returns the whole current state of a room as tuple → event id.
func (t CurrentRoomStateTable) SelectRoom(ctx context.Context, q sqlutil.Querier, roomID string) (map[Tuple]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT type, state_key, event_id FROM syncapi_current_room_state WHERE room_id = $1`, roomID)
	if err != nil {
		return nil, fmt.Errorf("select state of room %s: %w", roomID, err)
	}
	defer rows.Close()
	out := map[Tuple]string{}
	for rows.Next() {
		var tu Tuple
		var id string
		if err := rows.Scan(&tu.Type, &tu.StateKey, &id); err != nil {
			return nil, fmt.Errorf("scan state of room %s: %w", roomID, err)
		}
		out[tu] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read state of room %s: %w", roomID, err)
	}
	return out, nil
}

// Upsert sets a piece of current state.
func (t CurrentRoomStateTable) Upsert(ctx context.Context, q sqlutil.Querier, roomID string, tu Tuple, eventID, membership string, pos streams.Position) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_current_room_state (room_id, type, state_key, event_id, membership, position)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, type, state_key)
		DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership, position = excluded.position`,
		roomID, tu.Type, tu.StateKey, eventID, membership, pos)
	if err != nil {
		return fmt.Errorf("set state (%s, %s) of room %s to %s: %w", tu.Type, tu.StateKey, roomID, eventID, err)
	}
	return nil
}

// Delete removes a piece of current state.
func (t CurrentRoomStateTable) Delete(ctx context.Context, q sqlutil.Querier, roomID string, tu Tuple) error {
	_, err := q.ExecContext(ctx, `DELETE FROM syncapi_current_room_state WHERE room_id = $1 AND type = $2 AND state_key = $3`,
		roomID, tu.Type, tu.StateKey)
	if err != nil {
		return fmt.Errorf("delete state (%s, %s) of room %s: %w", tu.Type, tu.StateKey, roomID, err)
	}
	return nil
}

// JoinedUsers returns the joined users of every room.
func (t CurrentRoomStateTable) JoinedUsers(ctx context.Context, q sqlutil.Querier) (map[string][]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT room_id, state_key FROM syncapi_current_room_state
		WHERE type = 'm.room.member' AND membership = 'join'`)
	if err != nil {
		return nil, fmt.Errorf("select joined users: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var room, user string
		if err := rows.Scan(&room, &user); err != nil {
			return nil, fmt.Errorf("scan joined user: %w", err)
		}
		out[room] = append(out[room], user)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read joined users: %w", err)
	}
	return out, nil
}

// MemberCounts returns the numbers of joined and invited members of a room.
func (t CurrentRoomStateTable) MemberCounts(ctx context.Context, q sqlutil.Querier, roomID string) (joined, invited int, err error) {
	rows, err := q.QueryContext(ctx, `SELECT membership, COUNT(*) FROM syncapi_current_room_state
		WHERE room_id = $1 AND type = 'm.room.member' AND membership IN ('join', 'invite') GROUP BY membership`, roomID)
	if err != nil {
		return 0, 0, fmt.Errorf("count members of room %s: %w", roomID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			return 0, 0, fmt.Errorf("scan member count of room %s: %w", roomID, err)
		}
		if m == "join" {
			joined = n
		} else {
			invited = n
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("read member counts of room %s: %w", roomID, err)
	}
	return joined, invited, nil
}

// Heroes returns up to limit members of a room other than exclude, in the
// order they got their membership: joined and invited ones, or, when there
// are none, those who left or were banned (client-server API, /sync
// "m.heroes").
func (t CurrentRoomStateTable) Heroes(ctx context.Context, q sqlutil.Querier, roomID, exclude string, limit int) ([]string, error) {
	var out []string
	for _, memberships := range []string{`'join', 'invite'`, `'leave', 'ban'`} {
		rows, err := q.QueryContext(ctx, `SELECT state_key FROM syncapi_current_room_state
			WHERE room_id = $1 AND type = 'm.room.member' AND membership IN (`+memberships+`) AND state_key <> $2
			ORDER BY position LIMIT $3`, roomID, exclude, limit)
		if err != nil {
			return nil, fmt.Errorf("select heroes of room %s: %w", roomID, err)
		}
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan hero of room %s: %w", roomID, err)
			}
			out = append(out, u)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read heroes of room %s: %w", roomID, err)
		}
		if len(out) > 0 {
			break
		}
	}
	return out, nil
}

// Membership returns a user's membership in the current state of a room,
// "" when there is none.
func (t CurrentRoomStateTable) Membership(ctx context.Context, q sqlutil.Querier, roomID, userID string) (string, error) {
	var m string
	err := q.QueryRowContext(ctx, `SELECT membership FROM syncapi_current_room_state
		WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2`, roomID, userID).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select membership of %s in room %s: %w", userID, roomID, err)
	}
	return m, nil
}
