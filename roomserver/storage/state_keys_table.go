package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func stateKeysSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_state_keys (
	tuple_nid  ` + d.ID() + `,
	event_type TEXT NOT NULL,
	state_key  TEXT NOT NULL,
	UNIQUE (event_type, state_key)
)`
}

// Tuple is a (type, state_key) pair.
type Tuple struct{ Type, StateKey string }

// StateKeysTable is roomserver_state_keys: numeric ids for (type,
// state_key) pairs, shared by every room, so snapshots store numbers.
type StateKeysTable struct {
	d sqlutil.Dialect
	c *caches // nil: no cache
}

// Assign returns the nid of a tuple, creating it if needed.
//
// Tuples are shared by all rooms ((m.room.name, "") by every one), so
// Assign must not lock an existing row: an upsert did, which serialised
// every transaction setting the same kind of state and, on PostgreSQL,
// deadlocked transactions that took two tuples in opposite orders. It reads
// first and inserts only a tuple never seen; a concurrent insert of the
// same one makes the insert return nothing, and the read is repeated.
func (t StateKeysTable) Assign(ctx context.Context, q sqlutil.Querier, tu Tuple) (int64, error) {
	if t.c != nil {
		if nid, ok := t.c.tuples.Get(tu); ok {
			return nid, nil
		}
	}
	const sel = `SELECT tuple_nid FROM roomserver_state_keys WHERE event_type = $1 AND state_key = $2`
	var nid int64
	err := q.QueryRowContext(ctx, sel, tu.Type, tu.StateKey).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		err = q.QueryRowContext(ctx, `INSERT INTO roomserver_state_keys (event_type, state_key) VALUES ($1, $2)
			ON CONFLICT (event_type, state_key) DO NOTHING RETURNING tuple_nid`, tu.Type, tu.StateKey).Scan(&nid)
		if errors.Is(err, sql.ErrNoRows) {
			err = q.QueryRowContext(ctx, sel, tu.Type, tu.StateKey).Scan(&nid)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("assign state key (%s, %s): %w", tu.Type, tu.StateKey, err)
	}
	if t.c != nil && committed(q) {
		t.c.tuples.Put(tu, nid)
	}
	return nid, nil
}

// Committed records tuple numbers the caller's transaction read or
// assigned and has since committed (see SnapshotsTable.Committed).
func (t StateKeysTable) Committed(nids map[Tuple]int64) {
	if t.c == nil {
		return
	}
	for tu, nid := range nids {
		t.c.tuples.Put(tu, nid)
	}
}

// Lookup returns the nids of tuples that have one (absent tuples are left out).
//
// One query for all tuples (the auth events of an event are 4-6 of them,
// each a round trip on PostgreSQL when asked one by one): it selects every
// stored pair of the listed types and the listed state keys, served by the
// (event_type, state_key) index, and keeps the pairs asked for. The extra
// pairs are few: the types asked together are a handful.
func (t StateKeysTable) Lookup(ctx context.Context, q sqlutil.Querier, tuples []Tuple) (map[Tuple]int64, error) {
	out := make(map[Tuple]int64, len(tuples))
	if t.c != nil {
		missing := tuples[:0:0]
		for _, tu := range tuples {
			if nid, ok := t.c.tuples.Get(tu); ok {
				out[tu] = nid
			} else {
				missing = append(missing, tu)
			}
		}
		tuples = missing
	}
	if len(tuples) == 0 {
		return out, nil
	}
	cache := t.c != nil && committed(q)
	wanted := make(map[Tuple]bool, len(tuples))
	var types, keys []string
	seenType, seenKey := map[string]bool{}, map[string]bool{}
	for _, tu := range tuples {
		wanted[tu] = true
		if !seenType[tu.Type] {
			seenType[tu.Type] = true
			types = append(types, tu.Type)
		}
		if !seenKey[tu.StateKey] {
			seenKey[tu.StateKey] = true
			keys = append(keys, tu.StateKey)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT tuple_nid, event_type, state_key FROM roomserver_state_keys WHERE `+
		t.d.In("event_type", 1)+` AND `+t.d.In("state_key", 2), t.d.List(types), t.d.List(keys))
	if err != nil {
		return nil, fmt.Errorf("look up %d state keys: %w", len(tuples), err)
	}
	defer rows.Close()
	for rows.Next() {
		var nid int64
		var tu Tuple
		if err := rows.Scan(&nid, &tu.Type, &tu.StateKey); err != nil {
			return nil, fmt.Errorf("look up state keys: %w", err)
		}
		if wanted[tu] {
			out[tu] = nid
			if cache {
				t.c.tuples.Put(tu, nid)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up state keys: %w", err)
	}
	return out, nil
}

// Tuples resolves nids back to tuples.
func (t StateKeysTable) Tuples(ctx context.Context, q sqlutil.Querier, nids []int64) (map[int64]Tuple, error) {
	out := make(map[int64]Tuple, len(nids))
	if len(nids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT tuple_nid, event_type, state_key FROM roomserver_state_keys WHERE `+t.d.In("tuple_nid", 1), t.d.List(nids))
	if err != nil {
		return nil, fmt.Errorf("select state keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var nid int64
		var tu Tuple
		if err := rows.Scan(&nid, &tu.Type, &tu.StateKey); err != nil {
			return nil, err
		}
		out[nid] = tu
	}
	return out, rows.Err()
}
