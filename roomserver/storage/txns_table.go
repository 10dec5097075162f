package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// The client transaction ids of accepted events, written in the
// transaction that stores the event: a retried request finds its event
// whenever the event exists, and the send path pays no commit of its own.
// (The clientapi kept them in its own database before, one more commit per
// message.) Rows are few bytes and never read in bulk.
const txnsSchema = `CREATE TABLE roomserver_txns (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	-- The endpoint the id was used on (the same id may serve two).
	scope     TEXT NOT NULL,
	txn_id    TEXT NOT NULL,
	event_id  TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, scope, txn_id)
)`

// Txn identifies a client transaction: scoped to a device and an endpoint.
type Txn struct {
	UserID, DeviceID, Scope, TxnID string
}

// TxnsTable is roomserver_txns.
type TxnsTable struct{}

// Record records eventID for t unless another event is recorded for it,
// whose id it then returns ("" when eventID is the one recorded).
func (tt TxnsTable) Record(ctx context.Context, q sqlutil.Querier, t Txn, eventID string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `INSERT INTO roomserver_txns (user_id, device_id, scope, txn_id, event_id)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, device_id, scope, txn_id) DO NOTHING RETURNING event_id`,
		t.UserID, t.DeviceID, t.Scope, t.TxnID, eventID).Scan(&id)
	if err == nil {
		return "", nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("record txn %s of %s: %w", t.TxnID, t.UserID, err)
	}
	if id, err = tt.Select(ctx, q, t); err != nil || id == eventID {
		return "", err
	}
	return id, nil
}

// Select returns the event recorded for t, "" if none.
func (TxnsTable) Select(ctx context.Context, q sqlutil.Querier, t Txn) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT event_id FROM roomserver_txns WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4`,
		t.UserID, t.DeviceID, t.Scope, t.TxnID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select txn %s of %s: %w", t.TxnID, t.UserID, err)
	}
	return id, nil
}
