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
	"encoding/json"
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
	Members   MembershipTable
	Redacts   RedactionsTable
	Aliases   AliasesTable
	Published PublishedTable
	Reports   ReportsTable
	Txns      TxnsTable
	// Deferred defers the commits of room input on PostgreSQL (nil on
	// SQLite, or until set): see sqlutil.DeferredCommits.
	Deferred *sqlutil.DeferredCommits
}

var migrations = []sqlutil.Migration{
	{Version: 1, Name: "initial tables", Up: sqlutil.Exec(roomsSchema, eventsSchema, eventsIndexes, stateKeysSchema, snapshotsSchema)},
	{Version: 2, Name: "memberships, redactions, aliases, directory, reports", Up: migrateRoomsArea},
	{Version: 3, Name: "client transaction ids", Up: sqlutil.Exec(sqlutil.Static(txnsSchema))},
	{Version: 4, Name: "head guard of pipelined input", Up: sqlutil.Exec(headMovedFunction)},
}

// Open migrates db and returns the tables.
func Open(ctx context.Context, db *sqlutil.DB) (*Storage, error) {
	if err := sqlutil.Migrate(ctx, db, "roomserver", migrations); err != nil {
		return nil, err
	}
	d, c := db.Dialect, newCaches()
	return &Storage{DB: db, Rooms: RoomsTable{d}, Events: EventsTable{d}, StateKeys: StateKeysTable{d, c}, Snapshots: SnapshotsTable{d, c},
		Members: MembershipTable{d}, Redacts: RedactionsTable{d}, Aliases: AliasesTable{d}, Published: PublishedTable{d}, Reports: ReportsTable{d}}, nil
}

// ForgetCached drops the cached snapshots and state-key tuples: commits
// they were read from may have been lost (sqlutil.ErrCommitsLost).
func (s *Storage) ForgetCached() {
	if c := s.StateKeys.c; c != nil {
		c.snapshots.Clear()
		c.tuples.Clear()
	}
}

// InTx runs f in a write transaction.
func (s *Storage) InTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	if err := s.DB.InTx(ctx, f); err != nil {
		return fmt.Errorf("roomserver transaction: %w", err)
	}
	return nil
}

// migrateRoomsArea creates the tables of version 2 and fills the membership
// table from the current state of the rooms that already exist.
func migrateRoomsArea(ctx context.Context, tx *sql.Tx, d sqlutil.Dialect) error {
	create := sqlutil.Exec(membershipSchema, membershipIndexes, redactionsSchema, redactionsIndexes,
		aliasesSchema, aliasesIndexes, publishedSchema, reportsSchema)
	if err := create(ctx, tx, d); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT room_nid, snapshot_nid FROM roomserver_rooms`)
	if err != nil {
		return fmt.Errorf("select rooms: %w", err)
	}
	type room struct{ nid, snapshot int64 }
	var rooms []room
	for rows.Next() {
		var r room
		if err := rows.Scan(&r.nid, &r.snapshot); err != nil {
			rows.Close()
			return fmt.Errorf("scan room: %w", err)
		}
		rooms = append(rooms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ev, mt := EventsTable{d}, MembershipTable{d}
	for _, r := range rooms {
		state, err := SnapshotsTable{d: d}.Load(ctx, tx, r.snapshot)
		if err != nil {
			return err
		}
		nids := make([]int64, 0, len(state))
		for _, e := range state {
			nids = append(nids, e)
		}
		evs, err := ev.SelectByNIDs(ctx, tx, nids)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if m, ok := MemberOf(e.JSON); ok {
				if err := mt.Upsert(ctx, tx, Member{RoomNID: r.nid, UserID: m.UserID, Membership: m.Membership, EventNID: e.NID}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// MemberOf reads the user and membership of an m.room.member event's JSON;
// ok is false for other events.
func MemberOf(raw []byte) (m Member, ok bool) {
	var e struct {
		Type     string  `json:"type"`
		StateKey *string `json:"state_key"`
		Content  struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Type != "m.room.member" || e.StateKey == nil {
		return Member{}, false
	}
	return Member{UserID: *e.StateKey, Membership: e.Content.Membership}, true
}
