package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const accountsSchema = `CREATE TABLE userapi_accounts (
	-- Stored as given: the caller validated (and lowercased) it, and lookups are exact.
	localpart     TEXT PRIMARY KEY,
	-- bcrypt hash; the empty string means the account cannot log in with a password.
	password_hash TEXT NOT NULL,
	account_type  TEXT NOT NULL,
	admin         BOOLEAN NOT NULL DEFAULT FALSE,
	deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
	created_ms    BIGINT NOT NULL
)`

// Account is a row of userapi_accounts.
type Account struct {
	Localpart    string
	PasswordHash string
	AccountType  string
	Admin        bool
	Deactivated  bool
	CreatedMS    int64
}

// AccountsTable is userapi_accounts.
type AccountsTable struct{ d sqlutil.Dialect }

// Insert creates an account. It reports false, without error, when the
// localpart is taken: ON CONFLICT DO NOTHING keeps a PostgreSQL transaction
// usable, where a unique violation would abort it.
func (AccountsTable) Insert(ctx context.Context, q sqlutil.Querier, a Account) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO userapi_accounts (localpart, password_hash, account_type, admin, deactivated, created_ms)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (localpart) DO NOTHING`,
		a.Localpart, a.PasswordHash, a.AccountType, a.Admin, a.Deactivated, a.CreatedMS)
	if err != nil {
		return false, fmt.Errorf("insert account %s: %w", a.Localpart, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert account %s: rows affected: %w", a.Localpart, err)
	}
	return n == 1, nil
}

// Select returns the account of localpart, or an error wrapping ErrNotFound.
func (AccountsTable) Select(ctx context.Context, q sqlutil.Querier, localpart string) (Account, error) {
	a := Account{Localpart: localpart}
	err := q.QueryRowContext(ctx, `SELECT password_hash, account_type, admin, deactivated, created_ms
		FROM userapi_accounts WHERE localpart = $1`, localpart).
		Scan(&a.PasswordHash, &a.AccountType, &a.Admin, &a.Deactivated, &a.CreatedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("select account %s: %w", localpart, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("select account %s: %w", localpart, err)
	}
	return a, nil
}

// Exists reports whether an account (deactivated or not) holds localpart.
func (AccountsTable) Exists(ctx context.Context, q sqlutil.Querier, localpart string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM userapi_accounts WHERE localpart = $1`, localpart).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check account %s: %w", localpart, err)
	}
	return n > 0, nil
}

// UpdatePassword sets the password hash of a live account. It returns an
// error wrapping ErrNotFound if there is none.
func (AccountsTable) UpdatePassword(ctx context.Context, q sqlutil.Querier, localpart, hash string) error {
	res, err := q.ExecContext(ctx, `UPDATE userapi_accounts SET password_hash = $2 WHERE localpart = $1 AND deactivated = FALSE`,
		localpart, hash)
	if err != nil {
		return fmt.Errorf("update password of %s: %w", localpart, err)
	}
	return oneRow(res, "update password of "+localpart)
}

// SelectTypes returns the account type of each of localparts that has an
// account (deactivated or not); the others are left out.
func (t AccountsTable) SelectTypes(ctx context.Context, q sqlutil.Querier, localparts []string) (map[string]string, error) {
	out := make(map[string]string, len(localparts))
	if len(localparts) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT localpart, account_type FROM userapi_accounts WHERE `+t.d.In("localpart", 1),
		t.d.List(localparts))
	if err != nil {
		return nil, fmt.Errorf("select account types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var local, typ string
		if err := rows.Scan(&local, &typ); err != nil {
			return nil, fmt.Errorf("select account types: %w", err)
		}
		out[local] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select account types: %w", err)
	}
	return out, nil
}

// UpgradeGuest makes the live guest account of localpart a user account
// with the password hash. The condition on the type makes two concurrent
// upgrades of one guest succeed once. It returns an error wrapping
// ErrNotFound if there is no live guest account of localpart.
func (AccountsTable) UpgradeGuest(ctx context.Context, q sqlutil.Querier, localpart, hash, guestType, userType string) error {
	res, err := q.ExecContext(ctx, `UPDATE userapi_accounts SET account_type = $3, password_hash = $2
		WHERE localpart = $1 AND account_type = $4 AND deactivated = FALSE`, localpart, hash, userType, guestType)
	if err != nil {
		return fmt.Errorf("upgrade guest %s: %w", localpart, err)
	}
	return oneRow(res, "upgrade guest "+localpart)
}

// Deactivate marks an account deactivated and clears its password. It
// returns an error wrapping ErrNotFound if there is no such account.
func (AccountsTable) Deactivate(ctx context.Context, q sqlutil.Querier, localpart string) error {
	res, err := q.ExecContext(ctx, `UPDATE userapi_accounts SET deactivated = TRUE, password_hash = '' WHERE localpart = $1`, localpart)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", localpart, err)
	}
	return oneRow(res, "deactivate "+localpart)
}

// oneRow turns "no row affected" into an error wrapping ErrNotFound.
func oneRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: rows affected: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
