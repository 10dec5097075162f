// Package storage holds the clientapi's only durable data: transaction ids,
// so a retried PUT /send returns the first request's event.
package storage

import (
	"context"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Storage is the clientapi database.
type Storage struct {
	DB   *sqlutil.DB
	Txns TxnsTable
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
