package api

import "github.com/axon-hs/axon/internal/eventlog"

// OutputReceipt is a read receipt the syncapi accepted from a local user.
type OutputReceipt struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	// Type is m.read or m.read.private.
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	// ThreadID is "" for an unthreaded receipt, "main" or a thread root.
	ThreadID string `json:"thread_id,omitempty"`
	TS       int64  `json:"ts"`
}

// ReceiptTopic carries every receipt after it is stored, keyed by room id
// (the userapi clears notification counts with it; federation will send
// m.read ones). Delivery is at least once; a receipt is idempotent.
var ReceiptTopic = eventlog.Topic[OutputReceipt]{Name: "syncapi.receipt", Key: "room_id"}
