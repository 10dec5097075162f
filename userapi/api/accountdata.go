package api

import (
	"context"
	"encoding/json"
)

// AccountDataAPI is account data (global and per room, room tags among
// them) and sync filters. Account data changes are published on
// AccountDataTopic (topics.go).
type AccountDataAPI interface {
	// PutAccountData stores the content of one account data type, global
	// when RoomID is empty, and publishes the change. Content must be a JSON
	// object. M_NOT_FOUND for a user that is not of this server.
	PutAccountData(ctx context.Context, req PutAccountDataRequest) (PutAccountDataResponse, error)
	// QueryAccountData returns one entry (Type set: exactly (RoomID, Type),
	// M_NOT_FOUND when absent) or, with Type empty, every entry of the user,
	// global and per room (for an initial sync).
	QueryAccountData(ctx context.Context, req QueryAccountDataRequest) (QueryAccountDataResponse, error)
	// ModifyRoomTag sets (Content non-nil, a JSON object) or removes (Content
	// nil) one tag in the room's "m.tag" account data, atomically, and
	// publishes the new m.tag content. Removing an absent tag is no error.
	ModifyRoomTag(ctx context.Context, req ModifyRoomTagRequest) (ModifyRoomTagResponse, error)
	// CreateFilter stores a filter (a JSON object, validated by the caller)
	// and returns its id. Uploading the same filter again returns the same id.
	CreateFilter(ctx context.Context, req CreateFilterRequest) (CreateFilterResponse, error)
	// QueryFilter loads a filter by user and id, as it was uploaded. The
	// syncapi uses it for /sync?filter=<id>. M_NOT_FOUND when there is none.
	QueryFilter(ctx context.Context, req QueryFilterRequest) (QueryFilterResponse, error)
}

// AccountData is one account data entry.
type AccountData struct {
	RoomID  string          `json:"room_id,omitempty"` // empty: global
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
	// Version is the entry's change counter, as in AccountDataMessage.
	Version int64 `json:"version"`
}

type PutAccountDataRequest struct {
	UserID  string          `json:"user_id"`
	RoomID  string          `json:"room_id,omitempty"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}
type PutAccountDataResponse struct {
	Version int64 `json:"version"`
}

type QueryAccountDataRequest struct {
	UserID string `json:"user_id"`
	RoomID string `json:"room_id,omitempty"`
	Type   string `json:"type,omitempty"`
}
type QueryAccountDataResponse struct {
	Data []AccountData `json:"data"`
}

type ModifyRoomTagRequest struct {
	UserID string `json:"user_id"`
	RoomID string `json:"room_id"`
	Tag    string `json:"tag"`
	// Content is the tag's content (e.g. {"order":0.5}); nil removes the tag.
	Content json.RawMessage `json:"content,omitempty"`
}
type ModifyRoomTagResponse struct {
	Version int64 `json:"version"`
}

type CreateFilterRequest struct {
	UserID string          `json:"user_id"`
	Filter json.RawMessage `json:"filter"`
}
type CreateFilterResponse struct {
	FilterID string `json:"filter_id"`
}

type QueryFilterRequest struct {
	UserID   string `json:"user_id"`
	FilterID string `json:"filter_id"`
}
type QueryFilterResponse struct {
	Filter json.RawMessage `json:"filter"`
}
