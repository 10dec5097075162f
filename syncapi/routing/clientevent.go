package routing

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// clientEventKeys are the PDU keys kept by the client format
// (ClientEventWithoutRoomID: /sync implies room_id from where the event
// sits). "redacts" is kept too: m.room.redaction carries it at the top level
// in room versions 1 to 10, and clients need it to apply the redaction.
var clientEventKeys = []string{"content", "origin_server_ts", "sender", "state_key", "type", "redacts"}

// serverUnsigned are keys a PDU's unsigned may carry that the client must
// not see as they are: the age is recomputed here, age_ts is a server
// detail, and transaction_id is set only for the sending device.
var serverUnsigned = []string{"age", "age_ts", "transaction_id"}

// clientEvent renders a stored event in the client format for dev: the
// federation-only keys (hashes, signatures, auth_events, prev_events, depth,
// origin, room_id) dropped, event_id from storage (room versions 3 and later
// do not carry it in the JSON), and unsigned computed for this device.
// prevContent is the content of the state event this one replaced, if known.
func clientEvent(e storage.Event, dev userapi.Device, prevContent json.RawMessage, now time.Time) (json.RawMessage, error) {
	return clientEventRelations(e, dev, prevContent, nil, now)
}

// clientEventRelations is clientEvent with the event's bundled
// aggregations (unsigned.m.relations, see aggregations.go), if any.
func clientEventRelations(e storage.Event, dev userapi.Device, prevContent, relations json.RawMessage, now time.Time) (json.RawMessage, error) {
	var pdu map[string]json.RawMessage
	if err := json.Unmarshal(e.JSON, &pdu); err != nil {
		return nil, fmt.Errorf("decode stored event %s: %w", e.EventID, err)
	}
	out := make(map[string]json.RawMessage, len(clientEventKeys)+2)
	for _, k := range clientEventKeys {
		if v, ok := pdu[k]; ok {
			out[k] = v
		}
	}
	if _, ok := out["content"]; !ok {
		out["content"] = json.RawMessage(`{}`)
	}
	id, err := json.Marshal(e.EventID)
	if err != nil {
		return nil, fmt.Errorf("encode event id %s: %w", e.EventID, err)
	}
	out["event_id"] = id

	unsigned := map[string]json.RawMessage{}
	if raw, ok := pdu["unsigned"]; ok {
		// An unsigned that is not an object carries nothing a client can use.
		_ = json.Unmarshal(raw, &unsigned)
		for _, k := range serverUnsigned {
			delete(unsigned, k)
		}
		if rb, ok := unsigned["redacted_because"]; ok {
			unsigned["redacted_because"] = redactedBecause(rb)
		}
	}
	var ts int64
	if raw, ok := pdu["origin_server_ts"]; ok && json.Unmarshal(raw, &ts) == nil {
		// The spec lets the age be off by the clock skew between servers.
		unsigned["age"] = json.RawMessage(fmt.Sprint(max(0, now.UnixMilli()-ts)))
	}
	// Only the device that sent the event learns its transaction id
	// (ClientEvent unsigned.transaction_id).
	if e.Txn.TxnID != "" && e.Txn.UserID == dev.UserID && e.Txn.DeviceID == dev.DeviceID {
		if unsigned["transaction_id"], err = json.Marshal(e.Txn.TxnID); err != nil {
			return nil, fmt.Errorf("encode transaction id: %w", err)
		}
	}
	if e.ReplacesEventID != "" {
		if unsigned["replaces_state"], err = json.Marshal(e.ReplacesEventID); err != nil {
			return nil, fmt.Errorf("encode replaces_state: %w", err)
		}
		if prevContent != nil {
			unsigned["prev_content"] = prevContent
		}
	}
	if relations != nil {
		unsigned["m.relations"] = relations
	}
	if out["unsigned"], err = json.Marshal(unsigned); err != nil {
		return nil, fmt.Errorf("encode unsigned of %s: %w", e.EventID, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode client event %s: %w", e.EventID, err)
	}
	return b, nil
}

// strippedKeys are the keys of a stripped state event (client-server API
// "Stripped state").
var strippedKeys = []string{"content", "sender", "state_key", "type"}

// strippedEvent renders a state event as stripped state.
func strippedEvent(pduJSON []byte) (json.RawMessage, error) {
	var pdu map[string]json.RawMessage
	if err := json.Unmarshal(pduJSON, &pdu); err != nil {
		return nil, fmt.Errorf("decode state event: %w", err)
	}
	out := make(map[string]json.RawMessage, len(strippedKeys))
	for _, k := range strippedKeys {
		if v, ok := pdu[k]; ok {
			out[k] = v
		}
	}
	return json.Marshal(out)
}

// contentOf returns an event's content, nil if it has none.
func contentOf(pduJSON []byte) json.RawMessage {
	var pdu struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(pduJSON, &pdu) != nil {
		return nil
	}
	return pdu.Content
}

// inviteRoomState returns unsigned.invite_room_state (or knock_room_state)
// of a membership event: the stripped state a remote server sent along with
// an invite to a room this server is not in.
func inviteRoomState(pduJSON []byte, key string) []json.RawMessage {
	var pdu struct {
		Unsigned map[string]json.RawMessage `json:"unsigned"`
	}
	if json.Unmarshal(pduJSON, &pdu) != nil {
		return nil
	}
	var evs []json.RawMessage
	if json.Unmarshal(pdu.Unsigned[key], &evs) != nil {
		return nil
	}
	return evs
}
