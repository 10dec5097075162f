package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func presenceSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_presence (
	user_id          TEXT PRIMARY KEY,
	-- online, unavailable or offline.
	presence         TEXT NOT NULL,
	-- NULL when the user set no status message.
	status_msg       TEXT,
	-- Milliseconds since the epoch of the user's last activity.
	last_active_ts   BIGINT NOT NULL,
	position         BIGINT NOT NULL
)`
}

func presenceIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_presence_position ON syncapi_presence (position)`
}

// Presence is a user's presence.
type Presence struct {
	UserID       string
	Presence     string
	StatusMsg    *string
	LastActiveTS int64
	Position     streams.Position
}

// PresenceTable is syncapi_presence: each user's latest presence.
type PresenceTable struct{ d sqlutil.Dialect }

// Upsert stores a user's presence.
func (t PresenceTable) Upsert(ctx context.Context, q sqlutil.Querier, p Presence) error {
	var msg sql.NullString
	if p.StatusMsg != nil {
		msg = sql.NullString{String: *p.StatusMsg, Valid: true}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_presence (user_id, presence, status_msg, last_active_ts, position)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence,
		status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts, position = excluded.position`,
		p.UserID, p.Presence, msg, p.LastActiveTS, p.Position)
	if err != nil {
		return fmt.Errorf("upsert presence of %s: %w", p.UserID, err)
	}
	return nil
}

const presenceColumns = `user_id, presence, status_msg, last_active_ts, position`

func scanPresence(sc interface{ Scan(...any) error }) (Presence, error) {
	var p Presence
	var msg sql.NullString
	if err := sc.Scan(&p.UserID, &p.Presence, &msg, &p.LastActiveTS, &p.Position); err != nil {
		return p, err
	}
	if msg.Valid {
		p.StatusMsg = &msg.String
	}
	return p, nil
}

// Get returns a user's presence; ok is false when none was ever set.
func (t PresenceTable) Get(ctx context.Context, q sqlutil.Querier, userID string) (Presence, bool, error) {
	p, err := scanPresence(q.QueryRowContext(ctx, `SELECT `+presenceColumns+` FROM syncapi_presence WHERE user_id = $1`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("select presence of %s: %w", userID, err)
	}
	return p, true, nil
}

// Changed returns the presence of the given users changed with after <
// position <= upTo.
func (t PresenceTable) Changed(ctx context.Context, q sqlutil.Querier, userIDs []string, after, upTo streams.Position) ([]Presence, error) {
	if len(userIDs) == 0 || upTo <= after {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+presenceColumns+` FROM syncapi_presence
		WHERE `+t.d.In("user_id", 1)+` AND position > $2 AND position <= $3 ORDER BY position`, t.d.List(userIDs), after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select presence in (%d, %d]: %w", after, upTo, err)
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		p, err := scanPresence(rows)
		if err != nil {
			return nil, fmt.Errorf("scan presence: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	return out, nil
}
