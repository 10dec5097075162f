package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func accountDataSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_account_data (
	user_id  TEXT NOT NULL,
	-- '' for global account data.
	room_id  TEXT NOT NULL,
	type     TEXT NOT NULL,
	content  TEXT NOT NULL,
	-- The userapi's change counter of this entry: older or repeated messages are ignored.
	version  BIGINT NOT NULL,
	-- The account data stream position of the latest change.
	position BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, type)
)`
}

func accountDataIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_account_data_position ON syncapi_account_data (user_id, position)`
}

// AccountData is one account data entry of a user.
type AccountData struct {
	RoomID   string // "" for global
	Type     string
	Content  []byte
	Version  int64
	Position streams.Position
}

// AccountDataTable is syncapi_account_data: the latest content of every
// account data entry, at the position of its last change.
type AccountDataTable struct{ d sqlutil.Dialect }

// Version returns the version stored for an entry, 0 when there is none.
func (t AccountDataTable) Version(ctx context.Context, q sqlutil.Querier, userID, roomID, typ string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT version FROM syncapi_account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
		userID, roomID, typ).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("select account data version (%s, %q, %s): %w", userID, roomID, typ, err)
	}
	return v, nil
}

// Upsert stores an entry's new content at position pos.
func (t AccountDataTable) Upsert(ctx context.Context, q sqlutil.Querier, userID string, a AccountData) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_account_data (user_id, room_id, type, content, version, position)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, room_id, type)
		DO UPDATE SET content = excluded.content, version = excluded.version, position = excluded.position`,
		userID, a.RoomID, a.Type, string(a.Content), a.Version, a.Position)
	if err != nil {
		return fmt.Errorf("upsert account data (%s, %q, %s): %w", userID, a.RoomID, a.Type, err)
	}
	return nil
}

// Changed returns a user's entries changed with after < position <= upTo
// (all of them up to upTo when after is 0), in position order.
func (t AccountDataTable) Changed(ctx context.Context, q sqlutil.Querier, userID string, after, upTo streams.Position) ([]AccountData, error) {
	if upTo <= after {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT room_id, type, content, version, position FROM syncapi_account_data
		WHERE user_id = $1 AND position > $2 AND position <= $3 ORDER BY position`, userID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("select account data of %s in (%d, %d]: %w", userID, after, upTo, err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		var a AccountData
		var content string
		if err := rows.Scan(&a.RoomID, &a.Type, &content, &a.Version, &a.Position); err != nil {
			return nil, fmt.Errorf("scan account data of %s: %w", userID, err)
		}
		a.Content = []byte(content)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read account data of %s: %w", userID, err)
	}
	return out, nil
}

// Get returns one entry's content, nil when absent.
func (t AccountDataTable) Get(ctx context.Context, q sqlutil.Querier, userID, roomID, typ string) ([]byte, error) {
	a, _, err := t.Entry(ctx, q, userID, roomID, typ)
	return a.Content, err
}

// Entry returns one entry with the position of its last change; false when
// absent. Entries are never deleted, so an absent one never changed.
func (t AccountDataTable) Entry(ctx context.Context, q sqlutil.Querier, userID, roomID, typ string) (AccountData, bool, error) {
	a := AccountData{RoomID: roomID, Type: typ}
	var c string
	err := q.QueryRowContext(ctx, `SELECT content, version, position FROM syncapi_account_data
		WHERE user_id = $1 AND room_id = $2 AND type = $3`, userID, roomID, typ).Scan(&c, &a.Version, &a.Position)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("select account data (%s, %q, %s): %w", userID, roomID, typ, err)
	}
	a.Content = []byte(c)
	return a, true, nil
}
