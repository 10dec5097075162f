package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Login tokens (m.login.token) live in the database because the request
// that issues one and the login that uses it may reach different clientapi
// processes. Only the SHA-256 of a token is stored.
func loginTokensSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_login_tokens (
	token_hash ` + d.Bytes() + ` PRIMARY KEY,
	localpart  TEXT NOT NULL,
	expires_ms BIGINT NOT NULL
)`
}

const loginTokensExpiresIndex = `CREATE INDEX userapi_login_tokens_expires ON userapi_login_tokens (expires_ms)`

// LoginTokensTable is userapi_login_tokens.
type LoginTokensTable struct{}

// Insert stores a new login token's hash.
func (LoginTokensTable) Insert(ctx context.Context, q sqlutil.Querier, hash []byte, localpart string, expiresMS int64) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_login_tokens (token_hash, localpart, expires_ms) VALUES ($1, $2, $3)`, hash, localpart, expiresMS)
	if err != nil {
		return fmt.Errorf("insert login token of %s: %w", localpart, err)
	}
	return nil
}

// Consume deletes a token and returns its owner and expiry, or an error
// wrapping ErrNotFound. Reading and deleting are one statement, so a token
// logs in once even under concurrent use.
func (LoginTokensTable) Consume(ctx context.Context, q sqlutil.Querier, hash []byte) (string, int64, error) {
	var localpart string
	var expires int64
	err := q.QueryRowContext(ctx, `DELETE FROM userapi_login_tokens WHERE token_hash = $1 RETURNING localpart, expires_ms`, hash).
		Scan(&localpart, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("consume login token: %w", ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("consume login token: %w", err)
	}
	return localpart, expires, nil
}

// DeleteExpired removes tokens expired at nowMS.
func (LoginTokensTable) DeleteExpired(ctx context.Context, q sqlutil.Querier, nowMS int64) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM userapi_login_tokens WHERE expires_ms <= $1`, nowMS); err != nil {
		return fmt.Errorf("delete expired login tokens: %w", err)
	}
	return nil
}
