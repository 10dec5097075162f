package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func aliasesSchema(sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_aliases (
	alias      TEXT PRIMARY KEY,
	room_id    TEXT NOT NULL,
	-- Who created the alias: they may delete it without power in the room.
	creator_id TEXT NOT NULL
)`
}

func aliasesIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX roomserver_aliases_room ON roomserver_aliases (room_id)`
}

// Alias is an aliases row.
type Alias struct {
	Alias, RoomID, Creator string
}

// AliasesTable is roomserver_aliases: the local room directory.
type AliasesTable struct{ d sqlutil.Dialect }

// Insert adds an alias; it reports false when the alias already exists.
func (t AliasesTable) Insert(ctx context.Context, q sqlutil.Querier, a Alias) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO roomserver_aliases (alias, room_id, creator_id) VALUES ($1, $2, $3)
		ON CONFLICT (alias) DO NOTHING`, a.Alias, a.RoomID, a.Creator)
	if err != nil {
		return false, fmt.Errorf("insert alias %s: %w", a.Alias, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Select loads an alias; ErrNotFound if it does not exist.
func (t AliasesTable) Select(ctx context.Context, q sqlutil.Querier, alias string) (Alias, error) {
	a := Alias{Alias: alias}
	err := q.QueryRowContext(ctx, `SELECT room_id, creator_id FROM roomserver_aliases WHERE alias = $1`, alias).Scan(&a.RoomID, &a.Creator)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("select alias %s: %w", alias, err)
	}
	return a, nil
}

// ByRoom lists a room's aliases, sorted.
func (t AliasesTable) ByRoom(ctx context.Context, q sqlutil.Querier, roomID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT alias FROM roomserver_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
	if err != nil {
		return nil, fmt.Errorf("select aliases of %s: %w", roomID, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("scan alias: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Delete removes an alias.
func (t AliasesTable) Delete(ctx context.Context, q sqlutil.Querier, alias string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM roomserver_aliases WHERE alias = $1`, alias); err != nil {
		return fmt.Errorf("delete alias %s: %w", alias, err)
	}
	return nil
}
