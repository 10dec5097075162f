// Package storage holds the syncapi's tables: its own copy of every room
// event the roomserver accepted, numbered by stream position, and the room
// state those events built, kept both as the current state and as a history
// of changes so that /sync can read the state of a room at any position.
//
// Positions come from a counter row per stream (stream_positions_table.go)
// that the writing transaction increments: the row lock orders the writers,
// so positions commit in increasing order and a reader that sees position P
// also sees every position below it. That is what lets /sync bound all its
// reads by one position and hand it out as next_batch without missing an
// event committed late.
package storage

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Storage is the syncapi database.
type Storage struct {
	DB           *sqlutil.DB
	Positions    StreamPositionsTable
	Events       OutputRoomEventsTable
	CurrentState CurrentRoomStateTable
	Deltas       StateDeltasTable
	AccountData  AccountDataTable
	Receipts     ReceiptsTable
	Presence     PresenceTable
	Counts       NotificationCountsTable
	Relations    RelationsTable
	Search       SearchTable
}

var migrations = []sqlutil.Migration{
	{Version: 1, Name: "room events and state", Up: sqlutil.Exec(
		streamPositionsSchema,
		outputRoomEventsSchema, outputRoomEventsIndexes,
		currentRoomStateSchema, currentRoomStateIndexes,
		stateDeltasSchema, stateDeltasIndexes,
	)},
	{Version: 2, Name: "account data, receipts, presence, notification counts", Up: sqlutil.Exec(
		accountDataSchema, accountDataIndexes, receiptsSchema, receiptsIndexes,
		presenceSchema, presenceIndexes, notificationCountsSchema,
	)},
	{Version: 3, Name: "event timestamps (timestamp_to_event)", Up: addOriginServerTS},
	{Version: 4, Name: "relations and the search index", Up: func(ctx context.Context, tx *sql.Tx, d sqlutil.Dialect) error {
		err := sqlutil.Exec(relationsSchema, relationsParentIndex, relationsRoomIndex, searchSchema, searchIndexes)(ctx, tx, d)
		if err != nil {
			return err
		}
		return indexStoredEvents(ctx, tx, d)
	}},
}

// Open migrates db and returns the tables.
func Open(ctx context.Context, db *sqlutil.DB) (*Storage, error) {
	if err := sqlutil.Migrate(ctx, db, "syncapi", migrations); err != nil {
		return nil, err
	}
	d := db.Dialect
	return &Storage{
		DB:           db,
		Positions:    StreamPositionsTable{d},
		Events:       OutputRoomEventsTable{d},
		CurrentState: CurrentRoomStateTable{d},
		Deltas:       StateDeltasTable{d},
		AccountData:  AccountDataTable{d},
		Receipts:     ReceiptsTable{d},
		Presence:     PresenceTable{d},
		Counts:       NotificationCountsTable{d},
		Relations:    RelationsTable{d},
		Search:       SearchTable{d},
	}, nil
}

// InTx runs f in a write transaction.
func (s *Storage) InTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	if err := s.DB.InTx(ctx, f); err != nil {
		return fmt.Errorf("syncapi transaction: %w", err)
	}
	return nil
}

// Tuple names one piece of room state.
type Tuple struct {
	Type     string
	StateKey string
}

// MemberEvent is the event type whose state holds memberships.
const MemberEvent = "m.room.member"
