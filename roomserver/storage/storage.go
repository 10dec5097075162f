// Package storage holds the roomserver's tables: rooms, events, state keys
// and state snapshots.
//
// State is stored without copying it per event: events and (type,
// state_key) pairs get numeric ids, and a state snapshot is either a full
// list of (tuple, event) pairs or a delta on a parent snapshot, with a full
// copy every few generations so loading never walks far. Message events
// share the snapshot of their predecessor, so only state changes cost space.
package storage

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Storage is the roomserver database.
type Storage struct {
	DB        *sqlutil.DB
	Rooms     RoomsTable
	Events    EventsTable
	StateKeys StateKeysTable
	Snapshots SnapshotsTable
}

var migrations = []sqlutil.Migration{
	{Version: 1, Name: "initial tables", Up: sqlutil.Exec(roomsSchema, eventsSchema, eventsIndexes, stateKeysSchema, snapshotsSchema)},
}

// Open migrates db and returns the tables.
func Open(ctx context.Context, db *sqlutil.DB) (*Storage, error) {
	if err := sqlutil.Migrate(ctx, db, "roomserver", migrations); err != nil {
		return nil, err
	}
	d := db.Dialect
	return &Storage{DB: db, Rooms: RoomsTable{d}, Events: EventsTable{d}, StateKeys: StateKeysTable{d}, Snapshots: SnapshotsTable{d}}, nil
}

// InTx runs f in a write transaction.
func (s *Storage) InTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	if err := s.DB.InTx(ctx, f); err != nil {
		return fmt.Errorf("roomserver transaction: %w", err)
	}
	return nil
}
