package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// userapi_push_rooms numbers the rooms with notifications, so that a
// notification row carries a small integer rather than the room id.
func pushRoomsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_push_rooms (
	id      ` + d.ID() + `,
	room_id TEXT NOT NULL UNIQUE
)`
}

const pushRoomsFromV1 = `INSERT INTO userapi_push_rooms (room_id) SELECT DISTINCT room_id FROM userapi_notifications`

// NumberTable is one of the tables that number the strings of
// notification rows (userapi_push_rooms, _actions, _users): a row carries
// a small integer rather than the string.
type NumberTable struct {
	d          sqlutil.Dialect
	table, col string // constants of this package
}

// NID returns val's number, assigning one the first time. It is meant for
// a cache: a number never changes.
func (t NumberTable) NID(ctx context.Context, q sqlutil.Querier, val string) (int64, error) {
	nid, err := t.assign(ctx, q, val)
	if err != nil {
		return 0, fmt.Errorf("number %q in %s: %w", val, t.table, err)
	}
	return nid, nil
}

// NIDs returns the numbers of vals, assigning the missing ones: one
// statement for those numbered already (a cold cache after a restart, in a
// large room), one more per new value (its insert).
func (t NumberTable) NIDs(ctx context.Context, q sqlutil.Querier, vals []string) (map[string]int64, error) {
	out := make(map[string]int64, len(vals))
	if len(vals) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT `+t.col+`, id FROM `+t.table+` WHERE `+t.d.In(t.col, 1), t.d.List(vals))
	if err != nil {
		return nil, fmt.Errorf("number %d values in %s: %w", len(vals), t.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var id int64
		if err := rows.Scan(&v, &id); err != nil {
			return nil, fmt.Errorf("number values in %s: %w", t.table, err)
		}
		out[v] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("number values in %s: %w", t.table, err)
	}
	rows.Close()
	for _, v := range vals {
		if _, ok := out[v]; !ok {
			if out[v], err = t.insert(ctx, q, v); err != nil {
				return nil, fmt.Errorf("number %q in %s: %w", v, t.table, err)
			}
		}
	}
	return out, nil
}

// assign returns val's number, inserting its row the first time. It reads
// first and inserts only a value never seen: an upsert would lock and
// rewrite an existing row every time (see the roomserver's
// StateKeysTable.Assign).
func (t NumberTable) assign(ctx context.Context, q sqlutil.Querier, val string) (int64, error) {
	var nid int64
	err := q.QueryRowContext(ctx, `SELECT id FROM `+t.table+` WHERE `+t.col+` = $1`, val).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		return t.insert(ctx, q, val)
	}
	return nid, err
}

// insert numbers val, read as not numbered yet: the row is inserted, or
// read when a concurrent insert of the same value came first (the insert
// then returns nothing).
func (t NumberTable) insert(ctx context.Context, q sqlutil.Querier, val string) (int64, error) {
	var nid int64
	err := q.QueryRowContext(ctx, `INSERT INTO `+t.table+` (`+t.col+`) VALUES ($1) ON CONFLICT (`+t.col+`) DO NOTHING RETURNING id`, val).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		err = q.QueryRowContext(ctx, `SELECT id FROM `+t.table+` WHERE `+t.col+` = $1`, val).Scan(&nid)
	}
	return nid, err
}
