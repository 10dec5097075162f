package routing

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// BenchmarkIncrementalSync measures the /sync handler answering a
// long-poll that one new message woke: a user joined to 10 rooms of 20
// members, each message also changing the members' notification counts,
// as under the load tool. The writes are outside the timed part; each
// sync starts from the previous one's next_batch.
func BenchmarkIncrementalSync(b *testing.B) {
	const rooms, members, history = 10, 20, 30
	reg := prometheus.NewRegistry()
	db, err := sqlutil.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), sqlutil.Options{Name: "syncapi", Metrics: sqlutil.NewMetrics(reg)})
	if err != nil {
		b.Fatalf("open sqlite: %v", err)
	}
	b.Cleanup(func() { db.Close() })
	f := newSyncFixture(b, db)
	const me = "@me:x"
	roomIDs := make([]string, rooms)
	memberIDs := make([][]string, rooms)
	for r := range rooms {
		room := fmt.Sprintf("!bench%d:x", r)
		roomIDs[r] = room
		creator := fmt.Sprintf("@u%d_0:x", r)
		f.createRoom(room, creator)
		users := []string{creator, me}
		for m := 1; m < members-1; m++ {
			users = append(users, fmt.Sprintf("@u%d_%d:x", r, m))
		}
		for _, u := range users[1:] {
			f.membership(room, "$join_"+u+room, u, u, join)
		}
		memberIDs[r] = users
		for i := range history {
			f.message(room, fmt.Sprintf("$h%d_%d", r, i), users[i%len(users)])
		}
		f.setCounts(room, history, users...)
		f.accountData(me, room, "m.fully_read", `{"event_id":"$h0_0"}`, 1)
	}
	f.accountData(me, "", "m.push_rules", `{"global":{}}`, 1)
	since := f.syncSince(me, "").NextBatch

	q := url.Values{"timeout": {"30000"}}
	readsBefore := reads(b, reg)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := i % rooms
		f.message(roomIDs[r], fmt.Sprintf("$m%d", i), memberIDs[r][2+i%(members-2)])
		f.setCounts(roomIDs[r], int64(history+i), memberIDs[r]...)
		q.Set("since", since)
		b.StartTimer()
		rec := f.get(me, q)
		b.StopTimer()
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /sync = %d %s", rec.Code, rec.Body.String())
		}
		since = f.n.Current().String()
		b.StartTimer()
	}
	b.StopTimer()
	// Only /sync reads through the reader pool here; the consumers write.
	b.ReportMetric(float64(reads(b, reg)-readsBefore)/float64(b.N), "reads/op")
}

// reads is how many statements ran on the reader pool so far.
func reads(tb testing.TB, reg *prometheus.Registry) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "read" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
