package roomserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix/event"
)

// TestInputSurvivesDatabaseCrash: room input commits without waiting for
// the WAL flush on PostgreSQL (sqlutil.DeferredCommits). A crash of
// PostgreSQL while messages are being sent (a backend killed: the server
// drops WAL it had not written yet and recovers) must lose none that was
// answered: each is stored again from its input, which was not acked, and
// announced. The server is one of the test's own; its WAL writer is slowed
// down so that unflushed commits wait in memory, as under load.
func TestInputSurvivesDatabaseCrash(t *testing.T) {
	pg := storagetest.StartPrivatePostgres(t, "wal_writer_delay=10000", "fsync=off")
	ctx := t.Context()
	db, err := sqlutil.Open(ctx, pg.DSN, sqlutil.Options{Name: "roomserver"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &rewindCounter{}
	c, out := startLogging(t, db, slog.New(logs))
	a := c.API()

	const rooms, perRoom = 4, 60
	alice := "@alice:" + string(origin)
	var msgs [rooms][]*event.PDU
	var v *event.RoomVersion
	for r := range rooms {
		ch := newChain(t, event.DefaultRoomVersion)
		v = ch.v
		create := ch.add(event.TypeCreate, strp(""), alice, map[string]any{"room_version": ch.v.ID})
		join := ch.add(event.TypeMember, strp(alice), alice, map[string]any{"membership": "join"})
		if _, err := a.InputRoomEvents(ctx, input(ch.v, create, join)); err != nil {
			t.Fatalf("create room %d: %v", r, err)
		}
		for i := range perRoom {
			msgs[r] = append(msgs[r], ch.add("m.room.message", nil, alice, map[string]any{"msgtype": "m.text", "body": string(rune('a' + i%26))}))
		}
	}
	var epoch string
	if err := db.QueryRowContext(ctx, `SELECT epoch FROM axon_commit_epochs`).Scan(&epoch); err != nil {
		t.Fatal(err)
	}

	// One sender per room, each message answered before the next (a
	// client retries a failed send with the same event until answered).
	var answered atomic.Int64
	crashAt := int64(rooms * perRoom / 3)
	var wg sync.WaitGroup
	errs := make(chan error, rooms)
	giveUp := time.Now().Add(60 * time.Second)
	for r := range rooms {
		wg.Go(func() {
			for _, m := range msgs[r] {
				for {
					cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					_, err := a.InputRoomEvents(cctx, input(v, m))
					cancel()
					if err == nil {
						break
					}
					// A message whose predecessor was lost is refused for
					// ever: the failure this test looks for.
					if time.Now().After(giveUp) {
						errs <- fmt.Errorf("room %d: %s still refused after a minute: %w", r, m.EventID(), err)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				answered.Add(1)
			}
		})
	}
	for answered.Load() < crashAt {
		time.Sleep(time.Millisecond)
	}
	pg.Crash(ctx)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The crash was noticed: recovery emptied the epochs, and the
	// roomserver began a new one.
	var after []string
	rows, err := db.QueryContext(ctx, `SELECT epoch FROM axon_commit_epochs`)
	if err == nil {
		for rows.Next() {
			var e string
			if err = rows.Scan(&e); err != nil {
				break
			}
			after = append(after, e)
		}
		rows.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0] == epoch {
		t.Errorf("epochs after the crash %v, before %s: want one new epoch", after, epoch)
	}

	// And the input was handled again: the test's premise, that input
	// was in flight when the server crashed.
	if logs.n.Load() == 0 {
		t.Error("no rewind of the input after the crash")
	}

	// Every answered message is stored, and announced, each room's in order.
	want := map[string][]string{}
	var ids []string
	for r := range rooms {
		for _, m := range msgs[r] {
			want[string(m.RoomID())] = append(want[string(m.RoomID())], string(m.EventID()))
			ids = append(ids, string(m.EventID()))
		}
	}
	var stored int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM roomserver_events WHERE event_id = ANY($1)`, ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(ids) {
		t.Errorf("%d of the %d answered messages stored", stored, len(ids))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := announcedInOrder(out.byRoom(), want)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// announcedInOrder checks that each room's wanted events were announced,
// the first announcement of each in the wanted order (repeats allowed).
func announcedInOrder(got, want map[string][]string) error {
	for room, ids := range want {
		seen := map[string]bool{}
		var first []string
		for _, id := range got[room] {
			if !seen[id] {
				seen[id] = true
				first = append(first, id)
			}
		}
		pos := 0
		for _, id := range first {
			if pos < len(ids) && id == ids[pos] {
				pos++
			}
		}
		if pos < len(ids) {
			return errors.New("room " + room + ": not every message announced in order (next missing: " + ids[pos] + ")")
		}
	}
	return nil
}

// rewindCounter is a slog handler counting the input group's rewinds.
type rewindCounter struct{ n atomic.Int64 }

func (h *rewindCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *rewindCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "rewinding the group") {
		h.n.Add(1)
	}
	return nil
}
func (h *rewindCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *rewindCounter) WithGroup(string) slog.Handler      { return h }
