package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestRelationsMonolith(t *testing.T) {
	onBothEngines(t, relationsScenario)
}

func TestRelationsPolylith(t *testing.T) {
	relationsScenario(t, startPolylith(t).server)
}

func sendContent(t *testing.T, cli *mautrix.Client, room id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), room, event.EventMessage, content)
	must(t, "SendMessageEvent", err)
	return resp.EventID
}

func relatesTo(relType string, parent id.EventID, body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
}

// relationsScenario: an edit bundled with its original in /sync, a thread
// paged through /relations and listed by /threads, and /search finding a
// message in a shared room but not one in a room the searcher is not in.
func relationsScenario(t *testing.T, s *server) {
	ctx := t.Context()
	alice, bob := userClient(t, s, "alice"), userClient(t, s, "bob")
	room := publicRoom(t, alice, bob)
	secret, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	must(t, "CreateRoom(secret)", err)
	hidden := sendContent(t, alice, secret.RoomID, map[string]any{"msgtype": "m.text", "body": "pineapple in secret"})

	orig := sendContent(t, alice, room.RoomID, map[string]any{"msgtype": "m.text", "body": "pineapple in the open"})
	edit := relatesTo("m.replace", orig, "* pineapple edited")
	edit["m.new_content"] = map[string]any{"msgtype": "m.text", "body": "pineapple edited"}
	editID := sendContent(t, alice, room.RoomID, edit)
	root := sendContent(t, alice, room.RoomID, map[string]any{"msgtype": "m.text", "body": "thread root"})
	var replies []id.EventID
	for i, cli := range []*mautrix.Client{bob, bob, alice} {
		replies = append(replies, sendContent(t, cli, room.RoomID, relatesTo("m.thread", root, fmt.Sprintf("reply %d", i))))
	}
	// A thread cannot start off an event that relates to another (the
	// edit, a reply): 400 M_UNKNOWN.
	for _, notRoot := range []id.EventID{editID, replies[0]} {
		_, err := bob.SendMessageEvent(ctx, room.RoomID, event.EventMessage, relatesTo("m.thread", notRoot, "nested"))
		mustErr(t, "thread off a relation", err, "M_UNKNOWN")
	}

	// A limited timeline bundles the edit with the original and summarises the thread.
	filter := `{"room":{"timeline":{"limit":6}}}`
	var origEv, rootEv *event.Event
	waitFor(t, 15*time.Second, func() error {
		r, err := bob.SyncRequest(ctx, 0, "", filter, false, event.PresenceOnline)
		if err != nil {
			return err
		}
		jr := r.Rooms.Join[room.RoomID]
		if jr == nil || !slices.Contains(msgIDs(jr.Timeline.Events), replies[2]) {
			return fmt.Errorf("timeline not complete yet")
		}
		if !jr.Timeline.Limited {
			t.Fatalf("timeline of 6 not limited: %v", msgIDs(jr.Timeline.Events))
		}
		for _, e := range jr.Timeline.Events {
			switch e.ID {
			case orig:
				origEv = e
			case root:
				rootEv = e
			}
		}
		return nil
	})
	if origEv == nil || rootEv == nil {
		t.Fatal("original or thread root missing from the timeline")
	}
	if le := origEv.Unsigned.Relations.GetLatestEdit(); le == nil || le.ID != editID {
		t.Fatalf("bundled m.replace = %+v, want %s", origEv.Unsigned.Relations, editID)
	}
	th := rootEv.Unsigned.Relations.GetThread()
	if th == nil || th.Count != 3 || th.LatestEvent == nil || th.LatestEvent.ID != replies[2] || !th.CurrentUserParticipated {
		t.Fatalf("bundled m.thread = %+v", th)
	}

	// The thread, two at a time, newest first.
	var paged []id.EventID
	req := &mautrix.ReqGetRelations{RelationType: event.RelThread, Limit: 2}
	for i := 0; ; i++ {
		resp, err := bob.GetRelations(ctx, room.RoomID, root, req)
		must(t, "GetRelations", err)
		paged = append(paged, msgIDs(resp.Chunk)...)
		if resp.NextBatch == "" || i > 3 {
			break
		}
		req.From = resp.NextBatch
	}
	if want := []id.EventID{replies[2], replies[1], replies[0]}; !slices.Equal(paged, want) {
		t.Fatalf("thread pages = %v, want %v", paged, want)
	}
	_, err = bob.GetRelations(ctx, room.RoomID, hidden, &mautrix.ReqGetRelations{})
	mustErr(t, "GetRelations(event in a room bob is not in)", err, "M_NOT_FOUND")

	// The thread list.
	code, body, _ := do(t, http.MethodGet, s.URL+"/_matrix/client/v1/rooms/"+url.PathEscape(string(room.RoomID))+"/threads",
		bob.AccessToken, nil)
	var threads struct {
		Chunk []*event.Event `json:"chunk"`
	}
	if err := json.Unmarshal(body, &threads); code != http.StatusOK || err != nil {
		t.Fatalf("GET /threads = %d %s", code, body)
	}
	if got := msgIDs(threads.Chunk); !slices.Equal(got, []id.EventID{root}) || threads.Chunk[0].Unsigned.Relations.GetThread().GetCount() != 3 {
		t.Fatalf("threads = %v", got)
	}

	// Search: bob finds the open message and its edit, never alice's secret.
	res, err := bob.Search(ctx, &mautrix.ReqSearch{SearchTerm: "pineapple", OrderBy: "recent"})
	must(t, "Search", err)
	var found []id.EventID
	for _, r := range res.Results {
		found = append(found, r.Event.ID)
	}
	if want := []id.EventID{editID, orig}; !slices.Equal(found, want) {
		t.Fatalf("bob's search = %v, want %v (not %s)", found, want, hidden)
	}
	// The secret room is consumed apart from the open one: wait for it.
	waitFor(t, 15*time.Second, func() error {
		res, err := alice.Search(ctx, &mautrix.ReqSearch{SearchTerm: "pineapple"})
		if err != nil {
			return err
		}
		var found []id.EventID
		for _, r := range res.Results {
			found = append(found, r.Event.ID)
		}
		if !slices.Contains(found, hidden) || len(found) != 3 {
			return fmt.Errorf("alice's search = %v, want 3 with %s", found, hidden)
		}
		return nil
	})
}
