package internal

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/stateres"
	"github.com/axon-hs/axon/roomserver/storage"
)

// resolveConflicts runs the room version's state resolution over states
// that disagree, translating between numeric ids and event ids.
func (r *Roomserver) resolveConflicts(ctx context.Context, tx *sql.Tx, v *event.RoomVersion, states []storage.State) (storage.State, error) {
	var tupleNIDs, eventNIDs []int64
	for _, s := range states {
		for t, e := range s {
			tupleNIDs = append(tupleNIDs, t)
			eventNIDs = append(eventNIDs, e)
		}
	}
	tuples, err := r.st.StateKeys.Tuples(ctx, tx, tupleNIDs)
	if err != nil {
		return nil, err
	}
	rows, err := r.st.Events.SelectByNIDs(ctx, tx, eventNIDs)
	if err != nil {
		return nil, err
	}
	idOf := make(map[int64]matrix.EventID, len(rows))
	nidOf := make(map[matrix.EventID]int64, len(rows))
	for _, row := range rows {
		idOf[row.NID] = matrix.EventID(row.EventID)
		nidOf[matrix.EventID(row.EventID)] = row.NID
	}
	maps := make([]stateres.StateMap, len(states))
	for i, s := range states {
		m := make(stateres.StateMap, len(s))
		for t, e := range s {
			tu, ok := tuples[t]
			if !ok {
				return nil, fmt.Errorf("state key %d is unknown", t)
			}
			m[stateres.StateKey{Type: tu.Type, StateKey: tu.StateKey}] = idOf[e]
		}
		maps[i] = m
	}
	resolved, err := stateres.Resolve(ctx, v, maps, &txEvents{r: r, tx: tx, v: v})
	if err != nil {
		return nil, fmt.Errorf("resolve state: %w", err)
	}
	out := make(storage.State, len(resolved))
	for k, id := range resolved {
		t, err := r.st.StateKeys.Assign(ctx, tx, storage.Tuple{Type: k.Type, StateKey: k.StateKey})
		if err != nil {
			return nil, err
		}
		nid, ok := nidOf[id]
		if !ok {
			got, err := r.st.Events.SelectByIDs(ctx, tx, []string{string(id)})
			if err != nil {
				return nil, err
			}
			if len(got) == 0 {
				return nil, fmt.Errorf("resolved state names unknown event %s", id)
			}
			nid = got[0].NID
		}
		out[t] = nid
	}
	return out, nil
}

// txEvents loads events for state resolution inside the input transaction.
type txEvents struct {
	r  *Roomserver
	tx *sql.Tx
	v  *event.RoomVersion
}

func (e *txEvents) Event(ctx context.Context, id matrix.EventID) (*event.PDU, error) {
	rows, err := e.r.st.Events.SelectByIDs(ctx, e.tx, []string{string(id)})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("event %s is not stored", id)
	}
	return event.ParseStored(rows[0].JSON, e.v, matrix.EventID(rows[0].EventID))
}

func (e *txEvents) Rejected(ctx context.Context, id matrix.EventID) (bool, error) {
	rows, err := e.r.st.Events.SelectByIDs(ctx, e.tx, []string{string(id)})
	if err != nil || len(rows) == 0 {
		return false, err
	}
	return rows[0].Rejected, nil
}
