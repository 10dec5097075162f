package event

import (
	"errors"
	"fmt"

	"github.com/axon-hs/axon/matrix/canonicaljson"
)

// Top-level keys kept by the redaction algorithm. Versions 1 to 10 share one
// list; version 11 drops origin, membership and prev_state
// (rooms/fragments/v1-redactions.md ... v11-redactions.md).
var (
	keepTopV1 = set("event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
		"signatures", "depth", "prev_events", "prev_state", "auth_events", "origin",
		"origin_server_ts", "membership")
	keepTopV11 = set("event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
		"signatures", "depth", "prev_events", "auth_events", "origin_server_ts")
)

// keepContent maps an event type to the content keys that survive redaction,
// per redaction rules. Types not listed keep no content keys.
var keepContent = map[RedactionRules]map[string]map[string]bool{
	RedactionV1: {
		"m.room.member":             set("membership"),
		"m.room.create":             set("creator"),
		"m.room.join_rules":         set("join_rule"),
		"m.room.power_levels":       set("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.aliases":            set("aliases"),
		"m.room.history_visibility": set("history_visibility"),
	},
	RedactionV6: {
		"m.room.member":             set("membership"),
		"m.room.create":             set("creator"),
		"m.room.join_rules":         set("join_rule"),
		"m.room.power_levels":       set("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": set("history_visibility"),
	},
	RedactionV8: {
		"m.room.member":             set("membership"),
		"m.room.create":             set("creator"),
		"m.room.join_rules":         set("join_rule", "allow"),
		"m.room.power_levels":       set("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": set("history_visibility"),
	},
	RedactionV9: {
		"m.room.member":             set("membership", "join_authorised_via_users_server"),
		"m.room.create":             set("creator"),
		"m.room.join_rules":         set("join_rule", "allow"),
		"m.room.power_levels":       set("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": set("history_visibility"),
	},
	RedactionV11: {
		// third_party_invite is handled specially: only its "signed" survives.
		"m.room.member":             set("membership", "join_authorised_via_users_server"),
		"m.room.create":             nil, // all keys: see redactContent
		"m.room.join_rules":         set("join_rule", "allow"),
		"m.room.power_levels":       set("ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": set("history_visibility"),
		"m.room.redaction":          set("redacts"),
	},
}

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Redact applies the redaction algorithm of room version v to the event raw
// and returns the canonical JSON of the redacted event. The result has a
// "content" member even if raw had none, as an event always does.
func Redact(raw []byte, v *RoomVersion) ([]byte, error) {
	if v == nil {
		return nil, errors.New("redact: nil room version")
	}
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("redact: %w", err)
	}
	return redactCanonical(obj, v)
}

// redactCanonical is Redact for canonical input.
func redactCanonical(obj []byte, v *RoomVersion) ([]byte, error) {
	return redactCanonicalTo(obj, v, false)
}

// redactCanonicalTo redacts canonical input in one pass over its members;
// with forSigning it also drops "signatures" and "unsigned", giving the
// bytes that are signed and whose hash is the reference hash.
func redactCanonicalTo(obj []byte, v *RoomVersion, forSigning bool) ([]byte, error) {
	keepTop := keepTopV1
	if v.RedactionRules == RedactionV11 {
		keepTop = keepTopV11
	}
	ms, err := canonicaljson.Members(obj)
	if err != nil {
		return nil, fmt.Errorf("redact: %w", err)
	}
	var typ string
	var content []byte
	for _, m := range ms {
		switch string(m.Key) {
		case "type":
			typ, _ = canonicaljson.Unquote(m.Value)
		case "content":
			content = m.Value
		}
	}
	redactedContent, err := redactContent(typ, content, v.RedactionRules)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	n := 0
	write := func(k, val []byte) {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, '"', ':')
		out = append(out, val...)
	}
	wroteContent := false
	for _, m := range ms {
		key := string(m.Key) // protected keys never need unescaping
		if !wroteContent && key >= "content" {
			// An event always has content after redaction, even if the
			// input had none; keys are sorted, so this is its place.
			write([]byte("content"), redactedContent)
			wroteContent = true
			if key == "content" {
				continue
			}
		}
		if !keepTop[key] || (forSigning && (key == "signatures" || key == "unsigned")) {
			continue
		}
		write(m.Key, m.Value)
	}
	if !wroteContent {
		write([]byte("content"), redactedContent)
	}
	return append(out, '}'), nil
}

// redactContent keeps the content keys the rules protect for typ. Content
// that is not an object becomes {}.
func redactContent(typ string, content []byte, rules RedactionRules) ([]byte, error) {
	keep, special := keepContent[rules][typ]
	if !special || len(content) == 0 || content[0] != '{' {
		return []byte("{}"), nil
	}
	if rules == RedactionV11 && typ == "m.room.create" {
		// v11: "m.room.create allows all keys."
		return content, nil
	}
	out, err := canonicaljson.Filter(content, func(k string) bool { return keep[k] })
	if err != nil {
		return nil, fmt.Errorf("redact content: %w", err)
	}
	// v11: "m.room.member ... Additionally, it allows the signed key of the
	// third_party_invite key." Only an object third_party_invite with a
	// signed member keeps anything.
	if rules == RedactionV11 && typ == "m.room.member" {
		if tpi, ok := canonicaljson.Lookup(content, "third_party_invite"); ok && len(tpi) > 0 && tpi[0] == '{' {
			if signed, ok := canonicaljson.Lookup(tpi, "signed"); ok {
				inner, err := canonicaljson.Set([]byte("{}"), "signed", signed)
				if err != nil {
					return nil, fmt.Errorf("redact content: %w", err)
				}
				if out, err = canonicaljson.Set(out, "third_party_invite", inner); err != nil {
					return nil, fmt.Errorf("redact content: %w", err)
				}
			}
		}
	}
	return out, nil
}
