package storage

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const pushersSchema = `CREATE TABLE userapi_pushers (
	localpart           TEXT NOT NULL,
	app_id              TEXT NOT NULL,
	pushkey             TEXT NOT NULL,
	kind                TEXT NOT NULL,
	app_display_name    TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag         TEXT NOT NULL DEFAULT '',
	lang                TEXT NOT NULL,
	data                TEXT NOT NULL,
	device_id           TEXT NOT NULL DEFAULT '',
	created_ms          BIGINT NOT NULL,
	PRIMARY KEY (localpart, app_id, pushkey)
)`

// Without append, setting a pusher removes the same (app_id, pushkey) of
// every other user: this index finds them.
const pushersKeyIndex = `CREATE INDEX userapi_pushers_key ON userapi_pushers (app_id, pushkey)`

// PusherRow is a row of userapi_pushers.
type PusherRow struct {
	Localpart         string
	AppID             string
	PushKey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              string
	DeviceID          string
	CreatedMS         int64
}

// PushersTable is userapi_pushers.
type PushersTable struct {
	d sqlutil.Dialect
	// changes counts writes, so that readers caching pushers (the push
	// gateway asks for every notification) know when to reload.
	changes *atomic.Uint64
}

// Changed records a change to the table; writers call it again after their
// transaction commits, so a cache filled from a read that raced the
// uncommitted write is dropped.
func (t PushersTable) Changed() {
	if t.changes != nil {
		t.changes.Add(1)
	}
}

// Generation is the number of changes so far in this process.
func (t PushersTable) Generation() uint64 {
	if t.changes == nil {
		return 0
	}
	return t.changes.Load()
}

// Upsert creates or replaces the user's pusher (app_id, pushkey).
func (t PushersTable) Upsert(ctx context.Context, q sqlutil.Querier, p PusherRow) error {
	_, err := q.ExecContext(ctx, `INSERT INTO userapi_pushers (localpart, app_id, pushkey, kind, app_display_name,
		device_display_name, profile_tag, lang, data, device_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (localpart, app_id, pushkey) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
		device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang,
		data = excluded.data, device_id = excluded.device_id`,
		p.Localpart, p.AppID, p.PushKey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, p.Data,
		p.DeviceID, p.CreatedMS)
	t.Changed()
	if err != nil {
		return fmt.Errorf("upsert pusher %s of %s: %w", p.AppID, p.Localpart, err)
	}
	return nil
}

// DeleteOthers removes (app_id, pushkey) from every user but localpart.
func (t PushersTable) DeleteOthers(ctx context.Context, q sqlutil.Querier, localpart, appID, pushkey string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM userapi_pushers WHERE app_id = $1 AND pushkey = $2 AND localpart <> $3`,
		appID, pushkey, localpart)
	t.Changed()
	if err != nil {
		return fmt.Errorf("delete pusher %s of other users: %w", appID, err)
	}
	return nil
}

// Delete removes a user's pusher; a missing one is not an error.
func (t PushersTable) Delete(ctx context.Context, q sqlutil.Querier, localpart, appID, pushkey string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM userapi_pushers WHERE localpart = $1 AND app_id = $2 AND pushkey = $3`,
		localpart, appID, pushkey)
	t.Changed()
	if err != nil {
		return fmt.Errorf("delete pusher %s of %s: %w", appID, localpart, err)
	}
	return nil
}

// DeleteKey removes (app_id, pushkey) for every user: a push gateway
// rejected the pushkey.
func (t PushersTable) DeleteKey(ctx context.Context, q sqlutil.Querier, appID, pushkey string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM userapi_pushers WHERE app_id = $1 AND pushkey = $2`, appID, pushkey)
	t.Changed()
	if err != nil {
		return fmt.Errorf("delete rejected pushkey of %s: %w", appID, err)
	}
	return nil
}

// Select returns the pushers of the listed users, by user then app id.
func (t PushersTable) Select(ctx context.Context, q sqlutil.Querier, localparts []string) ([]PusherRow, error) {
	if len(localparts) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT localpart, app_id, pushkey, kind, app_display_name, device_display_name,
		profile_tag, lang, data, device_id, created_ms FROM userapi_pushers WHERE `+t.d.In("localpart", 1)+`
		ORDER BY localpart, app_id, pushkey`, t.d.List(localparts))
	if err != nil {
		return nil, fmt.Errorf("select pushers of %d users: %w", len(localparts), err)
	}
	defer rows.Close()
	var out []PusherRow
	for rows.Next() {
		var p PusherRow
		if err := rows.Scan(&p.Localpart, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName,
			&p.ProfileTag, &p.Lang, &p.Data, &p.DeviceID, &p.CreatedMS); err != nil {
			return nil, fmt.Errorf("select pushers: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select pushers: %w", err)
	}
	return out, nil
}
