package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// The tokens themselves (uses allowed, expiry) are configuration; only how
// often each has been used is state, shared by every clientapi process.
const registrationTokensSchema = `CREATE TABLE userapi_registration_tokens (
	token     TEXT PRIMARY KEY,
	completed BIGINT NOT NULL
)`

// RegistrationTokensTable is userapi_registration_tokens.
type RegistrationTokensTable struct{}

// Completed returns how many registrations used a token (0 for one never used).
func (RegistrationTokensTable) Completed(ctx context.Context, q sqlutil.Querier, token string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(completed), 0) FROM userapi_registration_tokens WHERE token = $1`, token).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("select registration token uses: %w", err)
	}
	return n, nil
}

// Use counts one use of a token if it has fewer than limit (limit <= 0: no
// limit). The check and the increment are one statement, so concurrent
// registrations cannot overdraw a token; false when it is used up.
func (RegistrationTokensTable) Use(ctx context.Context, q sqlutil.Querier, token string, limit int64) (bool, error) {
	if limit <= 0 {
		limit = 1<<63 - 1
	}
	res, err := q.ExecContext(ctx, `INSERT INTO userapi_registration_tokens (token, completed) SELECT $1, 1 WHERE CAST($2 AS BIGINT) > 0
		ON CONFLICT (token) DO UPDATE SET completed = userapi_registration_tokens.completed + 1
		WHERE userapi_registration_tokens.completed < CAST($2 AS BIGINT)`, token, limit)
	if err != nil {
		return false, fmt.Errorf("use registration token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use registration token: rows affected: %w", err)
	}
	return n == 1, nil
}

// Release gives a use back (the registration it was taken for failed).
func (RegistrationTokensTable) Release(ctx context.Context, q sqlutil.Querier, token string) error {
	_, err := q.ExecContext(ctx, `UPDATE userapi_registration_tokens SET completed = completed - 1 WHERE token = $1 AND completed > 0`, token)
	if err != nil {
		return fmt.Errorf("release registration token: %w", err)
	}
	return nil
}
