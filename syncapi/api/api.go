// Package api is the contract of the syncapi: the per-user view of rooms
// served by /sync. It is driven by the log (roomserver.output,
// userapi.account_data, userapi.notification_counts), serves clients
// directly, publishes the receipts it accepts (topics.go), and answers the
// few questions only its stream positions can (API).
package api

import (
	"context"
	"encoding/json"
)

// API is the syncapi internal API.
type API interface {
	// QueryMembersAt returns the m.room.member state of a room as of a sync
	// token (GET /members?at=), as the user may see it: at the token when
	// they were joined then or the room was world_readable, as it was when
	// they left or were banned if that came first, M_FORBIDDEN when they had
	// never joined. M_INVALID_PARAM for a token this server did not issue.
	QueryMembersAt(ctx context.Context, req QueryMembersAtRequest) (QueryMembersAtResponse, error)
}

type QueryMembersAtRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	// At is a sync token (next_batch, prev_batch).
	At string `json:"at"`
}
type QueryMembersAtResponse struct {
	RoomVersion string `json:"room_version"`
	// Events are the member events (PDUs, redacted where redacted).
	Events []json.RawMessage `json:"events"`
}
