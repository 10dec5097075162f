package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func membershipSchema(sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_membership (
	room_nid   BIGINT NOT NULL,
	user_id    TEXT NOT NULL,
	-- The membership in the room's current state: join, invite, leave, ban or knock.
	membership TEXT NOT NULL,
	-- The m.room.member event in the current state.
	event_nid  BIGINT NOT NULL,
	-- Set by /forget; cleared when the user's membership changes again.
	forgotten  BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (room_nid, user_id)
)`
}

func membershipIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX roomserver_membership_user ON roomserver_membership (user_id, membership)`
}

// Member is a membership row.
type Member struct {
	RoomNID    int64
	RoomID     string
	UserID     string
	Membership string
	EventNID   int64
	Forgotten  bool
}

// MembershipTable is roomserver_membership: each user's membership in the
// current state of every room, kept so "which rooms is this user in" and
// "who is in this room" do not load whole snapshots.
type MembershipTable struct{ d sqlutil.Dialect }

// Upsert records a membership of the current state. A change of membership
// clears forgotten; a repeat of the same event keeps it.
func (t MembershipTable) Upsert(ctx context.Context, q sqlutil.Querier, m Member) error {
	_, err := q.ExecContext(ctx, `INSERT INTO roomserver_membership (room_nid, user_id, membership, event_nid, forgotten)
		VALUES ($1, $2, $3, $4, FALSE)
		ON CONFLICT (room_nid, user_id) DO UPDATE SET membership = excluded.membership, event_nid = excluded.event_nid,
		forgotten = CASE WHEN roomserver_membership.event_nid = excluded.event_nid THEN roomserver_membership.forgotten ELSE FALSE END`,
		m.RoomNID, m.UserID, m.Membership, m.EventNID)
	if err != nil {
		return fmt.Errorf("upsert membership of %s in room %d: %w", m.UserID, m.RoomNID, err)
	}
	return nil
}

// Delete removes a membership that left the current state (state resolution).
func (t MembershipTable) Delete(ctx context.Context, q sqlutil.Querier, roomNID int64, userID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM roomserver_membership WHERE room_nid = $1 AND user_id = $2`, roomNID, userID); err != nil {
		return fmt.Errorf("delete membership of %s in room %d: %w", userID, roomNID, err)
	}
	return nil
}

// SetForgotten marks a user's membership of a room forgotten; it reports
// whether a row was there.
func (t MembershipTable) SetForgotten(ctx context.Context, q sqlutil.Querier, roomNID int64, userID string) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE roomserver_membership SET forgotten = TRUE WHERE room_nid = $1 AND user_id = $2`, roomNID, userID)
	if err != nil {
		return false, fmt.Errorf("forget room %d for %s: %w", roomNID, userID, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

const memberColumns = `m.room_nid, r.room_id, m.user_id, m.membership, m.event_nid, m.forgotten`

// Select returns a user's membership of a room; ErrNotFound when the room's
// state has no member event for the user.
func (t MembershipTable) Select(ctx context.Context, q sqlutil.Querier, roomNID int64, userID string) (Member, error) {
	ms, err := t.query(ctx, q, `m.room_nid = $1 AND m.user_id = $2`, roomNID, userID)
	if err != nil {
		return Member{}, err
	}
	if len(ms) == 0 {
		return Member{}, ErrNotFound
	}
	return ms[0], nil
}

// ByUser returns the rooms where user has the membership (any when empty).
func (t MembershipTable) ByUser(ctx context.Context, q sqlutil.Querier, userID, membership string) ([]Member, error) {
	if membership == "" {
		return t.query(ctx, q, `m.user_id = $1`, userID)
	}
	return t.query(ctx, q, `m.user_id = $1 AND m.membership = $2`, userID, membership)
}

// ByRoom returns the memberships of a room's current state.
func (t MembershipTable) ByRoom(ctx context.Context, q sqlutil.Querier, roomNID int64) ([]Member, error) {
	return t.query(ctx, q, `m.room_nid = $1`, roomNID)
}

// CountJoined counts the joined members of a room.
func (t MembershipTable) CountJoined(ctx context.Context, q sqlutil.Querier, roomNID int64) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM roomserver_membership WHERE room_nid = $1 AND membership = 'join'`, roomNID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count joined members of room %d: %w", roomNID, err)
	}
	return n, nil
}

func (t MembershipTable) query(ctx context.Context, q sqlutil.Querier, where string, args ...any) ([]Member, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+memberColumns+` FROM roomserver_membership m
		JOIN roomserver_rooms r ON r.room_nid = m.room_nid WHERE `+where+` ORDER BY m.room_nid, m.user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("select memberships: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.RoomNID, &m.RoomID, &m.UserID, &m.Membership, &m.EventNID, &m.Forgotten); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
