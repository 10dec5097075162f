package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func snapshotsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_state_snapshots (
	snapshot_nid ` + d.ID() + `,
	room_nid     BIGINT NOT NULL,
	-- 0 for a full snapshot; otherwise entries are changes on top of the parent.
	parent_nid   BIGINT NOT NULL DEFAULT 0,
	-- How many deltas lie between this snapshot and a full one.
	generation   INTEGER NOT NULL DEFAULT 0,
	-- Sorted (tuple_nid, event_nid) pairs as uvarints; event_nid 0 removes the tuple.
	entries      ` + d.Bytes() + ` NOT NULL
)`
}

// State maps tuple nids to event nids.
type State map[int64]int64

// maxGeneration bounds the delta chain: loading a snapshot reads at most this
// many rows, and every this many changes a full copy is written.
const maxGeneration = 16

// SnapshotsTable is roomserver_state_snapshots.
type SnapshotsTable struct {
	d sqlutil.Dialect
	c *caches // nil: no cache
}

// Insert stores state as a delta on parent (or as a full snapshot when the
// chain is long or there is no parent) and returns the new snapshot nid.
func (t SnapshotsTable) Insert(ctx context.Context, q sqlutil.Querier, roomNID, parentNID int64, parentState, state State) (int64, error) {
	gen := 0
	if parentNID != 0 {
		if err := q.QueryRowContext(ctx, `SELECT generation FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, parentNID).Scan(&gen); err != nil {
			return 0, fmt.Errorf("select snapshot %d: %w", parentNID, err)
		}
		gen++
	}
	var entries State
	if parentNID == 0 || gen >= maxGeneration {
		parentNID, gen, entries = 0, 0, state
	} else {
		entries = State{}
		for k, v := range state {
			if parentState[k] != v {
				entries[k] = v
			}
		}
		for k := range parentState {
			if _, ok := state[k]; !ok {
				entries[k] = 0
			}
		}
	}
	var nid int64
	err := q.QueryRowContext(ctx, `INSERT INTO roomserver_state_snapshots (room_nid, parent_nid, generation, entries)
		VALUES ($1, $2, $3, $4) RETURNING snapshot_nid`, roomNID, parentNID, gen, encode(entries)).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("insert snapshot: %w", err)
	}
	return nid, nil
}

// loadChain reads a snapshot and its ancestors up to a full one, nearest
// first, in one query: a loop of one query per link cost up to
// maxGeneration round trips per load on PostgreSQL. The depth bound only
// stops a corrupt (cyclic) chain; Load reports a chain that does not end.
const loadChain = `WITH RECURSIVE chain (snapshot_nid, parent_nid, entries, depth) AS (
		SELECT snapshot_nid, parent_nid, entries, 0 FROM roomserver_state_snapshots WHERE snapshot_nid = $1
		UNION ALL
		SELECT s.snapshot_nid, s.parent_nid, s.entries, chain.depth + 1
		FROM roomserver_state_snapshots s JOIN chain ON s.snapshot_nid = chain.parent_nid
		WHERE chain.depth < $2
	) SELECT snapshot_nid, parent_nid, entries FROM chain ORDER BY depth`

// Committed records snapshots the caller's transaction wrote or read and
// has since committed: rows read or written inside a transaction are not
// cached before (see cache.go), and the input path reads snapshots only
// inside its transactions, so without this each send would load its prev
// event's state from the database again. The states must not be modified
// afterwards.
func (t SnapshotsTable) Committed(states map[int64]State) {
	if t.c == nil {
		return
	}
	for nid, s := range states {
		if nid != 0 && s != nil {
			t.c.snapshots.Put(nid, s)
		}
	}
}

// Load returns the full state of a snapshot; snapshot 0 is the empty state.
// The State may be shared with other callers: it must not be modified.
func (t SnapshotsTable) Load(ctx context.Context, q sqlutil.Querier, nid int64) (State, error) {
	if nid == 0 {
		return State{}, nil
	}
	if t.c != nil {
		if s, ok := t.c.snapshots.Get(nid); ok {
			return s, nil
		}
	}
	rows, err := q.QueryContext(ctx, loadChain, nid, 2*maxGeneration)
	if err != nil {
		return nil, fmt.Errorf("select snapshot %d: %w", nid, err)
	}
	defer rows.Close()
	var chain [][]byte
	want := nid // each row must be the parent of the one before
	for rows.Next() {
		var cur, parent int64
		var entries []byte
		if err := rows.Scan(&cur, &parent, &entries); err != nil {
			return nil, fmt.Errorf("select snapshot %d: %w", nid, err)
		}
		if cur != want {
			return nil, fmt.Errorf("snapshot %d: chain broken at %d (want %d)", nid, cur, want)
		}
		chain = append(chain, entries)
		want = parent
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select snapshot %d: %w", nid, err)
	}
	if want != 0 {
		// The first missing link (the snapshot itself when chain is empty).
		return nil, fmt.Errorf("snapshot %d: %w", want, ErrNotFound)
	}
	state := State{}
	for i := len(chain) - 1; i >= 0; i-- {
		if err := decodeInto(chain[i], state); err != nil {
			return nil, fmt.Errorf("decode snapshot %d: %w", nid, err)
		}
	}
	if t.c != nil && committed(q) {
		t.c.snapshots.Put(nid, state)
	}
	return state, nil
}

func encode(s State) []byte {
	keys := make([]int64, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, len(keys)*6)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(k))
		b = binary.AppendUvarint(b, uint64(s[k]))
	}
	return b
}

func decodeInto(b []byte, s State) error {
	for len(b) > 0 {
		k, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad tuple varint")
		}
		b = b[n:]
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad event varint")
		}
		b = b[n:]
		if v == 0 {
			delete(s, int64(k))
		} else {
			s[int64(k)] = int64(v)
		}
	}
	return nil
}
