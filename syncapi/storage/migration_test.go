package storage

import (
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// TestOriginServerTSBackfill: migration 3 fills origin_server_ts of the
// events stored before it from their JSON.
func TestOriginServerTSBackfill(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		if err := sqlutil.Migrate(ctx, db, "syncapi", migrations[:2]); err != nil {
			t.Fatal(err)
		}
		for _, row := range []struct {
			pos  int
			json string
		}{{1, `{"type":"m.room.message","origin_server_ts":1234}`}, {2, `{"type":"m.room.message"}`}} {
			if _, err := db.ExecContext(ctx, `INSERT INTO syncapi_output_room_events
				(position, event_id, room_id, room_version, type, sender, event_json) VALUES ($1, $2, '!r:x', '10', 'm.room.message', '@a:x', $3)`,
				row.pos, "$e"+string(rune('0'+row.pos)), row.json); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		evs, cursors, err := s.Events.ByTimestamp(ctx, db.Reader(), "!r:x", 0, nil, true, 10, 10)
		if err != nil || len(evs) != 2 {
			t.Fatalf("ByTimestamp = %v, %v", evs, err)
		}
		// The event without a timestamp reads as 0, first.
		if evs[0].EventID != "$e2" || cursors[0].TS != 0 || evs[1].EventID != "$e1" || cursors[1].TS != 1234 {
			t.Fatalf("after backfill: %v %v", ids(evs), cursors)
		}
	})
}

func ids(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}
