package routing

import (
	"encoding/json"

	"github.com/axon-hs/axon/syncapi/internal/streams"
)

// The /sync response (client-server API, GET /sync, response 200). Every
// section is always present, empty when there is nothing to say, so clients
// never meet a null where the spec has an object or an array.

// Response is the body of a 200 answer to GET /sync.
type Response struct {
	NextBatch              string         `json:"next_batch"`
	Rooms                  Rooms          `json:"rooms"`
	Presence               EventBatch     `json:"presence"`
	AccountData            EventBatch     `json:"account_data"`
	ToDevice               EventBatch     `json:"to_device"`
	DeviceLists            DeviceLists    `json:"device_lists"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// DeviceUnusedFallbackKeyTypes stays empty until E2EE keys exist.
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

// Rooms is the rooms section.
type Rooms struct {
	Join   map[string]*JoinedRoom  `json:"join"`
	Invite map[string]*InvitedRoom `json:"invite"`
	Knock  map[string]*KnockedRoom `json:"knock"`
	Leave  map[string]*LeftRoom    `json:"leave"`
}

// EventBatch is a list of events.
type EventBatch struct {
	Events []json.RawMessage `json:"events"`
}

// Timeline is a room's timeline section.
type Timeline struct {
	Events  []json.RawMessage `json:"events"`
	Limited bool              `json:"limited"`
	// PrevBatch is a token for /messages to page back from the start of
	// the timeline.
	PrevBatch string `json:"prev_batch,omitempty"`
}

// JoinedRoom is one room in rooms.join. Exactly one of State and StateAfter
// is set, as the request's use_state_after chooses.
type JoinedRoom struct {
	Summary             Summary             `json:"summary"`
	State               *EventBatch         `json:"state,omitempty"`
	StateAfter          *EventBatch         `json:"state_after,omitempty"`
	Timeline            Timeline            `json:"timeline"`
	Ephemeral           EventBatch          `json:"ephemeral"`
	AccountData         EventBatch          `json:"account_data"`
	UnreadNotifications UnreadNotifications `json:"unread_notifications"`
	// UnreadThreadNotifications is set when the filter asks for
	// unread_thread_notifications (thread root id → counts).
	UnreadThreadNotifications map[string]UnreadNotifications `json:"unread_thread_notifications,omitempty"`
}

// Summary is a joined room's summary; fields are omitted when unchanged
// since the last sync, as the spec allows.
type Summary struct {
	Heroes             []string `json:"m.heroes,omitempty"`
	JoinedMemberCount  *int     `json:"m.joined_member_count,omitempty"`
	InvitedMemberCount *int     `json:"m.invited_member_count,omitempty"`
}

// UnreadNotifications are a room's notification counts, as the userapi
// last published them (userapi.NotificationCountsTopic); omitted when it
// never published any for the user and room.
type UnreadNotifications struct {
	HighlightCount    *int `json:"highlight_count,omitempty"`
	NotificationCount *int `json:"notification_count,omitempty"`
}

// InvitedRoom is one room in rooms.invite.
type InvitedRoom struct {
	InviteState EventBatch `json:"invite_state"`
}

// KnockedRoom is one room in rooms.knock.
type KnockedRoom struct {
	KnockState EventBatch `json:"knock_state"`
}

// LeftRoom is one room in rooms.leave.
type LeftRoom struct {
	State       *EventBatch `json:"state,omitempty"`
	StateAfter  *EventBatch `json:"state_after,omitempty"`
	Timeline    Timeline    `json:"timeline"`
	AccountData EventBatch  `json:"account_data"`
}

// DeviceLists is the E2EE device list section.
type DeviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

func newResponse(next streams.Token) *Response {
	return &Response{
		NextBatch: next.String(),
		Rooms: Rooms{
			Join:   map[string]*JoinedRoom{},
			Invite: map[string]*InvitedRoom{},
			Knock:  map[string]*KnockedRoom{},
			Leave:  map[string]*LeftRoom{},
		},
		Presence:                     emptyBatch(),
		AccountData:                  emptyBatch(),
		ToDevice:                     emptyBatch(),
		DeviceLists:                  DeviceLists{Changed: []string{}, Left: []string{}},
		DeviceOneTimeKeysCount:       map[string]int{},
		DeviceUnusedFallbackKeyTypes: []string{},
	}
}

func emptyBatch() EventBatch { return EventBatch{Events: []json.RawMessage{}} }

// empty reports whether the response has nothing for the client, so a
// long-poll should keep waiting.
func (r *Response) empty() bool {
	return len(r.Rooms.Join) == 0 && len(r.Rooms.Invite) == 0 && len(r.Rooms.Knock) == 0 && len(r.Rooms.Leave) == 0 &&
		len(r.Presence.Events) == 0 && len(r.AccountData.Events) == 0 && len(r.ToDevice.Events) == 0
}
