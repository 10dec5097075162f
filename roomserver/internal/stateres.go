package internal

import (
	"context"
	"database/sql"

	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/storage"
)

// resolveConflicts runs the room version's state resolution over states
// that disagree.
func (r *Roomserver) resolveConflicts(ctx context.Context, tx *sql.Tx, v *event.RoomVersion, states []storage.State) (storage.State, error) {
	return nil, reject("conflicting state needs state resolution, which this server cannot run yet")
}
