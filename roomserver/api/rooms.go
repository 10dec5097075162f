package api

import "encoding/json"

// Memberships, as content.membership of m.room.member.
const (
	MembershipJoin   = "join"
	MembershipInvite = "invite"
	MembershipLeave  = "leave"
	MembershipBan    = "ban"
	MembershipKnock  = "knock"
)

type QueryMembershipRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}
type QueryMembershipResponse struct {
	RoomExists  bool   `json:"room_exists"`
	RoomVersion string `json:"room_version,omitempty"`
	// Membership is "" when the room's state has no member event for the user.
	Membership string `json:"membership,omitempty"`
	// Event is the user's m.room.member event in the current state.
	Event     json.RawMessage `json:"event,omitempty"`
	Forgotten bool            `json:"forgotten,omitempty"`
}

type QueryRoomsForUserRequest struct {
	UserID string `json:"user_id"`
	// Membership filters the rooms (e.g. "join"); empty for every membership.
	Membership string `json:"membership,omitempty"`
}
type QueryRoomsForUserResponse struct {
	Rooms []UserRoom `json:"rooms"`
}

// UserRoom is one room a user has a membership in.
type UserRoom struct {
	RoomID     string `json:"room_id"`
	Membership string `json:"membership"`
	Forgotten  bool   `json:"forgotten,omitempty"`
}

// QueryStateForUserRequest asks for the state of a room as a user may see
// it (client-server API, GET /rooms/{roomId}/state): the current state for
// a joined user or for anyone in a world_readable room, and the state when
// they left for a user who left or was banned.
type QueryStateForUserRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	// Tuples limits the state returned; Types limits it by event type. Both
	// empty: the whole state.
	Tuples []StateKeyTuple `json:"tuples,omitempty"`
	Types  []string        `json:"types,omitempty"`
}
type QueryStateForUserResponse struct {
	RoomVersion string `json:"room_version"`
	Membership  string `json:"membership,omitempty"`
	// Historical is true when the state is the state when the user left.
	Historical  bool              `json:"historical,omitempty"`
	StateEvents []json.RawMessage `json:"state_events"`
}

type QueryEventsRequest struct {
	RoomID   string   `json:"room_id"`
	EventIDs []string `json:"event_ids"`
}
type QueryEventsResponse struct {
	RoomVersion string `json:"room_version"`
	// Events are the accepted events of the room with these ids (unknown,
	// rejected and other rooms' events are left out), redacted where a
	// redaction applied.
	Events []json.RawMessage `json:"events"`
}

type PerformForgetRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}
type PerformForgetResponse struct{}

type SetRoomAliasRequest struct {
	Alias  string `json:"alias"`
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}
type SetRoomAliasResponse struct{}

type GetRoomAliasRequest struct {
	Alias string `json:"alias"`
}
type GetRoomAliasResponse struct {
	RoomID  string `json:"room_id"`
	Creator string `json:"creator"`
}

type RemoveRoomAliasRequest struct {
	Alias string `json:"alias"`
}
type RemoveRoomAliasResponse struct {
	RoomID string `json:"room_id"`
}

type QueryAliasesForRoomRequest struct {
	RoomID string `json:"room_id"`
}
type QueryAliasesForRoomResponse struct {
	Aliases []string `json:"aliases"`
}

// Room directory visibilities.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

type SetRoomVisibilityRequest struct {
	RoomID     string `json:"room_id"`
	Visibility string `json:"visibility"`
}
type SetRoomVisibilityResponse struct{}

type QueryRoomVisibilityRequest struct {
	RoomID string `json:"room_id"`
}
type QueryRoomVisibilityResponse struct {
	Visibility string `json:"visibility"`
}

type QueryPublicRoomsRequest struct {
	// Limit is the page size; 0 means every room.
	Limit int `json:"limit,omitempty"`
	// Since is a NextBatch or PrevBatch of an earlier answer.
	Since string `json:"since,omitempty"`
	// Filter matches name, topic and canonical alias, case-insensitively.
	Filter string `json:"filter,omitempty"`
	// RoomTypes filters by m.room.create content.type ("" is rooms without a type); empty: all.
	RoomTypes []string `json:"room_types,omitempty"`
}
type QueryPublicRoomsResponse struct {
	Chunk     []PublicRoom `json:"chunk"`
	NextBatch string       `json:"next_batch,omitempty"`
	PrevBatch string       `json:"prev_batch,omitempty"`
	// Total counts the rooms matching the filter.
	Total int `json:"total_room_count_estimate"`
}

// PublicRoom is a room of the public room directory (the spec's
// PublishedRoomsChunk).
type PublicRoom struct {
	RoomID           string `json:"room_id"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
}

type PerformReportRequest struct {
	RoomID string `json:"room_id"`
	// EventID is empty for a report about the room.
	EventID    string `json:"event_id,omitempty"`
	ReporterID string `json:"reporter_id"`
	Reason     string `json:"reason"`
	Score      int64  `json:"score,omitempty"`
}
type PerformReportResponse struct{}
