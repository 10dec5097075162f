// Package storage holds the userapi tables: accounts, devices (access tokens
// stored only as SHA-256 hashes), profiles, user-interactive auth sessions
// and shared-secret registration nonces. Each table is a small type in its
// own <table>_table.go whose methods take a sqlutil.Querier, so they run
// inside or outside a transaction.
package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// ErrNotFound is returned (wrapped) by Select methods when no row matches.
var ErrNotFound = errors.New("not found")

// Storage is the userapi database and its tables.
type Storage struct {
	DB          *sqlutil.DB
	Accounts    AccountsTable
	Devices     DevicesTable
	Profiles    ProfilesTable
	UIASessions UIASessionsTable
	Nonces      NoncesTable
	AccountData AccountDataTable
	Filters     FiltersTable
	// RegTokens counts registration token uses; LoginTokens are m.login.token.
	RegTokens   RegistrationTokensTable
	LoginTokens LoginTokensTable
	// Push is push rules, pushers and notifications (push_rules_table.go).
	Push PushTables
}

// migrations is the userapi schema history; released entries never change.
var migrations = []sqlutil.Migration{
	{Version: 1, Name: "accounts, devices, profiles, uia sessions, registration nonces", Up: sqlutil.Exec(
		sqlutil.Static(accountsSchema),
		devicesSchema, sqlutil.Static(devicesTokenIndex),
		sqlutil.Static(profilesSchema),
		sqlutil.Static(uiaSessionsSchema), sqlutil.Static(uiaSessionsCreatedIndex),
		sqlutil.Static(noncesSchema), sqlutil.Static(noncesCreatedIndex),
	)},
	{Version: 2, Name: "account data, filters, refresh tokens", Up: sqlutil.Exec(
		sqlutil.Static(accountDataSchema),
		filtersSchema, sqlutil.Static(filtersHashIndex),
		sqlutil.Static(devicesAddExpiry), devicesAddRefresh, sqlutil.Static(devicesAddLastSeen),
		sqlutil.Static(devicesRefreshIndex),
	)},
	{Version: 3, Name: "registration token uses, login tokens", Up: sqlutil.Exec(
		sqlutil.Static(registrationTokensSchema),
		loginTokensSchema, sqlutil.Static(loginTokensExpiresIndex),
	)},
}

// Open applies the userapi migrations to db and returns its tables.
func Open(ctx context.Context, db *sqlutil.DB) (*Storage, error) {
	if err := sqlutil.Migrate(ctx, db, "userapi", migrations); err != nil {
		return nil, fmt.Errorf("userapi migrations: %w", err)
	}
	push, err := OpenPush(ctx, db)
	if err != nil {
		return nil, err
	}
	return &Storage{DB: db, Accounts: AccountsTable{d: db.Dialect}, Devices: DevicesTable{d: db.Dialect}, Push: push}, nil
}
