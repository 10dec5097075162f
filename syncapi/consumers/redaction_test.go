package consumers_test

import (
	"encoding/json"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// TestRedactionReplacesStoredEvent: the redacted copy replaces the stored
// event with the redaction's id in redacted_because; a repeat, and a
// redaction of an event the syncapi never received, change nothing else.
func TestRedactionReplacesStoredEvent(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		f.mustHandle(rsapi.OutputEvent{EventID: "$t", Event: event("m.room.message", "@a:x", nil, `{"body":"secret"}`)})
		red := event("m.room.redaction", "@a:x", nil, `{"redacts":"$t"}`)
		redacted := json.RawMessage(`{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","content":{},` +
			`"origin_server_ts":1700000000000,"unsigned":{"redacted_because":` + string(red) + `}}`)
		msg := rsapi.OutputEvent{EventID: "$red", Event: red, RedactedEventID: "$t", RedactedEvent: redacted}
		f.mustHandle(msg)
		pos := f.position()
		f.mustHandle(msg)
		if f.position() != pos {
			t.Fatalf("a repeated redaction took a position")
		}
		e, err := f.db.Events.SelectByID(t.Context(), f.db.DB.Reader(), "$t")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Content  map[string]any `json:"content"`
			Unsigned struct {
				RedactedBecause struct {
					EventID string `json:"event_id"`
					Type    string `json:"type"`
				} `json:"redacted_because"`
			} `json:"unsigned"`
		}
		if err := json.Unmarshal(e.JSON, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Content) != 0 || got.Unsigned.RedactedBecause.EventID != "$red" || got.Unsigned.RedactedBecause.Type != "m.room.redaction" {
			t.Fatalf("stored after redaction: %s", e.JSON)
		}
		if e.Position != 1 {
			t.Fatalf("redacted event moved to position %d", e.Position)
		}
		// A target the syncapi never stored: the redaction is stored, nothing fails.
		f.mustHandle(rsapi.OutputEvent{EventID: "$red2", Event: event("m.room.redaction", "@a:x", nil, `{}`),
			RedactedEventID: "$unknown", RedactedEvent: redacted})
		if f.position() != pos+1 {
			t.Fatalf("position %d, want %d", f.position(), pos+1)
		}
	})
}
