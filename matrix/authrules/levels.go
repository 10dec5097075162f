package authrules

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/event"
)

// CreatorLevel is the power level of a room version 12 room creator, which
// the spec calls "infinitely high" (rooms/v12.md, "Authorisation rules").
// Every level an event can carry is within ±(2^53-1), so no other user
// reaches it, and two creators compare equal, so one cannot kick another.
const CreatorLevel int64 = math.MaxInt64

// Defaults from the server-server API ("Definitions") and the
// m.room.power_levels schema, used when a property or the whole event is
// missing.
const (
	defaultUsers       = 0
	defaultEvents      = 0
	defaultState       = 50
	defaultBan         = 50
	defaultKick        = 50
	defaultRedact      = 50
	defaultInvite      = 0
	defaultCreatorNoPL = 100 // "the room's creator has a power level of 100"
)

// errLevel describes a power level value that is not an integer in any of
// the forms the room version accepts.
var errLevel = errors.New("not a power level")

// parseLevel reads one power level value. present is false for an absent
// value and for JSON null, which every implementation has treated as
// absent (NOTSPEC: the spec does not mention null; in room version 10 and
// later the power levels rules reject it in new events anyway).
//
// Accepted forms by version:
//   - integers, always;
//   - v1–v9: strings holding a base 10 integer, with optional surrounding
//     whitespace, leading zeros and one sign (rooms/fragments/
//     v1-stringy-power-levels.md);
//   - v1–v5: numbers with a fraction or exponent, truncated toward zero;
//     values outside binary64 are errors (v1-floaty-power-levels.md).
//
// NOTSPEC: integers beyond int64 (possible only in v1–v9 strings and v1–v5
// numbers) saturate to the int64 range instead of being compared exactly.
func parseLevel(val []byte, v *event.RoomVersion) (n int64, present bool, err error) {
	if len(val) == 0 || string(val) == "null" {
		return 0, false, nil
	}
	switch c := val[0]; {
	case c == '"':
		if v.EnforceIntPowerLevels {
			return 0, true, fmt.Errorf("%w: %s is a string", errLevel, clip(val))
		}
		s, err := canonicaljson.Unquote(val)
		if err != nil {
			return 0, true, fmt.Errorf("%w: %v", errLevel, err)
		}
		n, ok := parseIntString(s)
		if !ok {
			return 0, true, fmt.Errorf("%w: %s is not an integer string", errLevel, clip(val))
		}
		return n, true, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
			return n, true, nil
		}
		if !v.FloatPowerLevels {
			return 0, true, fmt.Errorf("%w: %s is not an integer", errLevel, clip(val))
		}
		f, err := strconv.ParseFloat(string(val), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, true, fmt.Errorf("%w: %s is outside binary64", errLevel, clip(val))
		}
		return saturate(math.Trunc(f)), true, nil
	}
	return 0, true, fmt.Errorf("%w: %s is not a number", errLevel, clip(val))
}

func saturate(f float64) int64 {
	switch {
	case f >= 1<<63:
		return math.MaxInt64
	case f < -(1 << 63):
		return math.MinInt64
	}
	return int64(f)
}

// parseIntString applies the string format of v1-stringy-power-levels.md.
func parseIntString(s string) (int64, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	digits := s
	if digits != "" && (digits[0] == '+' || digits[0] == '-') {
		digits = digits[1:]
	}
	if digits == "" {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	if err != nil {
		// Only ErrRange is possible here: saturate (see parseLevel).
		return n, true
	}
	return n, true
}

// isJSONInt reports whether val is a JSON integer (room version 10's
// "integer": no string, no fraction; strict canonical JSON bounds it).
func isJSONInt(val []byte) bool {
	if len(val) == 0 || !(val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) {
		return false
	}
	_, err := strconv.ParseInt(string(val), 10, 64)
	return err == nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// levels answers power level questions about a room: the m.room.power_levels
// content in force (nil when the room has none) and the create event, which
// names the creators.
type levels struct {
	v       *event.RoomVersion
	create  *event.PDU
	content []byte // nil: no m.room.power_levels event
}

func newLevels(v *event.RoomVersion, create, pl *event.PDU) levels {
	l := levels{v: v, create: create}
	if pl != nil {
		l.content = pl.Content()
	}
	return l
}

// isCreator reports whether u is a room version 12 creator: the create
// event's sender or one of content.additional_creators.
func (l levels) isCreator(u matrix.UserID) bool {
	if !l.v.PrivilegedCreators || l.create == nil {
		return false
	}
	return isCreator(l.create, u)
}

func isCreator(create *event.PDU, u matrix.UserID) bool {
	if create.Sender() == u {
		return true
	}
	arr, ok := lookup(create.Content(), "additional_creators")
	if !ok || len(arr) == 0 || arr[0] != '[' {
		return false
	}
	found := false
	_ = canonicaljson.EachElement(arr, func(val []byte) error {
		if s, ok := jsonString(val); ok && s == string(u) {
			found = true
			return errFound
		}
		return nil
	})
	return found
}

var errFound = errors.New("found")

// creator is the single creator of room versions 1 to 11, who has power
// level 100 when there is no m.room.power_levels event: content.creator up
// to v10, the sender from v11 (rooms/v11.md removes content.creator).
func creator(v *event.RoomVersion, create *event.PDU) matrix.UserID {
	if create == nil {
		return ""
	}
	if v.CreateRequiresCreator {
		val, _ := lookup(create.Content(), "creator")
		s, _ := jsonString(val)
		return matrix.UserID(s)
	}
	return create.Sender()
}

// user returns u's power level.
func (l levels) user(u matrix.UserID) (int64, error) {
	if l.isCreator(u) {
		return CreatorLevel, nil
	}
	if l.content == nil {
		if !l.v.PrivilegedCreators && u != "" && creator(l.v, l.create) == u {
			return defaultCreatorNoPL, nil
		}
		return defaultUsers, nil
	}
	if users, ok := lookup(l.content, "users"); ok && string(users) != "null" {
		if users[0] != '{' {
			return 0, fmt.Errorf("%w: users is not an object", errLevel)
		}
		if val, ok := lookup(users, string(u)); ok {
			n, present, err := parseLevel(val, l.v)
			if err != nil {
				return 0, fmt.Errorf("users %s: %w", u, err)
			}
			if present {
				return n, nil
			}
		}
	}
	return l.named("users_default", defaultUsers)
}

// named returns a top-level level such as "ban", or def when it is absent.
func (l levels) named(name string, def int64) (int64, error) {
	if l.content == nil {
		return def, nil
	}
	val, _ := lookup(l.content, name)
	n, present, err := parseLevel(val, l.v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if !present {
		return def, nil
	}
	return n, nil
}

// event returns the level required to send an event of type typ: the
// "required power level" of the server-server API definitions.
func (l levels) event(typ string, state bool) (int64, error) {
	if l.content != nil {
		if evs, ok := lookup(l.content, "events"); ok && string(evs) != "null" {
			if evs[0] != '{' {
				return 0, fmt.Errorf("%w: events is not an object", errLevel)
			}
			val, _ := lookup(evs, typ)
			n, present, err := parseLevel(val, l.v)
			if err != nil {
				return 0, fmt.Errorf("events %s: %w", typ, err)
			}
			if present {
				return n, nil
			}
		}
	}
	if state {
		return l.named("state_default", defaultState)
	}
	return l.named("events_default", defaultEvents)
}

func jsonString(val []byte) (string, bool) {
	if len(val) == 0 || val[0] != '"' {
		return "", false
	}
	s, err := canonicaljson.Unquote(val)
	return s, err == nil
}

// PowerLevel returns the effective power level of user in the room whose
// create event and current m.room.power_levels event (nil if none) are
// given: CreatorLevel for a room version 12 creator, the users entry,
// users_default, or, without a power levels event, 100 for the creator of
// a room version 1–11 room and 0 for everyone else.
//
// A value that is not a valid power level for the room version is treated
// as absent (so users_default, then 0, applies): this function answers
// questions such as ordering in state resolution that cannot fail. Check
// rejects events whose authorisation depends on such a value.
func PowerLevel(user matrix.UserID, create, powerLevels *event.PDU) int64 {
	v := versionOf(create, powerLevels)
	if v == nil {
		return defaultUsers
	}
	l := newLevels(v, create, powerLevels)
	n, err := l.user(user)
	if err == nil {
		return n
	}
	n, err = l.named("users_default", defaultUsers)
	if err == nil {
		return n
	}
	return defaultUsers
}

// RequiredPowerLevel returns the level a sender needs to send an event of
// type eventType (a state event when isState): the events entry, else
// state_default or events_default, with the spec's defaults of 50 and 0
// when the room has no power levels event. Malformed values count as
// absent, as in PowerLevel.
func RequiredPowerLevel(eventType string, isState bool, powerLevels *event.PDU) int64 {
	if powerLevels == nil {
		if isState {
			return defaultState
		}
		return defaultEvents
	}
	l := newLevels(powerLevels.Version(), nil, powerLevels)
	if n, err := l.event(eventType, isState); err == nil {
		return n
	}
	name, def := "events_default", int64(defaultEvents)
	if isState {
		name, def = "state_default", defaultState
	}
	if n, err := l.named(name, def); err == nil {
		return n
	}
	return def
}

// Creators returns the room's creators: in room version 12 the create
// event's sender followed by content.additional_creators; before, the
// single creator (content.creator up to v10, the sender in v11).
func Creators(create *event.PDU) []matrix.UserID {
	if create == nil {
		return nil
	}
	v := create.Version()
	if !v.PrivilegedCreators {
		if c := creator(v, create); c != "" {
			return []matrix.UserID{c}
		}
		return nil
	}
	out := []matrix.UserID{create.Sender()}
	if arr, ok := lookup(create.Content(), "additional_creators"); ok && len(arr) > 0 && arr[0] == '[' {
		_ = canonicaljson.EachElement(arr, func(val []byte) error {
			if s, ok := jsonString(val); ok && matrix.UserID(s) != create.Sender() {
				out = append(out, matrix.UserID(s))
			}
			return nil
		})
	}
	return out
}

// RedactionAllowed reports whether a server should apply the redaction
// redaction to original (rooms/fragments/v3-handling-redactions.md): the
// redaction's sender has at least the redact level, or both events were
// sent by users of the same server. In room versions 1 and 2 the auth rule
// for m.room.redaction decides instead: the redact level, or the same
// domain in both event IDs. create and powerLevels are the room's state
// (powerLevels may be nil).
func RedactionAllowed(redaction, original, create, powerLevels *event.PDU) bool {
	if redaction == nil || original == nil {
		return false
	}
	v := redaction.Version()
	l := newLevels(v, create, powerLevels)
	if sl, err := l.user(redaction.Sender()); err == nil {
		if rl, err := l.named("redact", defaultRedact); err == nil && sl >= rl {
			return true
		}
	}
	if v.RedactionAuthRule {
		a, okA := redaction.EventID().Server()
		b, okB := original.EventID().Server()
		return okA && okB && a == b
	}
	return redaction.Sender().Server() == original.Sender().Server()
}

func versionOf(evs ...*event.PDU) *event.RoomVersion {
	for _, e := range evs {
		if e != nil {
			return e.Version()
		}
	}
	return nil
}

// lookup is canonicaljson.Lookup for the canonical objects of events: keys
// are sorted by code point (which byte order of UTF-8 preserves), so the
// scan stops at the first greater key instead of walking past large
// values such as a power levels users map. Keys with escapes are compared
// decoded and never stop the scan early.
func lookup(obj []byte, key string) ([]byte, bool) {
	var found []byte
	ok := false
	_ = canonicaljson.EachMember(obj, func(k, v []byte) error {
		if !bytes.ContainsRune(k, '\\') {
			switch c := compareKey(k, key); {
			case c == 0:
				found, ok = v, true
				return errFound
			case c > 0:
				return errFound
			}
			return nil
		}
		if dk, err := decodeKey(k); err == nil && dk == key {
			found, ok = v, true
			return errFound
		}
		return nil
	})
	return found, ok
}

// compareKey compares a raw key with key byte by byte, without converting.
func compareKey(k []byte, key string) int {
	n := min(len(k), len(key))
	for i := 0; i < n; i++ {
		if k[i] != key[i] {
			if k[i] < key[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(k) < len(key):
		return -1
	case len(k) > len(key):
		return 1
	}
	return 0
}
