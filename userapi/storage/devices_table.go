package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func devicesSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_devices (
	localpart    TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	-- SHA-256 of the access token. The token itself is never stored, so a
	-- leaked database (or backup) holds no usable credential.
	token_hash   ` + d.Bytes() + ` NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	last_seen_ip TEXT NOT NULL DEFAULT '',
	created_ms   BIGINT NOT NULL,
	PRIMARY KEY (localpart, device_id)
)`
}

// The unique index makes token lookup one index probe, and guarantees that
// a token (hash) names at most one device.
const devicesTokenIndex = `CREATE UNIQUE INDEX userapi_devices_token_hash ON userapi_devices (token_hash)`

// Migration 2: expiring access tokens and refresh tokens.
const devicesAddExpiry = `ALTER TABLE userapi_devices ADD COLUMN access_expires_ms BIGINT NOT NULL DEFAULT 0`

func devicesAddRefresh(d sqlutil.Dialect) string {
	return `ALTER TABLE userapi_devices ADD COLUMN refresh_hash ` + d.Bytes()
}

const devicesAddLastSeen = `ALTER TABLE userapi_devices ADD COLUMN last_seen_ms BIGINT NOT NULL DEFAULT 0`

// Refresh tokens are looked up like access tokens: by the hash, unique.
// NULLs (devices without refresh token) do not collide in a unique index.
const devicesRefreshIndex = `CREATE UNIQUE INDEX userapi_devices_refresh_hash ON userapi_devices (refresh_hash)`

// Device is a row of userapi_devices.
type Device struct {
	Localpart   string
	DeviceID    string
	TokenHash   []byte
	DisplayName string
	IP          string
	CreatedMS   int64
	// AccessExpiresMS is when the access token expires; 0 is never.
	AccessExpiresMS int64
	// RefreshHash is the SHA-256 of the refresh token; nil when none.
	RefreshHash []byte
	// LastSeenMS is the last login or refresh.
	LastSeenMS int64
}

// TokenOwner is what a token hash resolves to: the device and its account.
type TokenOwner struct {
	Localpart       string
	DeviceID        string
	DisplayName     string
	AccountType     string
	Admin           bool
	AccessExpiresMS int64
}

// DevicesTable is userapi_devices.
type DevicesTable struct{ d sqlutil.Dialect }

// Upsert creates a device, or gives an existing one (same localpart and
// device id) the new token hash, which invalidates its previous token. An
// existing device keeps its display name and creation time, as the spec's
// /login ignores initial_device_display_name for a known device.
func (t DevicesTable) Upsert(ctx context.Context, q sqlutil.Querier, dev Device) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_devices (localpart, device_id, token_hash, display_name, last_seen_ip, created_ms,
			access_expires_ms, refresh_hash, last_seen_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6)
		ON CONFLICT (localpart, device_id) DO UPDATE SET token_hash = excluded.token_hash, last_seen_ip = excluded.last_seen_ip,
			access_expires_ms = excluded.access_expires_ms, refresh_hash = excluded.refresh_hash, last_seen_ms = excluded.last_seen_ms`,
		dev.Localpart, dev.DeviceID, dev.TokenHash, dev.DisplayName, dev.IP, dev.CreatedMS, dev.AccessExpiresMS, dev.RefreshHash)
	if err != nil {
		return fmt.Errorf("upsert device %s of %s: %w", dev.DeviceID, dev.Localpart, err)
	}
	return nil
}

// SelectByTokenHash resolves a token hash to its device and account in one
// indexed query; deactivated accounts resolve to nothing. It returns an
// error wrapping ErrNotFound when no live device holds the hash.
//
// Matching on the hash by index equality is not a timing side channel worth
// closing: an attacker chooses tokens, not their SHA-256 hashes, so how far a
// comparison gets into a hash tells them nothing about any valid token.
func (t DevicesTable) SelectByTokenHash(ctx context.Context, q sqlutil.Querier, hash []byte) (TokenOwner, error) {
	var o TokenOwner
	err := q.QueryRowContext(ctx, `SELECT d.localpart, d.device_id, d.display_name, a.account_type, a.admin, d.access_expires_ms
		FROM userapi_devices d JOIN userapi_accounts a ON a.localpart = d.localpart
		WHERE d.token_hash = $1 AND a.deactivated = FALSE`, hash).
		Scan(&o.Localpart, &o.DeviceID, &o.DisplayName, &o.AccountType, &o.Admin, &o.AccessExpiresMS)
	if errors.Is(err, sql.ErrNoRows) {
		return TokenOwner{}, fmt.Errorf("select device by token: %w", ErrNotFound)
	}
	if err != nil {
		return TokenOwner{}, fmt.Errorf("select device by token: %w", err)
	}
	return o, nil
}

// SelectIDs returns the device ids of localpart, sorted.
func (t DevicesTable) SelectIDs(ctx context.Context, q sqlutil.Querier, localpart string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT device_id FROM userapi_devices WHERE localpart = $1 ORDER BY device_id`, localpart)
	if err != nil {
		return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
	}
	return ids, nil
}

// Delete removes the listed devices of localpart (and with them their
// tokens); ids that name no device are ignored. It returns how many went.
func (t DevicesTable) Delete(ctx context.Context, q sqlutil.Querier, localpart string, deviceIDs []string) (int64, error) {
	if len(deviceIDs) == 0 {
		return 0, nil
	}
	res, err := q.ExecContext(ctx, `DELETE FROM userapi_devices WHERE localpart = $1 AND `+t.d.In("device_id", 2),
		localpart, t.d.List(deviceIDs))
	if err != nil {
		return 0, fmt.Errorf("delete %d devices of %s: %w", len(deviceIDs), localpart, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete devices of %s: rows affected: %w", localpart, err)
	}
	return n, nil
}

// DeleteAll removes every device of localpart. It returns how many went.
func (t DevicesTable) DeleteAll(ctx context.Context, q sqlutil.Querier, localpart string) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM userapi_devices WHERE localpart = $1`, localpart)
	if err != nil {
		return 0, fmt.Errorf("delete all devices of %s: %w", localpart, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete all devices of %s: rows affected: %w", localpart, err)
	}
	return n, nil
}

// SelectAll returns the devices of localpart (without their hashes), sorted
// by device id; with deviceID non-empty only that one.
func (t DevicesTable) SelectAll(ctx context.Context, q sqlutil.Querier, localpart, deviceID string) ([]Device, error) {
	rows, err := q.QueryContext(ctx, `SELECT device_id, display_name, last_seen_ip, created_ms, last_seen_ms FROM userapi_devices
		WHERE localpart = $1 AND ($2 = '' OR device_id = $2) ORDER BY device_id`, localpart, deviceID)
	if err != nil {
		return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d := Device{Localpart: localpart}
		if err := rows.Scan(&d.DeviceID, &d.DisplayName, &d.IP, &d.CreatedMS, &d.LastSeenMS); err != nil {
			return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select devices of %s: %w", localpart, err)
	}
	return out, nil
}

// UpdateDisplayName renames a device; an error wrapping ErrNotFound if
// there is no such device.
func (t DevicesTable) UpdateDisplayName(ctx context.Context, q sqlutil.Querier, localpart, deviceID, name string) error {
	res, err := q.ExecContext(ctx, `UPDATE userapi_devices SET display_name = $3 WHERE localpart = $1 AND device_id = $2`,
		localpart, deviceID, name)
	if err != nil {
		return fmt.Errorf("rename device %s of %s: %w", deviceID, localpart, err)
	}
	return oneRow(res, "rename device "+deviceID+" of "+localpart)
}

// DeleteAllExcept removes every device of localpart but keep (which may be
// empty, then all go). It returns how many went.
func (t DevicesTable) DeleteAllExcept(ctx context.Context, q sqlutil.Querier, localpart, keep string) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM userapi_devices WHERE localpart = $1 AND device_id <> $2`, localpart, keep)
	if err != nil {
		return 0, fmt.Errorf("delete devices of %s except %q: %w", localpart, keep, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete devices of %s: rows affected: %w", localpart, err)
	}
	return n, nil
}

// Rotate replaces the access and refresh token hashes of the device holding
// refreshHash, if its account is live, and returns the device. An error
// wrapping ErrNotFound when no device holds it (unknown, or already used:
// the statement that finds it also replaces it, so of two concurrent
// refreshes with one token exactly one succeeds).
func (t DevicesTable) Rotate(ctx context.Context, q sqlutil.Querier, refreshHash, tokenHash, newRefreshHash []byte, expiresMS, nowMS int64) (Device, error) {
	d := Device{TokenHash: tokenHash, RefreshHash: newRefreshHash, AccessExpiresMS: expiresMS, LastSeenMS: nowMS}
	err := q.QueryRowContext(ctx, `UPDATE userapi_devices SET token_hash = $2, refresh_hash = $3, access_expires_ms = $4, last_seen_ms = $5
		WHERE refresh_hash = $1 AND localpart IN (SELECT localpart FROM userapi_accounts WHERE deactivated = FALSE)
		RETURNING localpart, device_id`, refreshHash, tokenHash, newRefreshHash, expiresMS, nowMS).Scan(&d.Localpart, &d.DeviceID)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("rotate refresh token: %w", ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	return d, nil
}
