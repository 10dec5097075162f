package api

import (
	"encoding/json"

	"github.com/axon-hs/axon/internal/eventlog"
)

// AccountDataMessage is published on AccountDataTopic after a change of a
// user's account data (global or per room, room tags included: they are the
// room's "m.tag" account data) has been committed.
//
// Contract for consumers (the syncapi):
//   - The key is the user id, so one user's changes arrive in the order they
//     were committed; different users are independent.
//   - Content is the whole new content of (UserID, RoomID, Type): a consumer
//     stores it as it is, it does not merge.
//   - Version increases by one with every change of that one (UserID,
//     RoomID, Type), starting at 1. Delivery is at least once: a consumer
//     applies a message only if its Version is greater than the one it holds
//     for the same (UserID, RoomID, Type), which makes repeats harmless.
//   - QueryAccountData returns the same contents and versions, for a
//     consumer that starts late or rebuilds its view.
type AccountDataMessage struct {
	UserID string `json:"user_id"`
	// RoomID is empty for global account data.
	RoomID  string          `json:"room_id,omitempty"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
	Version int64           `json:"version"`
}

// AccountDataTopic carries account data changes, keyed by user id.
var AccountDataTopic = eventlog.Topic[AccountDataMessage]{Name: "userapi.account_data"}
