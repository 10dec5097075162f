package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const accountDataSchema = `CREATE TABLE userapi_account_data (
	localpart TEXT NOT NULL,
	-- '' for global account data.
	room_id   TEXT NOT NULL,
	type      TEXT NOT NULL,
	content   TEXT NOT NULL,
	-- Change counter of this one entry (1 on creation): consumers of the
	-- account data topic apply a change only if it is newer than theirs.
	version   BIGINT NOT NULL,
	PRIMARY KEY (localpart, room_id, type)
)`

// AccountData is a row of userapi_account_data.
type AccountData struct {
	Localpart string
	RoomID    string
	Type      string
	Content   string
	Version   int64
}

// AccountDataTable is userapi_account_data.
type AccountDataTable struct{}

// Upsert stores content and returns the entry's new version. The row lock
// the upsert takes serialises concurrent writers of one entry, so versions
// never repeat.
func (AccountDataTable) Upsert(ctx context.Context, q sqlutil.Querier, localpart, roomID, typ, content string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `INSERT INTO userapi_account_data (localpart, room_id, type, content, version)
		VALUES ($1, $2, $3, $4, 1)
		ON CONFLICT (localpart, room_id, type) DO UPDATE SET content = excluded.content, version = userapi_account_data.version + 1
		RETURNING version`, localpart, roomID, typ, content).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("upsert account data %s of %s in %q: %w", typ, localpart, roomID, err)
	}
	return v, nil
}

// Select returns one entry or an error wrapping ErrNotFound.
func (AccountDataTable) Select(ctx context.Context, q sqlutil.Querier, localpart, roomID, typ string) (AccountData, error) {
	a := AccountData{Localpart: localpart, RoomID: roomID, Type: typ}
	err := q.QueryRowContext(ctx, `SELECT content, version FROM userapi_account_data
		WHERE localpart = $1 AND room_id = $2 AND type = $3`, localpart, roomID, typ).Scan(&a.Content, &a.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountData{}, fmt.Errorf("select account data %s of %s: %w", typ, localpart, ErrNotFound)
	}
	if err != nil {
		return AccountData{}, fmt.Errorf("select account data %s of %s: %w", typ, localpart, err)
	}
	return a, nil
}

// SelectAll returns every entry of localpart, global first, then by room and type.
func (AccountDataTable) SelectAll(ctx context.Context, q sqlutil.Querier, localpart string) ([]AccountData, error) {
	rows, err := q.QueryContext(ctx, `SELECT room_id, type, content, version FROM userapi_account_data
		WHERE localpart = $1 ORDER BY room_id, type`, localpart)
	if err != nil {
		return nil, fmt.Errorf("select account data of %s: %w", localpart, err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		a := AccountData{Localpart: localpart}
		if err := rows.Scan(&a.RoomID, &a.Type, &a.Content, &a.Version); err != nil {
			return nil, fmt.Errorf("select account data of %s: %w", localpart, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select account data of %s: %w", localpart, err)
	}
	return out, nil
}

// UpsertIfVersion is a compare-and-swap: it stores content only if the
// entry's version is still expected (0: the entry must not exist yet), and
// reports whether it did, with the new version.
func (AccountDataTable) UpsertIfVersion(ctx context.Context, q sqlutil.Querier, localpart, roomID, typ, content string, expected int64) (int64, bool, error) {
	var v int64
	var err error
	if expected == 0 {
		err = q.QueryRowContext(ctx, `INSERT INTO userapi_account_data (localpart, room_id, type, content, version)
			VALUES ($1, $2, $3, $4, 1) ON CONFLICT (localpart, room_id, type) DO NOTHING RETURNING version`,
			localpart, roomID, typ, content).Scan(&v)
	} else {
		err = q.QueryRowContext(ctx, `UPDATE userapi_account_data SET content = $4, version = version + 1
			WHERE localpart = $1 AND room_id = $2 AND type = $3 AND version = $5 RETURNING version`,
			localpart, roomID, typ, content, expected).Scan(&v)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("swap account data %s of %s in %q: %w", typ, localpart, roomID, err)
	}
	return v, true, nil
}
