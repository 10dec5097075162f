package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Nonces live in the database rather than in memory because the GET that
// issues a nonce and the POST that uses it may reach different clientapi
// processes.
const noncesSchema = `CREATE TABLE userapi_registration_nonces (
	nonce      TEXT PRIMARY KEY,
	created_ms BIGINT NOT NULL
)`

const noncesCreatedIndex = `CREATE INDEX userapi_registration_nonces_created ON userapi_registration_nonces (created_ms)`

// NoncesTable is userapi_registration_nonces.
type NoncesTable struct{}

// Insert stores a freshly issued nonce.
func (NoncesTable) Insert(ctx context.Context, q sqlutil.Querier, nonce string, createdMS int64) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_registration_nonces (nonce, created_ms) VALUES ($1, $2)`, nonce, createdMS)
	if err != nil {
		return fmt.Errorf("insert registration nonce: %w", err)
	}
	return nil
}

// Consume deletes a nonce and returns its creation time, or an error
// wrapping ErrNotFound if there was none. The delete and the read are one
// statement, so of concurrent callers with the same nonce exactly one gets
// it; expired nonces are deleted too (the caller checks the age).
func (NoncesTable) Consume(ctx context.Context, q sqlutil.Querier, nonce string) (int64, error) {
	var created int64
	err := q.QueryRowContext(ctx, `DELETE FROM userapi_registration_nonces WHERE nonce = $1 RETURNING created_ms`, nonce).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("consume registration nonce: %w", ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("consume registration nonce: %w", err)
	}
	return created, nil
}

// DeleteCreatedBefore removes nonces created before beforeMS (expired ones)
// and returns how many went.
func (NoncesTable) DeleteCreatedBefore(ctx context.Context, q sqlutil.Querier, beforeMS int64) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM userapi_registration_nonces WHERE created_ms < $1`, beforeMS)
	if err != nil {
		return 0, fmt.Errorf("delete registration nonces created before %d: %w", beforeMS, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete registration nonces: rows affected: %w", err)
	}
	return n, nil
}
