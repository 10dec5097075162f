package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestPolylithSyncRestart sends messages through the clientapi process while
// the syncapi process is killed (SIGKILL) and restarted mid-stream: every
// message must arrive in /sync exactly once.
func TestPolylithSyncRestart(t *testing.T) {
	pl := startPolylith(t)
	checkOps(t, pl.server)
	ctx := t.Context()
	reg := registerShared(t, pl.server, "dave", "pw", false)
	cli, err := mautrix.NewClient(pl.URL, id.UserID(reg.UserID), reg.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatalf("CreateRoom = %v", err)
	}
	first, err := cli.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}

	const n = 60
	sendErr := make(chan error, 1)
	killed := make(chan struct{})
	go func() {
		for i := range n {
			if i == n/3 {
				// Kill the syncapi without warning, then start it again.
				sp := pl.procs["syncapi"]
				sp.stop(syscall.SIGKILL)
				close(killed)
				sp.start()
			}
			if _, err := cli.SendText(ctx, room.RoomID, fmt.Sprintf("msg %d", i)); err != nil {
				sendErr <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		sendErr <- nil
	}()

	seen := map[string]int{}
	since := first.NextBatch
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		// The timeline limit covers every message: while the syncapi catches
		// up more than the default 20 can pile up, and a limited timeline
		// would drop the oldest (a client would page them with /messages).
		resp, err := cli.SyncRequest(ctx, 2000, since, `{"room":{"timeline":{"limit":100}}}`, false, "")
		if err != nil {
			// The syncapi is down for a moment; a client retries.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		since = resp.NextBatch
		for _, m := range messages(resp, room.RoomID) {
			seen[m.Content.Raw["body"].(string)]++
		}
	}
	<-killed
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := seen[fmt.Sprintf("msg %d", i)]; c != 1 {
			t.Errorf("message %d arrived %d times, want exactly once", i, c)
		}
	}
	// And nothing more arrives afterwards.
	resp, err := cli.SyncRequest(ctx, 500, since, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if extra := messages(resp, room.RoomID); len(extra) != 0 {
		t.Fatalf("%d messages arrived again after the restart", len(extra))
	}
}
