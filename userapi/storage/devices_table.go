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

// Device is a row of userapi_devices.
type Device struct {
	Localpart   string
	DeviceID    string
	TokenHash   []byte
	DisplayName string
	IP          string
	CreatedMS   int64
}

// TokenOwner is what a token hash resolves to: the device and its account.
type TokenOwner struct {
	Localpart   string
	DeviceID    string
	DisplayName string
	AccountType string
	Admin       bool
}

// DevicesTable is userapi_devices.
type DevicesTable struct{ d sqlutil.Dialect }

// Upsert creates a device, or gives an existing one (same localpart and
// device id) the new token hash, which invalidates its previous token. An
// existing device keeps its display name and creation time, as the spec's
// /login ignores initial_device_display_name for a known device.
func (t DevicesTable) Upsert(ctx context.Context, q sqlutil.Querier, dev Device) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_devices (localpart, device_id, token_hash, display_name, last_seen_ip, created_ms)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (localpart, device_id) DO UPDATE SET token_hash = excluded.token_hash, last_seen_ip = excluded.last_seen_ip`,
		dev.Localpart, dev.DeviceID, dev.TokenHash, dev.DisplayName, dev.IP, dev.CreatedMS)
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
	err := q.QueryRowContext(ctx, `SELECT d.localpart, d.device_id, d.display_name, a.account_type, a.admin
		FROM userapi_devices d JOIN userapi_accounts a ON a.localpart = d.localpart
		WHERE d.token_hash = $1 AND a.deactivated = FALSE`, hash).
		Scan(&o.Localpart, &o.DeviceID, &o.DisplayName, &o.AccountType, &o.Admin)
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
