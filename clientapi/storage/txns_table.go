package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

const txnsSchema = `CREATE TABLE clientapi_txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	-- The request path: the same txn id may be used on different endpoints.
	scope      TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id, scope, txn_id)
)`

const txnsIndex = `CREATE INDEX clientapi_txns_created ON clientapi_txns (created_ms)`

// Txn identifies a client transaction (spec: scoped to the device).
type Txn struct {
	UserID, DeviceID, Scope, TxnID string
}

// TxnsTable is clientapi_txns.
type TxnsTable struct{}

// Select returns the event id stored for txn, or "" if none.
func (TxnsTable) Select(ctx context.Context, q sqlutil.Querier, t Txn) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT event_id FROM clientapi_txns WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4`,
		t.UserID, t.DeviceID, t.Scope, t.TxnID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select txn %s: %w", t.TxnID, err)
	}
	return id, nil
}

// Insert records the event of txn; a txn recorded already keeps its first event.
func (TxnsTable) Insert(ctx context.Context, q sqlutil.Querier, t Txn, eventID string, nowMS int64) error {
	_, err := q.ExecContext(ctx, `INSERT INTO clientapi_txns (user_id, device_id, scope, txn_id, event_id, created_ms)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, device_id, scope, txn_id) DO NOTHING`,
		t.UserID, t.DeviceID, t.Scope, t.TxnID, eventID, nowMS)
	if err != nil {
		return fmt.Errorf("insert txn %s: %w", t.TxnID, err)
	}
	return nil
}
