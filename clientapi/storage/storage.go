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

var migrations = []sqlutil.Migration{
	{Version: 1, Name: "transaction ids", Up: sqlutil.Exec(sqlutil.Static(txnsSchema), sqlutil.Static(txnsIndex))},
}

// Migrate brings db's schema up to date.
func Migrate(ctx context.Context, db *sqlutil.DB) error {
	return sqlutil.Migrate(ctx, db, "clientapi", migrations)
}
