// Package event implements Matrix PDUs (persistent data units, the events
// of a room) for room versions 1 to 12: the room versions as data, parsing
// and validating events in each version's format, content and reference
// hashes, event IDs, the redaction algorithms, signature checks and building
// new signed events.
//
// A PDU keeps its whole JSON, in canonical form, so fields this package does
// not know about survive every round trip and hashes and signatures stay
// valid. Auth rules and state resolution live in matrix/authrules and
// matrix/stateres.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
)

// ErrFormat is wrapped by every error about an event not matching its room
// version's event format. Such events are dropped (server-server API,
// "Checks performed on receipt of a PDU", step 1).
var ErrFormat = errors.New("invalid event format")

// ErrTooLarge means the event's canonical JSON exceeds MaxEventSize.
var ErrTooLarge = errors.New("event too large")

// Size limits from the client-server API, "Size limits".
const (
	// MaxEventSize bounds the whole event, as canonical JSON in the
	// federation format, signatures included.
	MaxEventSize = 65536
	// MaxKeyFieldSize bounds state_key and type (sender, room_id and
	// event_id are bounded by their identifier grammar, also 255 bytes).
	MaxKeyFieldSize = 255
	// MaxPrevEvents and MaxAuthEvents come from the PDU schemas
	// ("Must contain less than or equal to 20 events" / "10 events").
	MaxPrevEvents = 20
	MaxAuthEvents = 10
)

// maxInputSize rejects absurd inputs before canonicalizing them. A valid
// event may be larger than MaxEventSize before canonicalization (whitespace,
// escapes), but not by this much.
const maxInputSize = 1 << 20

// Well-known event types used by this package.
const (
	TypeCreate            = "m.room.create"
	TypeMember            = "m.room.member"
	TypePowerLevels       = "m.room.power_levels"
	TypeJoinRules         = "m.room.join_rules"
	TypeThirdPartyInvite  = "m.room.third_party_invite"
	TypeRedaction         = "m.room.redaction"
	TypeAliases           = "m.room.aliases"
	TypeHistoryVisibility = "m.room.history_visibility"
)

// PDU is a parsed, format-checked event of a known room version. It is
// immutable: every accessor returns data that the caller must not modify.
type PDU struct {
	raw      []byte // canonical JSON, as stored and sent over federation
	v        *RoomVersion
	eventID  matrix.EventID
	roomID   matrix.RoomID
	sender   matrix.UserID
	typ      string
	stateKey *string
	content  []byte
	unsigned []byte
	prev     []matrix.EventID
	auth     []matrix.EventID
	depth    int64
	ts       int64
	redacts  matrix.EventID
}

// Parse checks raw against the event format of room version v and returns
// the event. It canonicalizes raw (strictly from room version 6), enforces
// the size limits, the types of the known fields and the identifier
// grammars, and computes the event ID. It does not check hashes, signatures
// or auth rules.
func Parse(raw []byte, v *RoomVersion) (*PDU, error) {
	return parse(raw, v, "")
}

// ParseWithID is Parse that also checks the event has the expected ID, for
// events fetched by ID (from storage, /event, backfill).
func ParseWithID(raw []byte, v *RoomVersion, id matrix.EventID) (*PDU, error) {
	e, err := parse(raw, v, id)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ParseStored returns an event this server stored after Parse (or
// ParseWithID) accepted it, with its known ID: raw must be the event's
// canonical JSON (PDU.JSON) and id its ID. It skips what only re-derives
// the stored facts, canonicalization and the reference hash, and still
// checks the format, so a corrupt row is an error; a row whose JSON and ID
// do not match is not detected, nor an event over the size limits (it was
// checked when stored). The event keeps raw, which the caller must not
// modify afterwards. Use it only for the server's own storage.
func ParseStored(raw []byte, v *RoomVersion, id matrix.EventID) (*PDU, error) {
	if v == nil {
		return nil, errors.New("parse stored event: nil room version")
	}
	if id == "" {
		return nil, errors.New("parse stored event: no event ID")
	}
	e, err := parseCanonical(raw, v, id)
	if err != nil {
		return nil, fmt.Errorf("parse stored event %s: %w", id, err)
	}
	return e, nil
}

func parse(raw []byte, v *RoomVersion, wantID matrix.EventID) (*PDU, error) {
	if v == nil {
		return nil, errors.New("parse event: nil room version")
	}
	if len(raw) > maxInputSize {
		return nil, fmt.Errorf("parse event: %w: %d bytes", ErrTooLarge, len(raw))
	}
	var obj []byte
	var err error
	if v.StrictCanonicalJSON {
		obj, err = canonicaljson.CanonicalizeStrict(raw)
	} else {
		obj, err = canonicaljson.Canonicalize(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("parse event: %w: %w", ErrFormat, err)
	}
	if len(obj) > MaxEventSize {
		return nil, fmt.Errorf("parse event: %w: %d bytes", ErrTooLarge, len(obj))
	}
	e, err := parseCanonical(obj, v, "")
	if err != nil {
		return nil, fmt.Errorf("parse event: %w", err)
	}
	if wantID != "" && e.eventID != wantID {
		return nil, fmt.Errorf("parse event: %w: event ID is %s, expected %s", ErrFormat, e.eventID, wantID)
	}
	return e, nil
}

// fields records which required fields were seen.
type fields struct {
	authEvents, content, depth, hashes, ts, prevEvents, roomID, sender, signatures, typ bool
}

// requiredFields lists the fields every event has (room_id is checked on
// its own: a v12 create event has none).
var requiredFields = [...]struct {
	name string
	seen func(*fields) bool
}{
	{"auth_events", func(f *fields) bool { return f.authEvents }},
	{"content", func(f *fields) bool { return f.content }},
	{"depth", func(f *fields) bool { return f.depth }},
	{"hashes", func(f *fields) bool { return f.hashes }},
	{"origin_server_ts", func(f *fields) bool { return f.ts }},
	{"prev_events", func(f *fields) bool { return f.prevEvents }},
	{"sender", func(f *fields) bool { return f.sender }},
	{"signatures", func(f *fields) bool { return f.signatures }},
	{"type", func(f *fields) bool { return f.typ }},
}

// parseCanonical parses the canonical JSON obj; knownID, when not empty,
// is the event's ID, taken instead of computed (ParseStored).
func parseCanonical(obj []byte, v *RoomVersion, knownID matrix.EventID) (*PDU, error) {
	e := &PDU{raw: obj, v: v}
	var seen fields
	var topRedacts []byte
	err := canonicaljson.EachMember(obj, func(k, val []byte) error {
		var err error
		switch string(k) {
		case "auth_events":
			seen.authEvents = true
			e.auth, err = parseRefs(val, v, MaxAuthEvents)
		case "content":
			seen.content = true
			if val[0] != '{' {
				return fmt.Errorf("%w: content is not an object", ErrFormat)
			}
			e.content = val
		case "depth":
			seen.depth = true
			e.depth, err = parseInt(val)
			if err == nil && (e.depth < 0 || e.depth > v.MaxDepth) {
				err = fmt.Errorf("depth %d out of range", e.depth)
			}
		case "hashes":
			seen.hashes = true
			if val[0] != '{' {
				return fmt.Errorf("%w: hashes is not an object", ErrFormat)
			}
			if h, ok := canonicaljson.Lookup(val, "sha256"); ok && h[0] != '"' {
				return fmt.Errorf("%w: hashes.sha256 is not a string", ErrFormat)
			}
		case "origin_server_ts":
			seen.ts = true
			e.ts, err = parseInt(val)
		case "prev_events":
			seen.prevEvents = true
			e.prev, err = parseRefs(val, v, MaxPrevEvents)
		case "room_id":
			seen.roomID = true
			var s string
			if s, err = parseString(val); err == nil {
				e.roomID, err = matrix.ParseRoomID(s)
			}
		case "sender":
			seen.sender = true
			var s string
			if s, err = parseString(val); err == nil {
				e.sender, err = matrix.ParseUserID(s)
			}
		case "signatures":
			seen.signatures = true
			if val[0] != '{' {
				return fmt.Errorf("%w: signatures is not an object", ErrFormat)
			}
		case "state_key":
			var s string
			if s, err = parseString(val); err == nil {
				if len(s) > MaxKeyFieldSize {
					err = fmt.Errorf("longer than %d bytes", MaxKeyFieldSize)
				}
				e.stateKey = &s
			}
		case "type":
			seen.typ = true
			if e.typ, err = parseString(val); err == nil && len(e.typ) > MaxKeyFieldSize {
				err = fmt.Errorf("longer than %d bytes", MaxKeyFieldSize)
			}
		case "unsigned":
			if val[0] != '{' {
				return fmt.Errorf("%w: unsigned is not an object", ErrFormat)
			}
			e.unsigned = val
		case "redacts":
			topRedacts = val
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, k, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}

	isV12Create := v.RoomIDFromCreate && e.typ == TypeCreate
	for _, f := range requiredFields {
		if !f.seen(&seen) {
			return nil, fmt.Errorf("%w: missing %s", ErrFormat, f.name)
		}
	}
	if !seen.roomID && !isV12Create {
		return nil, fmt.Errorf("%w: missing room_id", ErrFormat)
	}

	// Room IDs: v12 removes the domain and the create event's room_id
	// (rooms/v12.md event format; components/room_id_v12.yaml "Omitted
	// from m.room.create events"); earlier versions always have a domain.
	if v.RoomIDFromCreate {
		if isV12Create && seen.roomID {
			return nil, fmt.Errorf("%w: room version %s create event must not have a room_id", ErrFormat, v.ID)
		}
		if !isV12Create {
			if _, hasServer := e.roomID.Server(); hasServer {
				return nil, fmt.Errorf("%w: room version %s room_id %q has a server part", ErrFormat, v.ID, e.roomID)
			}
		}
	} else if _, hasServer := e.roomID.Server(); !hasServer {
		return nil, fmt.Errorf("%w: room version %s room_id %q has no server part", ErrFormat, v.ID, e.roomID)
	}

	// redacts: top level until v10, in content from v11 (rooms/v11.md,
	// "Moving the redacts property").
	if v.RedactsInContent {
		if e.typ == TypeRedaction {
			if val, ok := canonicaljson.Lookup(e.content, "redacts"); ok {
				if e.redacts, err = parseEventIDValue(val); err != nil {
					return nil, fmt.Errorf("%w: content.redacts: %v", ErrFormat, err)
				}
			}
		}
	} else if topRedacts != nil {
		if e.redacts, err = parseEventIDValue(topRedacts); err != nil {
			return nil, fmt.Errorf("%w: redacts: %v", ErrFormat, err)
		}
	}

	if knownID != "" {
		e.eventID = knownID
	} else if e.eventID, err = computeEventID(obj, v); err != nil {
		return nil, err
	}
	if isV12Create {
		e.roomID = matrix.RoomID("!" + e.eventID[1:])
	}
	return e, nil
}

func parseString(val []byte) (string, error) {
	if val[0] != '"' {
		return "", errors.New("not a string")
	}
	return canonicaljson.Unquote(val)
}

func parseEventIDValue(val []byte) (matrix.EventID, error) {
	s, err := parseString(val)
	if err != nil {
		return "", err
	}
	return matrix.ParseEventID(s)
}

// parseInt reads a canonical integer. Lenient canonical JSON may keep a
// float or a huge integer as written; both are errors here.
func parseInt(val []byte) (int64, error) {
	n, err := strconv.ParseInt(string(val), 10, 64)
	if err != nil {
		return 0, errors.New("not a 64-bit integer")
	}
	return n, nil
}

// parseRefs reads prev_events or auth_events: event IDs from room version 3,
// [event ID, {hashes}] pairs before (PDU schema pdu_v1).
func parseRefs(val []byte, v *RoomVersion, max int) ([]matrix.EventID, error) {
	if val[0] != '[' {
		return nil, errors.New("not an array")
	}
	var ids []matrix.EventID
	err := canonicaljson.EachElement(val, func(el []byte) error {
		if len(ids) == max {
			return fmt.Errorf("more than %d entries", max)
		}
		if v.EventIDInJSON() {
			var pair [][]byte
			if el[0] == '[' {
				_ = canonicaljson.EachElement(el, func(x []byte) error {
					pair = append(pair, x)
					return nil
				})
			}
			if len(pair) != 2 || pair[1][0] != '{' {
				return errors.New("entry is not an [event ID, hashes] pair")
			}
			el = pair[0]
		}
		id, err := parseEventIDValue(el)
		if err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []matrix.EventID{}
	}
	return ids, nil
}

// EventID returns the event's ID: the event_id field in room versions 1 and
// 2, computed from the reference hash afterwards.
func (e *PDU) EventID() matrix.EventID { return e.eventID }

// RoomID returns the room ID. For a room version 12 create event, which has
// no room_id field, it is the event ID with the "!" sigil.
func (e *PDU) RoomID() matrix.RoomID { return e.roomID }

// Sender returns the sender's user ID.
func (e *PDU) Sender() matrix.UserID { return e.sender }

// Type returns the event type.
func (e *PDU) Type() string { return e.typ }

// StateKey returns the state key, or nil for a message event.
func (e *PDU) StateKey() *string { return e.stateKey }

// StateKeyEquals reports whether the event is a state event with state key s.
func (e *PDU) StateKeyEquals(s string) bool { return e.stateKey != nil && *e.stateKey == s }

// IsState reports whether the event has a state key.
func (e *PDU) IsState() bool { return e.stateKey != nil }

// Content returns the content object as canonical JSON.
func (e *PDU) Content() json.RawMessage { return e.content }

// PrevEventIDs returns the IDs in prev_events.
func (e *PDU) PrevEventIDs() []matrix.EventID { return e.prev }

// AuthEventIDs returns the IDs in auth_events.
func (e *PDU) AuthEventIDs() []matrix.EventID { return e.auth }

// Depth returns the depth.
func (e *PDU) Depth() int64 { return e.depth }

// OriginServerTS returns origin_server_ts, in milliseconds.
func (e *PDU) OriginServerTS() int64 { return e.ts }

// Redacts returns the event an m.room.redaction redacts: the top-level
// redacts field in room versions 1 to 10, content.redacts from version 11.
// It is empty for other events and for a redaction without a target.
func (e *PDU) Redacts() matrix.EventID { return e.redacts }

// Version returns the event's room version.
func (e *PDU) Version() *RoomVersion { return e.v }

// JSON returns the full event as canonical JSON, as stored and as sent over
// federation. From room version 3 it has no event_id (unless the sender put
// one in, which is then part of what is hashed and kept).
func (e *PDU) JSON() []byte { return e.raw }

// Unsigned returns the unsigned object, or nil if the event has none.
func (e *PDU) Unsigned() json.RawMessage { return e.unsigned }

// Membership returns content.membership of an m.room.member event, or "".
func (e *PDU) Membership() string {
	if e.typ != TypeMember {
		return ""
	}
	val, ok := canonicaljson.Lookup(e.content, "membership")
	if !ok {
		return ""
	}
	s, _ := parseString(val)
	return s
}

// Redacted returns the event after the redaction algorithm of its room
// version. The event ID does not change: it is the hash of the redacted form.
func (e *PDU) Redacted() (*PDU, error) {
	red, err := redactCanonical(e.raw, e.v)
	if err != nil {
		return nil, fmt.Errorf("redact %s: %w", e.eventID, err)
	}
	r, err := parseCanonical(red, e.v, e.eventID) // the ID does not change
	if err != nil {
		return nil, fmt.Errorf("redact %s: %w", e.eventID, err)
	}
	return r, nil
}

// WithUnsigned returns a copy of the event with its unsigned object replaced
// by unsigned (nil removes it). Unsigned data is not covered by hashes or
// signatures, so the event ID does not change.
func (e *PDU) WithUnsigned(unsigned any) (*PDU, error) {
	var raw []byte
	var err error
	if unsigned == nil {
		raw, err = canonicaljson.Filter(e.raw, func(k string) bool { return k != "unsigned" })
	} else {
		var enc []byte
		marshal := canonicaljson.Marshal
		if e.v.StrictCanonicalJSON {
			marshal = canonicaljson.MarshalStrict
		}
		if enc, err = marshal(unsigned); err == nil {
			if len(enc) == 0 || enc[0] != '{' {
				return nil, fmt.Errorf("set unsigned of %s: %w: not an object", e.eventID, ErrFormat)
			}
			raw, err = canonicaljson.Set(e.raw, "unsigned", enc)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("set unsigned of %s: %w", e.eventID, err)
	}
	if len(raw) > MaxEventSize {
		return nil, fmt.Errorf("set unsigned of %s: %w: %d bytes", e.eventID, ErrTooLarge, len(raw))
	}
	cp := *e
	cp.raw = raw
	cp.unsigned = nil
	if u, ok := canonicaljson.Lookup(raw, "unsigned"); ok {
		cp.unsigned = u
	}
	if c, ok := canonicaljson.Lookup(raw, "content"); ok {
		cp.content = c
	}
	return &cp, nil
}
