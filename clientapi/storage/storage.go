// Package storage is the clientapi database. It holds nothing the server
// reads any more: the transaction ids of PUT /send and /redact, its only
// table, are recorded by the roomserver with the events they made (in the
// event's own transaction, so a send no longer waits for a commit here).
// The schema stays as released.
package storage

import (
	"context"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Storage is the clientapi database.
type Storage struct {
	DB *sqlutil.DB
}

var migrations = []sqlutil.Migration{
	{Version: 1, Name: "transaction ids", Up: sqlutil.Exec(sqlutil.Static(txnsSchema), sqlutil.Static(txnsIndex))},
}

// Open migrates db.
func Open(ctx context.Context, db *sqlutil.DB) (*Storage, error) {
	if err := sqlutil.Migrate(ctx, db, "clientapi", migrations); err != nil {
		return nil, err
	}
	return &Storage{DB: db}, nil
}
