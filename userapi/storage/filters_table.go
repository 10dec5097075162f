package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func filtersSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_filters (
	localpart   TEXT NOT NULL,
	-- Numbered per user from 1: short ids that never start with '{', so
	-- /sync can tell an id from an inline filter.
	filter_id   BIGINT NOT NULL,
	filter      TEXT NOT NULL,
	-- SHA-256 of filter: indexed instead of the text, which may be longer
	-- than a PostgreSQL index entry can be.
	filter_hash ` + d.Bytes() + ` NOT NULL,
	PRIMARY KEY (localpart, filter_id)
)`
}

// Clients upload the same filter at every start; the index finds the one
// they uploaded before, so the table grows with distinct filters only.
const filtersHashIndex = `CREATE INDEX userapi_filters_hash ON userapi_filters (localpart, filter_hash)`

// FiltersTable is userapi_filters.
type FiltersTable struct{}

// Insert stores filter and returns its id, reusing the id of an identical
// filter of the same user. Run it in a transaction: two concurrent inserts
// may pick the same next id, and then one fails with a unique violation
// that the caller retries.
func (FiltersTable) Insert(ctx context.Context, q sqlutil.Querier, localpart, filter string) (int64, error) {
	var id int64
	sum := sha256.Sum256([]byte(filter))
	hash := sum[:]
	err := q.QueryRowContext(ctx, `SELECT filter_id FROM userapi_filters WHERE localpart = $1 AND filter_hash = $2 AND filter = $3`,
		localpart, hash, filter).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("find filter of %s: %w", localpart, err)
	}
	err = q.QueryRowContext(ctx, `INSERT INTO userapi_filters (localpart, filter_id, filter, filter_hash)
		SELECT $1, COALESCE(MAX(filter_id), 0) + 1, $2, $3 FROM userapi_filters WHERE localpart = $1
		RETURNING filter_id`, localpart, filter, hash).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert filter of %s: %w", localpart, err)
	}
	return id, nil
}

// Select returns a filter or an error wrapping ErrNotFound.
func (FiltersTable) Select(ctx context.Context, q sqlutil.Querier, localpart string, id int64) (string, error) {
	var f string
	err := q.QueryRowContext(ctx, `SELECT filter FROM userapi_filters WHERE localpart = $1 AND filter_id = $2`, localpart, id).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("select filter %d of %s: %w", id, localpart, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("select filter %d of %s: %w", id, localpart, err)
	}
	return f, nil
}
