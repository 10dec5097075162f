package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
)

// BenchmarkSearch measures POST /search through the HTTP handler over
// searchMessages messages in 10 rooms, each word of the vocabulary in about
// 1 message in 25: a one-word search (a page of 10 of ~800 matches, with
// the count), by rank and by recency, and a two-word search.
func BenchmarkSearch(b *testing.B) {
	const searchMessages, rooms = 10000, 10
	words := []string{"apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel", "iris", "juniper",
		"kiwi", "lemon", "mango", "nectar", "olive", "peach", "quince", "rowan", "sloe", "tamarind",
		"ugli", "vanilla", "walnut", "yam", "zest"}
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		s := newServer(b, db)
		for r := range rooms {
			s.createRoom(fmt.Sprintf("!search%d:x", r), alice1.UserID)
		}
		for i := range searchMessages {
			rid := fmt.Sprintf("!search%d:x", i%rooms)
			body := fmt.Sprintf("message %d about %s and %s, nothing else", i, words[i%len(words)], words[(i/len(words))%len(words)])
			content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
			s.publish(rsapi.OutputEvent{RoomID: rid, RoomVersion: "10", EventID: fmt.Sprintf("$s%d", i),
				Event: s.pdu(rid, "m.room.message", alice1.UserID, nil, string(content))})
		}
		// Rooms are consumed concurrently: wait for the last message of each.
		for r := range rooms {
			last := fmt.Sprintf("$s%d", searchMessages-rooms+r)
			waitFor(b, 5*time.Minute, func() error {
				code, body := s.get("alice1", fmt.Sprintf("/_matrix/client/v1/rooms/!search%d:x/relations/%s", r, last))
				if code != http.StatusOK {
					return fmt.Errorf("%s not stored yet: %d %s", last, code, body)
				}
				return nil
			})
		}
		for _, bc := range []struct{ name, body string }{
			{"one-word-rank", `{"search_categories":{"room_events":{"search_term":"apple"}}}`},
			{"one-word-recent", `{"search_categories":{"room_events":{"search_term":"apple","order_by":"recent"}}}`},
			{"two-words-rank", `{"search_categories":{"room_events":{"search_term":"apple banana"}}}`},
		} {
			b.Run(bc.name, func(b *testing.B) {
				var n int
				for b.Loop() {
					code, resp := s.do(http.MethodPost, "alice1", "/_matrix/client/v3/search", bc.body)
					if code != http.StatusOK {
						b.Fatalf("status %d: %s", code, resp)
					}
					var r struct {
						SearchCategories struct {
							RoomEvents struct {
								Count   int   `json:"count"`
								Results []any `json:"results"`
							} `json:"room_events"`
						} `json:"search_categories"`
					}
					_ = json.Unmarshal(resp, &r)
					if n = r.SearchCategories.RoomEvents.Count; len(r.SearchCategories.RoomEvents.Results) == 0 {
						b.Fatalf("no results: %s", resp)
					}
				}
				b.ReportMetric(float64(n), "matches")
			})
		}
	})
}
