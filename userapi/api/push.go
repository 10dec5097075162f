package api

import (
	"context"
	"encoding/json"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/matrix/pushrules"
)

// PushAPI is the part of the userapi about push: push rules, pushers and
// the notifications push evaluation records. Its methods follow the same
// Name(ctx, NameRequest) (NameResponse, error) shape.
//
// Rule edits fail with M_NOT_FOUND for an unknown rule, M_INVALID_PARAM for
// an unacceptable rule id or body, and M_UNKNOWN (400) when before/after
// names no user-defined rule, as the spec's examples show.
type PushAPI interface {
	// QueryPushRules returns the user's full ruleset: their rules merged
	// with the server defaults (.m.rule.master first).
	QueryPushRules(ctx context.Context, req QueryPushRulesRequest) (QueryPushRulesResponse, error)
	// PutPushRule adds or replaces a user-defined rule (PUT
	// /pushrules/global/{kind}/{ruleId}). Concurrent edits of one user's
	// rules do not lose each other (compare and swap on a version).
	PutPushRule(ctx context.Context, req PutPushRuleRequest) (PutPushRuleResponse, error)
	// DeletePushRule removes a user-defined rule.
	DeletePushRule(ctx context.Context, req DeletePushRuleRequest) (DeletePushRuleResponse, error)
	// SetPushRuleEnabled enables or disables any rule, defaults included.
	SetPushRuleEnabled(ctx context.Context, req SetPushRuleEnabledRequest) (SetPushRuleEnabledResponse, error)
	// SetPushRuleActions replaces the actions of any rule, defaults included.
	SetPushRuleActions(ctx context.Context, req SetPushRuleActionsRequest) (SetPushRuleActionsResponse, error)
	// QueryPushers lists the user's pushers.
	QueryPushers(ctx context.Context, req QueryPushersRequest) (QueryPushersResponse, error)
	// SetPusher creates, replaces or (Delete) removes a pusher, keyed by
	// (app_id, pushkey). Without Append, the same (app_id, pushkey) of other
	// users is removed, as the spec requires.
	SetPusher(ctx context.Context, req SetPusherRequest) (SetPusherResponse, error)
	// QueryNotifications pages through the user's notifications, newest
	// first. From is the NextToken of a previous page ("" = newest).
	// M_INVALID_PARAM for a malformed From.
	QueryNotifications(ctx context.Context, req QueryNotificationsRequest) (QueryNotificationsResponse, error)
}

type QueryPushRulesRequest struct {
	UserID string `json:"user_id"`
}
type QueryPushRulesResponse struct {
	Global pushrules.Ruleset `json:"global"`
}

type PutPushRuleRequest struct {
	UserID string         `json:"user_id"`
	Kind   string         `json:"kind"`
	Rule   pushrules.Rule `json:"rule"`
	Before string         `json:"before,omitempty"`
	After  string         `json:"after,omitempty"`
}
type PutPushRuleResponse struct{}

type DeletePushRuleRequest struct {
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	RuleID string `json:"rule_id"`
}
type DeletePushRuleResponse struct{}

type SetPushRuleEnabledRequest struct {
	UserID  string `json:"user_id"`
	Kind    string `json:"kind"`
	RuleID  string `json:"rule_id"`
	Enabled bool   `json:"enabled"`
}
type SetPushRuleEnabledResponse struct{}

type SetPushRuleActionsRequest struct {
	UserID  string             `json:"user_id"`
	Kind    string             `json:"kind"`
	RuleID  string             `json:"rule_id"`
	Actions []pushrules.Action `json:"actions"`
}
type SetPushRuleActionsResponse struct{}

// Pusher is a pusher as GET /pushers returns it.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

type QueryPushersRequest struct {
	UserID string `json:"user_id"`
}
type QueryPushersResponse struct {
	Pushers []Pusher `json:"pushers"`
}

type SetPusherRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
	Pusher   Pusher `json:"pusher"`
	Append   bool   `json:"append,omitempty"`
	// Delete removes the user's pusher (app_id, pushkey) (kind null).
	Delete bool `json:"delete,omitempty"`
}
type SetPusherResponse struct{}

// Notification is one entry of GET /notifications.
type Notification struct {
	Actions    []pushrules.Action `json:"actions"`
	Event      json.RawMessage    `json:"event"`
	ProfileTag string             `json:"profile_tag,omitempty"`
	Read       bool               `json:"read"`
	RoomID     string             `json:"room_id"`
	TS         int64              `json:"ts"`
}

type QueryNotificationsRequest struct {
	UserID        string `json:"user_id"`
	From          string `json:"from,omitempty"`
	Limit         int    `json:"limit,omitempty"`
	OnlyHighlight bool   `json:"only_highlight,omitempty"`
}
type QueryNotificationsResponse struct {
	Notifications []Notification `json:"notifications"`
	NextToken     string         `json:"next_token,omitempty"`
}

// Counts are unread notification counts.
type Counts struct {
	NotificationCount int64 `json:"notification_count"`
	HighlightCount    int64 `json:"highlight_count"`
}

// UserCounts are one user's unread counts in a room: the whole room, the
// main timeline alone, and each thread (by thread root event id).
//
// Without threads the main timeline's counts are the total, and Main is
// left out (zero): these messages are the largest on the log, one entry
// per member per event. Read it with MainCounts.
type UserCounts struct {
	UserID  string            `json:"user_id"`
	Total   Counts            `json:"total"`
	Main    Counts            `json:"main,omitzero"`
	Threads map[string]Counts `json:"threads,omitempty"`
}

// MainCounts is the main timeline's counts.
func (u UserCounts) MainCounts() Counts {
	if len(u.Threads) == 0 {
		return u.Total
	}
	return u.Main
}

// NotificationCounts is the message of NotificationCountsTopic: the new
// counts of the users of one room whose counts changed (an event notified
// them, or a read receipt cleared some). Each message carries absolute
// counts, so applying one twice or applying only the latest is correct.
type NotificationCounts struct {
	RoomID string       `json:"room_id"`
	Users  []UserCounts `json:"users"`
}

// NotificationCountsTopic carries notification counts for /sync's
// unread_notifications and unread_thread_notifications. It is keyed by
// room id (not user id): one message per event covers every member, and
// the counts of (user, room) only change in that room's order.
var NotificationCountsTopic = eventlog.Topic[NotificationCounts]{Name: "userapi.notification_counts", Key: "room_id"}
