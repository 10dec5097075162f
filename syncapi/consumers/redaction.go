package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// applyRedaction replaces the stored copy of the event a redaction
// redacted with the roomserver's redacted copy, in the transaction that
// stores the redaction: a redelivered message is a no-op as a whole, and
// /sync, /messages, /context and /event serve the redacted form from then
// on. The redaction event is put in unsigned.redacted_because with its
// event_id, which room versions 3 and later do not carry in the PDU.
func (c *RoomServerOutput) applyRedaction(ctx context.Context, tx *sql.Tx, ev rsapi.OutputEvent) error {
	if ev.RedactedEventID == "" || len(ev.RedactedEvent) == 0 {
		return nil
	}
	js, err := withRedactionID(ev.RedactedEvent, ev.EventID)
	if err != nil {
		return fmt.Errorf("redacted copy of %s: %w", ev.RedactedEventID, err)
	}
	found, err := c.db.Events.UpdateJSON(ctx, tx, ev.RoomID, ev.RedactedEventID, js)
	if err != nil {
		return err
	}
	if !found {
		// Only events the syncapi received can be served, redacted or not.
		c.log.WarnContext(ctx, "redacted event unknown to the syncapi", "event_id", ev.RedactedEventID,
			"redaction", ev.EventID, "room_id", ev.RoomID)
	}
	return nil
}

// withRedactionID sets unsigned.redacted_because.event_id of a redacted
// event.
func withRedactionID(redacted json.RawMessage, redactionID string) ([]byte, error) {
	var pdu map[string]json.RawMessage
	if err := json.Unmarshal(redacted, &pdu); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var unsigned map[string]json.RawMessage
	if raw, ok := pdu["unsigned"]; ok {
		if err := json.Unmarshal(raw, &unsigned); err != nil {
			return nil, fmt.Errorf("decode unsigned: %w", err)
		}
	}
	var because map[string]json.RawMessage
	if raw, ok := unsigned["redacted_because"]; ok {
		if err := json.Unmarshal(raw, &because); err != nil {
			return nil, fmt.Errorf("decode redacted_because: %w", err)
		}
	}
	if because == nil {
		return redacted, nil
	}
	id, err := json.Marshal(redactionID)
	if err != nil {
		return nil, err
	}
	because["event_id"] = id
	if unsigned["redacted_because"], err = json.Marshal(because); err != nil {
		return nil, err
	}
	if pdu["unsigned"], err = json.Marshal(unsigned); err != nil {
		return nil, err
	}
	return json.Marshal(pdu)
}
