package routing

import "encoding/json"

// redactedBecauseKeys are the keys of unsigned.redacted_because served to
// clients: the redaction as a ClientEvent (the consumer stored its
// event_id with it).
var redactedBecauseKeys = []string{"content", "event_id", "origin_server_ts", "sender", "type", "redacts", "room_id"}

// redactedBecause renders the redaction event a redacted event carries in
// unsigned.redacted_because in the client format: the federation keys
// (hashes, signatures, auth_events, prev_events, depth) dropped. What is
// not an object is passed through.
func redactedBecause(raw json.RawMessage) json.RawMessage {
	var pdu map[string]json.RawMessage
	if json.Unmarshal(raw, &pdu) != nil || pdu == nil {
		return raw
	}
	out := make(map[string]json.RawMessage, len(redactedBecauseKeys))
	for _, k := range redactedBecauseKeys {
		if v, ok := pdu[k]; ok {
			out[k] = v
		}
	}
	if _, ok := out["content"]; !ok {
		out["content"] = json.RawMessage(`{}`)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return raw
	}
	return b
}
