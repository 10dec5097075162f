package event

import (
	"math"
	"slices"
	"strconv"
)

// EventIDFormat is how a room version forms event IDs.
type EventIDFormat int

const (
	// EventIDFormatV1 is "$opaque:server", chosen by the sender and carried
	// in the event's event_id field (rooms/fragments/v1-event-ids.md).
	EventIDFormatV1 EventIDFormat = iota + 1
	// EventIDFormatV3 is "$" + the reference hash in unpadded standard
	// base64 (rooms/v3.md "Event IDs").
	EventIDFormatV3
	// EventIDFormatV4 is "$" + the reference hash in unpadded URL-safe
	// base64 (rooms/fragments/v4-event-ids.md).
	EventIDFormatV4
)

// RedactionRules names the redaction algorithm of a room version. The spec
// has five distinct variants.
type RedactionRules int

const (
	// RedactionV1 is rooms/fragments/v1-redactions.md (versions 1 to 5):
	// m.room.aliases keeps "aliases".
	RedactionV1 RedactionRules = iota + 1
	// RedactionV6 is v6-redactions.md (versions 6 and 7): aliases no longer
	// special.
	RedactionV6
	// RedactionV8 is rooms/v8.md "Redactions": join_rules keeps "allow".
	RedactionV8
	// RedactionV9 is v9-redactions.md (versions 9 and 10): member keeps
	// "join_authorised_via_users_server".
	RedactionV9
	// RedactionV11 is v11-redactions.md (versions 11 and 12): fewer
	// top-level keys, whole create content, redaction "redacts", power
	// levels "invite", member third_party_invite.signed.
	RedactionV11
)

// StateResAlgorithm names a state resolution algorithm.
type StateResAlgorithm int

const (
	// StateResV1 is the original algorithm of room version 1.
	StateResV1 StateResAlgorithm = iota + 1
	// StateResV2 is rooms/fragments/v2-state-res.md (versions 2 to 11).
	StateResV2
	// StateResV2_1 is room version 12's revision: iterative auth checks
	// start from an empty state map and the full conflicted set includes
	// the conflicted state subgraph.
	StateResV2_1
)

// RoomVersion describes, as data, everything that differs between room
// versions. Values come from Version and are shared: do not modify them.
type RoomVersion struct {
	// ID is the version string, e.g. "10".
	ID string
	// Stable is true for versions the spec lists as stable (rooms/_index.md).
	Stable bool

	EventIDFormat  EventIDFormat
	RedactionRules RedactionRules
	StateRes       StateResAlgorithm

	// StrictCanonicalJSON (v6+): events must pass CanonicalizeStrict; no
	// floats, integers within ±(2^53-1) (rooms/fragments/v6-canonical-json.md).
	StrictCanonicalJSON bool
	// MaxDepth is the largest allowed depth: 2^63-1, or 2^53-1 from v6
	// (components/depth_v6.yaml).
	MaxDepth int64
	// EnforceKeyValidity (v5+): signing keys must be valid at the event's
	// origin_server_ts (rooms/fragments/v5-signing-requirements.md).
	EnforceKeyValidity bool

	// SpecialCaseAliasesAuth (v1-v5): auth rule 4 for m.room.aliases.
	SpecialCaseAliasesAuth bool
	// RedactionAuthRule (v1-v2): auth rule 11 checks the redact level or the
	// event ID domains; v3+ checks redactions only when applying them
	// (rooms/fragments/v3-handling-redactions.md).
	RedactionAuthRule bool
	// NotificationsPowerLevels (v6+): power level auth rules also check
	// changes to "notifications".
	NotificationsPowerLevels bool
	// Knocking (v7+): membership "knock" and join rule "knock".
	Knocking bool
	// Restricted (v8+): join rule "restricted" and
	// join_authorised_via_users_server.
	Restricted bool
	// KnockRestricted (v10+): join rule "knock_restricted".
	KnockRestricted bool
	// EnforceIntPowerLevels (v10+): power level values must be integers,
	// not strings (v1-v9, rooms/fragments/v1-stringy-power-levels.md).
	EnforceIntPowerLevels bool
	// FloatPowerLevels (v1-v5): power levels may be floats, truncated
	// (rooms/fragments/v1-floaty-power-levels.md).
	FloatPowerLevels bool
	// CreateRequiresCreator (v1-v10): the create event must have
	// content.creator, which is "the creator" in the join rule 5.2.1 (v11
	// uses the create event's sender).
	CreateRequiresCreator bool
	// RedactsInContent (v11+): m.room.redaction carries "redacts" in content
	// rather than at the top level.
	RedactsInContent bool
	// RoomIDFromCreate (v12): the room ID is "!" + the create event's
	// reference hash; the create event has no room_id and is not listed in
	// auth_events.
	RoomIDFromCreate bool
	// PrivilegedCreators (v12): the create event's sender and
	// content.additional_creators have infinite power and cannot appear in
	// power_levels users.
	PrivilegedCreators bool
	// CreateInAuthEvents: the create event is selected into auth_events
	// (all versions before 12; server-server API "Auth events selection").
	CreateInAuthEvents bool
}

// EventIDInJSON reports whether events carry their ID in an event_id field
// (room versions 1 and 2) rather than having it computed.
func (v *RoomVersion) EventIDInJSON() bool { return v.EventIDFormat == EventIDFormatV1 }

// DefaultRoomVersion is the version for new rooms (rooms/_index.md: servers
// SHOULD use room version 12).
const DefaultRoomVersion = "12"

var versions = func() map[string]*RoomVersion {
	m := map[string]*RoomVersion{}
	for n := 1; n <= 12; n++ {
		v := &RoomVersion{
			ID:                       strconv.Itoa(n),
			Stable:                   true,
			StrictCanonicalJSON:      n >= 6,
			EnforceKeyValidity:       n >= 5,
			SpecialCaseAliasesAuth:   n <= 5,
			RedactionAuthRule:        n <= 2,
			NotificationsPowerLevels: n >= 6,
			Knocking:                 n >= 7,
			Restricted:               n >= 8,
			KnockRestricted:          n >= 10,
			EnforceIntPowerLevels:    n >= 10,
			FloatPowerLevels:         n <= 5,
			CreateRequiresCreator:    n <= 10,
			RedactsInContent:         n >= 11,
			RoomIDFromCreate:         n >= 12,
			PrivilegedCreators:       n >= 12,
			CreateInAuthEvents:       n < 12,
			MaxDepth:                 math.MaxInt64,
		}
		if n >= 6 {
			v.MaxDepth = 1<<53 - 1
		}
		switch {
		case n <= 2:
			v.EventIDFormat = EventIDFormatV1
		case n == 3:
			v.EventIDFormat = EventIDFormatV3
		default:
			v.EventIDFormat = EventIDFormatV4
		}
		switch {
		case n <= 5:
			v.RedactionRules = RedactionV1
		case n <= 7:
			v.RedactionRules = RedactionV6
		case n == 8:
			v.RedactionRules = RedactionV8
		case n <= 10:
			v.RedactionRules = RedactionV9
		default:
			v.RedactionRules = RedactionV11
		}
		switch {
		case n == 1:
			v.StateRes = StateResV1
		case n <= 11:
			v.StateRes = StateResV2
		default:
			v.StateRes = StateResV2_1
		}
		m[v.ID] = v
	}
	return m
}()

// Version returns the room version with the given ID, or false if Axon does
// not know it. The returned value is shared and must not be modified.
func Version(id string) (*RoomVersion, bool) {
	v, ok := versions[id]
	return v, ok
}

// MustVersion is Version for IDs known at compile time; it panics on an
// unknown ID and is meant for package-level variables and tests.
func MustVersion(id string) *RoomVersion {
	v, ok := versions[id]
	if !ok {
		panic("event: unknown room version " + id)
	}
	return v
}

// StableVersions lists the stable room version IDs in numeric order, as
// advertised in the client capabilities.
func StableVersions() []string {
	var ids []string
	for id, v := range versions {
		if v.Stable {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return ids
}
