package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const profilesSchema = `CREATE TABLE userapi_profiles (
	localpart    TEXT PRIMARY KEY,
	display_name TEXT NOT NULL DEFAULT '',
	avatar_url   TEXT NOT NULL DEFAULT ''
)`

// Profile is a row of userapi_profiles; empty strings mean "not set".
type Profile struct {
	Localpart   string
	DisplayName string
	AvatarURL   string
}

// ProfilesTable is userapi_profiles.
type ProfilesTable struct{}

// Insert creates the profile of a new account. A profile that exists is
// left as it is, so a retried account creation cannot reset it.
func (ProfilesTable) Insert(ctx context.Context, q sqlutil.Querier, p Profile) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_profiles (localpart, display_name, avatar_url)
		VALUES ($1, $2, $3) ON CONFLICT (localpart) DO NOTHING`, p.Localpart, p.DisplayName, p.AvatarURL)
	if err != nil {
		return fmt.Errorf("insert profile %s: %w", p.Localpart, err)
	}
	return nil
}

// Select returns the profile of localpart, or an error wrapping ErrNotFound.
func (ProfilesTable) Select(ctx context.Context, q sqlutil.Querier, localpart string) (Profile, error) {
	p := Profile{Localpart: localpart}
	err := q.QueryRowContext(ctx, `SELECT display_name, avatar_url FROM userapi_profiles WHERE localpart = $1`, localpart).
		Scan(&p.DisplayName, &p.AvatarURL)
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, fmt.Errorf("select profile %s: %w", localpart, ErrNotFound)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("select profile %s: %w", localpart, err)
	}
	return p, nil
}

// Update stores a profile (both fields) of an existing account; an error
// wrapping ErrNotFound if there is no profile row.
func (ProfilesTable) Update(ctx context.Context, q sqlutil.Querier, p Profile) error {
	res, err := q.ExecContext(ctx, `UPDATE userapi_profiles SET display_name = $2, avatar_url = $3 WHERE localpart = $1`,
		p.Localpart, p.DisplayName, p.AvatarURL)
	if err != nil {
		return fmt.Errorf("update profile %s: %w", p.Localpart, err)
	}
	return oneRow(res, "update profile "+p.Localpart)
}
