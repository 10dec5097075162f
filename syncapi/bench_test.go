package syncapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

// BenchmarkSync measures /sync through the HTTP handler for a user in
// benchRooms rooms of benchEvents events each: an initial sync (timeline 20
// per room) and an incremental sync with nothing new (the long-poll check).
func BenchmarkSync(b *testing.B) {
	const benchRooms, benchEvents = 20, 200
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		s := newServer(b, db)
		for r := range benchRooms {
			rid := fmt.Sprintf("!bench%d:x", r)
			s.createRoom(rid, alice1.UserID)
			for i := range benchEvents {
				s.message(rid, fmt.Sprintf("$b%d_%d", r, i), alice1, "")
			}
		}
		last := fmt.Sprintf("$b%d_%d", benchRooms-1, benchEvents-1)
		r := s.syncUntil("alice1", nil, hasTimelineEvent(fmt.Sprintf("!bench%d:x", benchRooms-1), last))
		b.Run("initial", func(b *testing.B) {
			for b.Loop() {
				if code, body := s.get("alice1", "/_matrix/client/v3/sync"); code != http.StatusOK {
					b.Fatalf("status %d: %s", code, body)
				}
			}
		})
		b.Run("incremental-empty", func(b *testing.B) {
			path := "/_matrix/client/v3/sync?since=" + r.NextBatch
			for b.Loop() {
				if code, body := s.get("alice1", path); code != http.StatusOK {
					b.Fatalf("status %d: %s", code, body)
				}
			}
		})
	})
}
