package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// AccountData consumes userapi.AccountDataTopic: it keeps the latest content
// of every account data entry at a position in the account data stream and
// wakes the user.
type AccountData struct {
	db       *storage.Storage
	notifier *notifier.Notifier
	log      *slog.Logger
}

// NewAccountData returns the handler.
func NewAccountData(db *storage.Storage, n *notifier.Notifier, log *slog.Logger) *AccountData {
	return &AccountData{db: db, notifier: n, log: log}
}

// Handle applies one change. A message whose version is not above the one
// stored (a repeat, or an older change delivered late) changes nothing.
func (c *AccountData) Handle(ctx context.Context, m eventlog.Msg[userapi.AccountDataMessage]) error {
	v := m.Value
	if v.UserID == "" || v.Type == "" || !json.Valid(v.Content) {
		return eventlog.Permanent(fmt.Errorf("account data message %d: no user, no type or bad content", m.Seq))
	}
	var pos streams.Position
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		pos = 0
		have, err := c.db.AccountData.Version(ctx, tx, v.UserID, v.RoomID, v.Type)
		if err != nil || have >= v.Version {
			return err
		}
		if pos, err = c.db.Positions.Next(ctx, tx, streams.AccountData); err != nil {
			return err
		}
		return c.db.AccountData.Upsert(ctx, tx, v.UserID, storage.AccountData{
			RoomID: v.RoomID, Type: v.Type, Content: v.Content, Version: v.Version, Position: pos})
	})
	if err != nil {
		return fmt.Errorf("store account data %s of %s: %w", v.Type, v.UserID, err)
	}
	if pos > 0 {
		c.notifier.OnUsers(streams.AccountData, pos, v.UserID)
	}
	return nil
}
