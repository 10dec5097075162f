package consumers

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// TestReceiptsClearCounts: bob has notifications on $1..$4 (highlight on
// $2, $4 in thread $3); receipts mark read up to their event, per thread
// when threaded, and the counts published afterwards are the recount.
func TestReceiptsClearCounts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := openStorage(t, db)
		const room = "!r:test"
		type ev struct {
			id, thread string
			highlight  bool
		}
		evs := []ev{{"$1", "", false}, {"$2", "", true}, {"$3", "", false}, {"$4", "$3", false}}
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			roomNID, err := st.Push.Rooms.NID(ctx, tx, room)
			if err != nil {
				return err
			}
			actions, err := st.Push.Actions.NID(ctx, tx, `["notify"]`)
			if err != nil {
				return err
			}
			bob, err := st.Push.Users.NID(ctx, tx, "bob")
			if err != nil {
				return err
			}
			for i, e := range evs {
				if _, err := st.Push.Events.InsertMany(ctx, tx, []storage.PushEvent{{EventID: e.id, RoomID: room, Seq: int64(10 + i), Event: []byte(`{}`)}}); err != nil {
					return err
				}
				row := storage.NewNotification{Localpart: "bob", UserNID: bob, Highlight: e.highlight, ActionsNID: actions}
				if err := st.Push.Notifs.Insert(ctx, tx, []storage.EventNotifications{{Seq: int64(10 + i), RoomNID: roomNID, Thread: e.thread, Rows: []storage.NewNotification{row}}}); err != nil {
					return err
				}
				d := storage.CountDelta{Localpart: "bob", Notification: 1}
				if e.highlight {
					d.Highlight = 1
				}
				if err := st.Push.Counts.Add(ctx, tx, room, int64(10+i), e.thread, []storage.CountDelta{d}); err != nil {
					return err
				}
			}
			// An event nobody was notified of still has a sequence.
			_, err = st.Push.Events.InsertMany(ctx, tx, []storage.PushEvent{{EventID: "$quiet", RoomID: room, Seq: 9}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var published []string
		publish := func(ctx context.Context, roomID string, locals []string) error {
			published = append(published, locals...)
			return nil
		}
		c := NewReceipts(st, publish, "test", slog.Default())
		counts := func() map[string][2]int64 {
			rows, err := st.Push.Counts.Select(ctx, db, room, []string{"bob"})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string][2]int64{}
			for _, r := range rows {
				out[r.ThreadID] = [2]int64{r.Notification, r.Highlight}
			}
			return out
		}
		handle := func(r syncapi.OutputReceipt) error {
			r.RoomID = room
			return c.Handle(ctx, eventlog.Msg[syncapi.OutputReceipt]{Seq: 1, Value: r, Time: time.Now()})
		}
		check := func(what string, want map[string][2]int64) {
			t.Helper()
			got := counts()
			if len(got) != len(want) {
				t.Fatalf("%s: counts = %v, want %v", what, got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s: counts = %v, want %v", what, got, want)
				}
			}
		}
		check("start", map[string][2]int64{"": {3, 1}, "$3": {1, 0}})

		// Ignored: another server's user, a non-read type; nothing published.
		for _, r := range []syncapi.OutputReceipt{
			{UserID: "@bob:elsewhere", Type: "m.read", EventID: "$4"},
			{UserID: "@bob:test", Type: "m.fully_read", EventID: "$4"},
		} {
			if err := handle(r); err != nil {
				t.Fatalf("Handle(%+v) = %v", r, err)
			}
		}
		if len(published) != 0 {
			t.Fatalf("published %v for ignored receipts", published)
		}
		check("ignored", map[string][2]int64{"": {3, 1}, "$3": {1, 0}})

		// An event push has not handled yet: retried, then given up.
		err = handle(syncapi.OutputReceipt{UserID: "@bob:test", Type: "m.read", EventID: "$later"})
		if err == nil || eventlog.IsPermanent(err) {
			t.Fatalf("Handle(unknown event) = %v, want a retryable error", err)
		}
		err = c.Handle(ctx, eventlog.Msg[syncapi.OutputReceipt]{Seq: 2, Time: time.Now().Add(-time.Hour),
			Value: syncapi.OutputReceipt{RoomID: room, UserID: "@bob:test", Type: "m.read", EventID: "$later"}})
		if !eventlog.IsPermanent(err) {
			t.Fatalf("Handle(old unknown event) = %v, want permanent", err)
		}

		// Unthreaded m.read on $2: $1 and $2 read, the highlight with them.
		for range 2 { // a redelivery changes nothing
			if err := handle(syncapi.OutputReceipt{UserID: "@bob:test", Type: "m.read", EventID: "$2"}); err != nil {
				t.Fatal(err)
			}
			check("m.read $2", map[string][2]int64{"": {1, 0}, "$3": {1, 0}})
		}
		// An older receipt afterwards marks nothing back as unread.
		if err := handle(syncapi.OutputReceipt{UserID: "@bob:test", Type: "m.read.private", EventID: "$quiet"}); err != nil {
			t.Fatal(err)
		}
		check("older receipt", map[string][2]int64{"": {1, 0}, "$3": {1, 0}})
		// Threaded on $4 in thread $3: the thread only.
		if err := handle(syncapi.OutputReceipt{UserID: "@bob:test", Type: "m.read", EventID: "$4", ThreadID: "$3"}); err != nil {
			t.Fatal(err)
		}
		check("thread receipt", map[string][2]int64{"": {1, 0}})
		// Private, main timeline, on $3: all clear.
		if err := handle(syncapi.OutputReceipt{UserID: "@bob:test", Type: "m.read.private", EventID: "$3", ThreadID: "main"}); err != nil {
			t.Fatal(err)
		}
		check("main receipt", map[string][2]int64{})
		if len(published) != 5 {
			t.Errorf("published %d times, want once per applied receipt (5)", len(published))
		}
	})
}
