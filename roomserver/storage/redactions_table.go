package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func redactionsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_redactions (
	redaction_event_id TEXT PRIMARY KEY,
	redacts_event_id   TEXT NOT NULL,
	-- TRUE once the redaction was applied to its target: a redaction can
	-- arrive before its target (federation), and is kept until both are here.
	validated          BOOLEAN NOT NULL DEFAULT FALSE
)`
}

func redactionsIndexes(sqlutil.Dialect) string {
	return `CREATE INDEX roomserver_redactions_redacts ON roomserver_redactions (redacts_event_id)`
}

// Redaction is a redactions row.
type Redaction struct {
	ID        string
	Redacts   string
	Validated bool
}

// RedactionsTable is roomserver_redactions.
type RedactionsTable struct{ d sqlutil.Dialect }

// Insert records a redaction; recording it again updates only validated.
func (t RedactionsTable) Insert(ctx context.Context, q sqlutil.Querier, r Redaction) error {
	_, err := q.ExecContext(ctx, `INSERT INTO roomserver_redactions (redaction_event_id, redacts_event_id, validated)
		VALUES ($1, $2, $3) ON CONFLICT (redaction_event_id) DO UPDATE SET validated = excluded.validated`, r.ID, r.Redacts, r.Validated)
	if err != nil {
		return fmt.Errorf("insert redaction %s: %w", r.ID, err)
	}
	return nil
}

// ValidatedFor returns the id of the validated redaction of an event, or
// ErrNotFound.
func (t RedactionsTable) ValidatedFor(ctx context.Context, q sqlutil.Querier, redacts string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT redaction_event_id FROM roomserver_redactions WHERE redacts_event_id = $1 AND validated = TRUE
		ORDER BY redaction_event_id LIMIT 1`, redacts).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("select redaction of %s: %w", redacts, err)
	}
	return id, nil
}
