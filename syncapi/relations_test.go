package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// send publishes a message event with the given content and returns its PDU.
func (s *server) send(roomID, id, sender, typ, content string) json.RawMessage {
	s.t.Helper()
	pdu := s.pdu(roomID, typ, sender, nil, content)
	s.publish(rsapi.OutputEvent{RoomID: roomID, RoomVersion: "10", EventID: id, Event: pdu})
	return pdu
}

func relatesTo(relType, parent, body string, extra string) string {
	return fmt.Sprintf(`{"msgtype":"m.text","body":%q,"m.relates_to":{"rel_type":%q,"event_id":%q}%s}`, body, relType, parent, extra)
}

func edit(parent, body string) string {
	return relatesTo("m.replace", parent, "* "+body, fmt.Sprintf(`,"m.new_content":{"msgtype":"m.text","body":%q}`, body))
}

type relationsPage struct {
	Chunk          []event `json:"chunk"`
	NextBatch      string  `json:"next_batch"`
	PrevBatch      string  `json:"prev_batch"`
	RecursionDepth *int    `json:"recursion_depth"`
}

func (s *server) relations(token, path string, q url.Values, wantCode int) relationsPage {
	s.t.Helper()
	p := "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/relations/" + path
	if q != nil {
		p += "?" + q.Encode()
	}
	code, body := s.get(token, p)
	if code != wantCode {
		s.t.Fatalf("GET %s = %d %s, want %d", p, code, body, wantCode)
	}
	var r relationsPage
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("decode %s: %v", body, err)
	}
	if code == http.StatusOK && r.Chunk == nil {
		s.t.Fatalf("GET %s: no chunk in %s", p, body)
	}
	return r
}

// relationsScenario: a root message with two edits, a thread of three
// replies (one edited) and a reference, in a room alice and bob are in.
func relationsScenario(s *server) {
	twoMembers(s)
	s.send(room, "$root", alice1.UserID, "m.room.message", `{"msgtype":"m.text","body":"root"}`)
	s.send(room, "$edit1", alice1.UserID, "m.room.message", edit("$root", "first edit"))
	s.send(room, "$edit2", alice1.UserID, "m.room.message", edit("$root", "second edit"))
	s.send(room, "$badedit", bob.UserID, "m.room.message", edit("$root", "not yours"))
	s.send(room, "$t1", bob.UserID, "m.room.message", relatesTo("m.thread", "$root", "reply 1", ""))
	s.send(room, "$t2", alice1.UserID, "m.room.message", relatesTo("m.thread", "$root", "reply 2", ""))
	s.send(room, "$t3", bob.UserID, "m.room.message", relatesTo("m.thread", "$root", "reply 3", ""))
	s.send(room, "$t3edit", bob.UserID, "m.room.message", edit("$t3", "reply 3 edited"))
	s.send(room, "$ref", bob.UserID, "m.room.message", relatesTo("m.reference", "$root", "see", ""))
	s.send(room, "$last", bob.UserID, "m.room.message", `{"msgtype":"m.text","body":"last"}`)
	s.syncUntil("alice1", nil, hasTimelineEvent(room, "$last"))
}

func TestRelationsEndpoint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		relationsScenario(s)

		all := s.relations("alice1", "$root", nil, http.StatusOK)
		want := []string{"$ref", "$t3", "$t2", "$t1", "$badedit", "$edit2", "$edit1"}
		if got := ids(all.Chunk); !slices.Equal(got, want) || all.NextBatch != "" || all.PrevBatch != "" || all.RecursionDepth != nil {
			t.Fatalf("all children = %v next=%q prev=%q depth=%v; want %v and no tokens", got, all.NextBatch, all.PrevBatch, all.RecursionDepth, want)
		}
		// The chunk is in the client format with room_id, and a child carries its own aggregations.
		for _, e := range all.Chunk {
			if e.RoomID == nil || *e.RoomID != room || e.Hashes != nil {
				t.Fatalf("child %s not a client event with room_id: %+v", e.EventID, e)
			}
		}
		if rel := all.Chunk[1].Unsigned["m.relations"]; rel == nil {
			t.Fatalf("$t3 in the chunk has no m.relations (it was edited): %v", all.Chunk[1].Unsigned)
		}

		// Paging backwards one at a time through the threads, then forwards.
		var got []string
		q := url.Values{"limit": {"1"}}
		for i := 0; ; i++ {
			p := s.relations("alice1", "$root/m.thread", q, http.StatusOK)
			got = append(got, ids(p.Chunk)...)
			if p.NextBatch == "" {
				break
			}
			if i > 5 {
				t.Fatal("paging does not end")
			}
			if q.Get("from") != "" && p.PrevBatch != q.Get("from") {
				t.Fatalf("prev_batch = %q, want the from token %q", p.PrevBatch, q.Get("from"))
			}
			q.Set("from", p.NextBatch)
		}
		if want := []string{"$t3", "$t2", "$t1"}; !slices.Equal(got, want) {
			t.Fatalf("thread pages backwards = %v, want %v", got, want)
		}
		fwd := s.relations("alice1", "$root/m.thread", url.Values{"dir": {"f"}, "limit": {"2"}}, http.StatusOK)
		if got := ids(fwd.Chunk); !slices.Equal(got, []string{"$t1", "$t2"}) || fwd.NextBatch == "" {
			t.Fatalf("forwards = %v next=%q", got, fwd.NextBatch)
		}
		fwd = s.relations("alice1", "$root/m.thread", url.Values{"dir": {"f"}, "from": {fwd.NextBatch}}, http.StatusOK)
		if got := ids(fwd.Chunk); !slices.Equal(got, []string{"$t3"}) || fwd.NextBatch != "" {
			t.Fatalf("forwards page 2 = %v next=%q", got, fwd.NextBatch)
		}
		// to bounds a backwards page: from the start down to (not including) the token after $t1.
		first := s.relations("alice1", "$root/m.thread", url.Values{"dir": {"f"}, "limit": {"1"}}, http.StatusOK)
		bounded := s.relations("alice1", "$root/m.thread", url.Values{"to": {first.NextBatch}}, http.StatusOK)
		if got := ids(bounded.Chunk); !slices.Equal(got, []string{"$t3", "$t2"}) {
			t.Fatalf("backwards to after $t1 = %v, want [$t3 $t2]", got)
		}
		// Relation and event type filters.
		if got := ids(s.relations("alice1", "$root/m.replace/m.room.message", nil, http.StatusOK).Chunk); !slices.Equal(got, []string{"$badedit", "$edit2", "$edit1"}) {
			t.Fatalf("m.replace children = %v", got)
		}
		if got := s.relations("alice1", "$root/m.replace/m.sticker", nil, http.StatusOK).Chunk; len(got) != 0 {
			t.Fatalf("m.sticker children = %v, want none", ids(got))
		}
		// recurse reaches the edit of a thread reply.
		rec := s.relations("alice1", "$root/m.replace", url.Values{"recurse": {"true"}}, http.StatusOK)
		if got := ids(rec.Chunk); !slices.Contains(got, "$t3edit") || rec.RecursionDepth == nil || *rec.RecursionDepth < 3 {
			t.Fatalf("recursive m.replace = %v depth=%v; want $t3edit and a depth of 3", got, rec.RecursionDepth)
		}
		if d := s.relations("alice1", "$root", url.Values{"recurse": {"false"}}, http.StatusOK).RecursionDepth; d == nil || *d != 1 {
			t.Fatalf("recurse=false: recursion_depth %v, want 1", d)
		}

		// Errors.
		s.relations("alice1", "$nope", nil, http.StatusNotFound)
		s.relations("carol", "$root", nil, http.StatusNotFound) // not in the room
		for _, bad := range []url.Values{{"dir": {"x"}}, {"limit": {"-1"}}, {"from": {"garbage"}}, {"recurse": {"yes"}}} {
			s.relations("alice1", "$root", bad, http.StatusBadRequest)
		}
		if code, _ := s.get("", "/_matrix/client/v1/rooms/"+url.PathEscape(room)+"/relations/$root"); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", code)
		}
		// A parent from another room is not found in this one.
		other := "!other:x"
		s.createRoom(other, alice1.UserID)
		s.send(other, "$elsewhere", alice1.UserID, "m.room.message", `{"body":"x"}`)
		s.syncUntil("alice1", nil, hasTimelineEvent(other, "$elsewhere"))
		s.relations("alice1", "$elsewhere", nil, http.StatusNotFound)
	})
}

func TestBundledAggregations(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		relationsScenario(s)
		// A limited timeline carries the aggregations.
		r := s.sync("bob", query("filter", `{"room":{"timeline":{"limit":12}}}`))
		tl := r.Rooms.Join[room].Timeline
		if !tl.Limited {
			t.Fatalf("timeline not limited: %v", ids(tl.Events))
		}
		var root *event
		for i := range tl.Events {
			if tl.Events[i].EventID == "$root" {
				root = &tl.Events[i]
			}
		}
		if root == nil {
			t.Fatalf("no $root in %v", ids(tl.Events))
		}
		rels, _ := root.Unsigned["m.relations"].(map[string]any)
		replace, _ := rels["m.replace"].(map[string]any)
		if replace["event_id"] != "$edit2" || replace["sender"] != alice1.UserID || replace["content"] == nil {
			t.Fatalf("m.replace = %v, want the latest valid edit $edit2", rels["m.replace"])
		}
		thread, _ := rels["m.thread"].(map[string]any)
		latest, _ := thread["latest_event"].(map[string]any)
		if thread["count"] != float64(3) || thread["current_user_participated"] != true || latest["event_id"] != "$t3" {
			t.Fatalf("m.thread = %v", thread)
		}
		latestRels, _ := latest["unsigned"].(map[string]any)["m.relations"].(map[string]any)
		if e, _ := latestRels["m.replace"].(map[string]any); e["event_id"] != "$t3edit" {
			t.Fatalf("latest_event's m.relations = %v, want its edit $t3edit", latestRels)
		}
		ref, _ := rels["m.reference"].(map[string]any)
		if chunk, _ := ref["chunk"].([]any); len(chunk) != 1 || chunk[0].(map[string]any)["event_id"] != "$ref" {
			t.Fatalf("m.reference = %v", rels["m.reference"])
		}
		// Carol-like participation: alice started the thread, so she took part.
		ra := s.sync("alice1", query("filter", `{"room":{"timeline":{"limit":12}}}`))
		for _, e := range ra.Rooms.Join[room].Timeline.Events {
			if e.EventID == "$root" {
				th := e.Unsigned["m.relations"].(map[string]any)["m.thread"].(map[string]any)
				if th["current_user_participated"] != true {
					t.Fatalf("alice (root sender) participated = %v", th["current_user_participated"])
				}
			}
		}
		// An unlimited incremental sync carries none: the client has the children.
		s.send(room, "$edit3", alice1.UserID, "m.room.message", edit("$root", "third"))
		inc := s.syncUntil("bob", nil, hasTimelineEvent(room, "$edit3"))
		since := inc.NextBatch
		s.send(room, "$after", alice1.UserID, "m.room.message", `{"body":"after"}`)
		waitFor(t, 10*time.Second, func() error {
			r := s.sync("bob", query("since", since))
			tl := r.Rooms.Join[room].Timeline
			if !slices.Contains(ids(tl.Events), "$after") {
				return fmt.Errorf("no $after yet")
			}
			for _, e := range tl.Events {
				if e.Unsigned["m.relations"] != nil {
					t.Fatalf("unlimited timeline event %s has m.relations", e.EventID)
				}
			}
			return nil
		})

		// Redacting the latest edit falls back to the one before; redacting
		// the original drops the edit from its bundle.
		latestEdit := func() any {
			r := s.sync("alice1", query("filter", `{"room":{"timeline":{"limit":14}}}`))
			for _, e := range r.Rooms.Join[room].Timeline.Events {
				if e.EventID == "$root" {
					rels, _ := e.Unsigned["m.relations"].(map[string]any)
					if m, ok := rels["m.replace"].(map[string]any); ok {
						return m["event_id"]
					}
					return nil
				}
			}
			t.Fatal("no $root in the timeline")
			return nil
		}
		if got := latestEdit(); got != "$edit3" {
			t.Fatalf("latest edit = %v, want $edit3", got)
		}
		edit3 := s.pdu(room, "m.room.message", alice1.UserID, nil, edit("$root", "third"))
		s.redact("$red1", alice1.UserID, "$edit3", edit3)
		waitFor(t, 10*time.Second, func() error {
			if got := latestEdit(); got != "$edit2" {
				return fmt.Errorf("latest edit = %v, want $edit2", got)
			}
			return nil
		})
		rootPDU := s.pdu(room, "m.room.message", alice1.UserID, nil, `{"msgtype":"m.text","body":"root"}`)
		s.redact("$red2", alice1.UserID, "$root", rootPDU)
		waitFor(t, 10*time.Second, func() error {
			if got := latestEdit(); got != nil {
				return fmt.Errorf("redacted original bundles edit %v", got)
			}
			return nil
		})
	})
}

type threadsPage struct {
	Chunk     []event `json:"chunk"`
	NextBatch string  `json:"next_batch"`
}

func (s *server) threads(token string, q url.Values, wantCode int) threadsPage {
	s.t.Helper()
	p := "/_matrix/client/v1/rooms/" + url.PathEscape(room) + "/threads?" + q.Encode()
	code, body := s.get(token, p)
	if code != wantCode {
		s.t.Fatalf("GET %s = %d %s, want %d", p, code, body, wantCode)
	}
	var r threadsPage
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("decode %s: %v", body, err)
	}
	return r
}

func TestThreadsEndpoint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		relationsScenario(s)
		s.send(room, "$root2", bob.UserID, "m.room.message", `{"body":"root2"}`)
		s.send(room, "$r2", bob.UserID, "m.room.message", relatesTo("m.thread", "$root2", "r", ""))
		s.send(room, "$root3", bob.UserID, "m.room.message", `{"body":"root3"}`)
		s.send(room, "$r3", bob.UserID, "m.room.message", relatesTo("m.thread", "$root3", "r", ""))
		s.send(room, "$r1", alice1.UserID, "m.room.message", relatesTo("m.thread", "$root2", "r", "")) // bumps $root2
		s.syncUntil("alice1", nil, hasTimelineEvent(room, "$r1"))

		p := s.threads("alice1", nil, http.StatusOK)
		if got := ids(p.Chunk); !slices.Equal(got, []string{"$root2", "$root3", "$root"}) || p.NextBatch != "" {
			t.Fatalf("threads = %v next=%q", got, p.NextBatch)
		}
		th := p.Chunk[0].Unsigned["m.relations"].(map[string]any)["m.thread"].(map[string]any)
		if th["count"] != float64(2) || th["latest_event"].(map[string]any)["event_id"] != "$r1" {
			t.Fatalf("$root2 aggregation = %v", th)
		}
		var got []string
		q := url.Values{"limit": {"1"}}
		for i := 0; ; i++ {
			p := s.threads("alice1", q, http.StatusOK)
			got = append(got, ids(p.Chunk)...)
			if p.NextBatch == "" || i > 5 {
				break
			}
			q.Set("from", p.NextBatch)
		}
		if !slices.Equal(got, []string{"$root2", "$root3", "$root"}) {
			t.Fatalf("threads paged = %v", got)
		}
		// Alice started $root and replied in $root2; $root3 is bob's alone.
		part := s.threads("alice1", url.Values{"include": {"participated"}}, http.StatusOK)
		if got := ids(part.Chunk); !slices.Equal(got, []string{"$root2", "$root"}) {
			t.Fatalf("participated = %v, want [$root2 $root]", got)
		}
		// Alice ignores bob: his thread roots come back redacted, hers as
		// they are (threads_list: "the event is returned redacted").
		if _, err := eventlog.Publish(t.Context(), s.log, userapi.AccountDataTopic, alice1.UserID, userapi.AccountDataMessage{
			UserID: alice1.UserID, Type: "m.ignored_user_list", Content: json.RawMessage(`{"ignored_users":{"` + bob.UserID + `":{}}}`), Version: 1,
		}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() error {
			p := s.threads("alice1", nil, http.StatusOK)
			contents := map[string]string{}
			for _, e := range p.Chunk {
				contents[e.EventID] = string(e.Content)
			}
			if contents["$root3"] != "{}" || contents["$root2"] != "{}" {
				return fmt.Errorf("bob's roots for alice = %q, %q; want redacted", contents["$root3"], contents["$root2"])
			}
			if !strings.Contains(contents["$root"], "body") {
				return fmt.Errorf("alice's own root = %q", contents["$root"])
			}
			return nil
		})
		s.threads("carol", nil, http.StatusForbidden)
		s.threads("alice1", url.Values{"include": {"some"}}, http.StatusBadRequest)
		s.threads("alice1", url.Values{"from": {"nope"}}, http.StatusBadRequest)
	})
}

type searchResponse struct {
	SearchCategories struct {
		RoomEvents struct {
			Count      int      `json:"count"`
			Highlights []string `json:"highlights"`
			Results    []struct {
				Rank    float64 `json:"rank"`
				Result  event   `json:"result"`
				Context *struct {
					Start        string                    `json:"start"`
					End          string                    `json:"end"`
					EventsBefore []event                   `json:"events_before"`
					EventsAfter  []event                   `json:"events_after"`
					ProfileInfo  map[string]map[string]any `json:"profile_info"`
				} `json:"context"`
			} `json:"results"`
			Groups map[string]map[string]struct {
				Order   int      `json:"order"`
				Results []string `json:"results"`
			} `json:"groups"`
			State     map[string][]event `json:"state"`
			NextBatch string             `json:"next_batch"`
		} `json:"room_events"`
	} `json:"search_categories"`
}

func (r searchResponse) ids() []string {
	out := []string{}
	for _, x := range r.SearchCategories.RoomEvents.Results {
		out = append(out, x.Result.EventID)
	}
	return out
}

func (s *server) search(token, nextBatch, body string, wantCode int) searchResponse {
	s.t.Helper()
	p := "/_matrix/client/v3/search"
	if nextBatch != "" {
		p += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	code, resp := s.do(http.MethodPost, token, p, body)
	if code != wantCode {
		s.t.Fatalf("POST %s %s = %d %s, want %d", p, body, code, resp, wantCode)
	}
	var r searchResponse
	if err := json.Unmarshal(resp, &r); err != nil {
		s.t.Fatalf("decode %s: %v", resp, err)
	}
	return r
}

func searchBody(term string, extra string) string {
	return fmt.Sprintf(`{"search_categories":{"room_events":{"search_term":%q%s}}}`, term, extra)
}

func TestSearchEndpoint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		for i := range 5 {
			s.send(room, fmt.Sprintf("$s%d", i), alice1.UserID, "m.room.message", fmt.Sprintf(`{"msgtype":"m.text","body":"pineapple number %d"}`, i))
		}
		s.send(room, "$rank", bob.UserID, "m.room.message", `{"msgtype":"m.text","body":"pineapple pineapple pineapple"}`)
		// Rooms are consumed concurrently: let this one land before the others.
		s.syncUntil("bob", nil, hasTimelineEvent(room, "$rank"))
		// A room bob is not in, and one with "joined" visibility bob joins late.
		s.createRoom("!secret:x", alice1.UserID)
		s.send("!secret:x", "$secret", alice1.UserID, "m.room.message", `{"body":"pineapple secret"}`)
		const late = "!late:x"
		s.createRoom(late, alice1.UserID)
		s.state(late, "$hv", "m.room.history_visibility", alice1.UserID, "", `{"history_visibility":"joined"}`)
		s.send(late, "$early", alice1.UserID, "m.room.message", `{"body":"pineapple early"}`)
		s.state(late, "$bjoinlate", "m.room.member", bob.UserID, bob.UserID, `{"membership":"join"}`)
		s.send(late, "$seen", alice1.UserID, "m.room.message", `{"body":"pineapple seen"}`)
		s.syncUntil("bob", nil, hasTimelineEvent(late, "$seen"))
		// The secret room is consumed apart from the others too.
		s.syncUntil("alice1", nil, hasTimelineEvent("!secret:x", "$secret"))

		r := s.search("bob", "", searchBody("Pineapple", `,"order_by":"recent"`), http.StatusOK)
		re := r.SearchCategories.RoomEvents
		want := []string{"$seen", "$rank", "$s4", "$s3", "$s2", "$s1", "$s0"}
		if got := r.ids(); !slices.Equal(got, want) {
			t.Fatalf("bob's recent results = %v, want %v (not $secret, not $early)", got, want)
		}
		if !slices.Equal(re.Highlights, []string{"pineapple"}) || re.Count < len(want) || re.NextBatch != "" {
			t.Fatalf("highlights %v count %d next %q", re.Highlights, re.Count, re.NextBatch)
		}
		if res := re.Results[0].Result; res.RoomID == nil || *res.RoomID != late || res.Sender != alice1.UserID {
			t.Fatalf("result not a client event with room_id: %+v", res)
		}
		// Alice sees her secret room; rank order puts the repeated word first.
		ra := s.search("alice1", "", searchBody("pineapple", ""), http.StatusOK)
		if got := ra.ids(); len(got) != 9 || got[0] != "$rank" || !slices.Contains(got, "$secret") || !slices.Contains(got, "$early") {
			t.Fatalf("alice's ranked results = %v", got)
		}
		// Paging, in both orders, visits every result once.
		for _, order := range []string{"recent", "rank"} {
			var got []string
			next := ""
			for i := 0; ; i++ {
				p := s.search("bob", next, searchBody("pineapple", `,"order_by":"`+order+`","filter":{"limit":2}`), http.StatusOK)
				if n := len(p.SearchCategories.RoomEvents.Results); n > 2 {
					t.Fatalf("%s page of %d results, limit 2", order, n)
				}
				got = append(got, p.ids()...)
				next = p.SearchCategories.RoomEvents.NextBatch
				if next == "" || i > 10 {
					break
				}
			}
			slices.Sort(got)
			sorted := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, sorted) {
				t.Fatalf("%s pages = %v, want %v", order, got, sorted)
			}
		}
		// Filters: rooms, senders; keys.
		rf := s.search("bob", "", searchBody("pineapple", `,"filter":{"rooms":["`+late+`"]}`), http.StatusOK)
		if got := rf.ids(); !slices.Equal(got, []string{"$seen"}) {
			t.Fatalf("rooms filter = %v", got)
		}
		rf = s.search("bob", "", searchBody("pineapple", `,"filter":{"senders":["@bob:x"]}`), http.StatusOK)
		if got := rf.ids(); !slices.Equal(got, []string{"$rank"}) {
			t.Fatalf("senders filter = %v", got)
		}
		rn := s.search("bob", "", searchBody("the room", `,"keys":["content.name"]`), http.StatusOK)
		if got := rn.ids(); !slices.Contains(got, "$name"+room) || !slices.Contains(got, "$name"+late) || len(got) != 2 {
			t.Fatalf("name search = %v", got)
		}
		// Context, profiles, groups, state.
		rc := s.search("bob", "", searchBody("number 2", `,"event_context":{"before_limit":1,"after_limit":2,"include_profile":true},`+
			`"groupings":{"group_by":[{"key":"room_id"},{"key":"sender"}]},"include_state":true`), http.StatusOK)
		rce := rc.SearchCategories.RoomEvents
		if got := rc.ids(); !slices.Equal(got, []string{"$s2"}) || rce.Results[0].Context == nil {
			t.Fatalf("context search = %v", got)
		}
		c := rce.Results[0].Context
		if !slices.Equal(ids(c.EventsBefore), []string{"$s1"}) || !slices.Equal(ids(c.EventsAfter), []string{"$s3", "$s4"}) || c.Start == "" || c.End == "" {
			t.Fatalf("context = before %v after %v start %q end %q", ids(c.EventsBefore), ids(c.EventsAfter), c.Start, c.End)
		}
		if _, ok := c.ProfileInfo[alice1.UserID]; !ok {
			t.Fatalf("profile_info = %v, want alice", c.ProfileInfo)
		}
		if g := rce.Groups["room_id"][room]; !slices.Equal(g.Results, []string{"$s2"}) || g.Order != 1 {
			t.Fatalf("room group = %+v", rce.Groups)
		}
		if g := rce.Groups["sender"][alice1.UserID]; !slices.Equal(g.Results, []string{"$s2"}) {
			t.Fatalf("sender group = %+v", rce.Groups)
		}
		if len(rce.State[room]) == 0 {
			t.Fatalf("no state for %s", room)
		}
		// A redacted message drops out.
		s.redact("$reds3", alice1.UserID, "$s3", s.pdu(room, "m.room.message", alice1.UserID, nil, `{"body":"pineapple number 3"}`))
		waitFor(t, 10*time.Second, func() error {
			if got := s.search("bob", "", searchBody("pineapple", ""), http.StatusOK).ids(); slices.Contains(got, "$s3") {
				return fmt.Errorf("redacted $s3 still found")
			}
			return nil
		})
		// After leaving, bob still finds what he saw, not what came later.
		s.state(late, "$bleavelate", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bjoinlate")
		s.send(late, "$afterleave", alice1.UserID, "m.room.message", `{"body":"pineapple after"}`)
		s.syncUntil("alice1", nil, hasTimelineEvent(late, "$afterleave"))
		if got := s.search("bob", "", searchBody("pineapple", ""), http.StatusOK).ids(); !slices.Contains(got, "$seen") || slices.Contains(got, "$afterleave") {
			t.Fatalf("bob after leaving = %v, want $seen and not $afterleave", got)
		}
		// Nothing to search for, and no category.
		if got := s.search("bob", "", searchBody(" !! ", ""), http.StatusOK).ids(); len(got) != 0 {
			t.Fatalf("empty terms found %v", got)
		}
		s.search("bob", "", `{"search_categories":{}}`, http.StatusOK)

		// Errors.
		for _, bad := range []string{`nope`, `{"search_categories":{"room_events":{}}}`, searchBody("x", `,"keys":["content.x"]`),
			searchBody("x", `,"order_by":"best"`), `{"search_categories":{"room_events":{"search_term":5}}}`} {
			s.search("bob", "", bad, http.StatusBadRequest)
		}
		s.search("bob", "garbage", searchBody("x", ""), http.StatusBadRequest)
		s.search("", "", searchBody("x", ""), http.StatusUnauthorized)
	})
}

// TestBundledAcrossRooms: the aggregations of every limited timeline of one
// /sync response (read together) land on the right events of each room.
func TestBundledAcrossRooms(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		rooms := []string{"!one:x", "!two:x", "!three:x"}
		for i, r := range rooms {
			s.createRoom(r, alice1.UserID)
			s.send(r, "$orig"+r, alice1.UserID, "m.room.message", `{"body":"orig"}`)
			if i < 2 { // the third room has no edit
				s.send(r, "$edit"+r, alice1.UserID, "m.room.message", edit("$orig"+r, "edited in "+r))
			}
			s.send(r, "$end"+r, alice1.UserID, "m.room.message", `{"body":"end"}`)
		}
		for _, r := range rooms {
			s.syncUntil("alice1", nil, hasTimelineEvent(r, "$end"+r))
		}
		resp := s.sync("alice1", query("filter", `{"room":{"timeline":{"limit":3}},"event_fields":["event_id","unsigned.m\\.relations"]}`))
		for i, r := range rooms {
			tl := resp.Rooms.Join[r].Timeline
			var orig *event
			for j := range tl.Events {
				if tl.Events[j].EventID == "$orig"+r {
					orig = &tl.Events[j]
				}
			}
			if !tl.Limited || orig == nil {
				t.Fatalf("room %s: limited=%v events %v", r, tl.Limited, ids(tl.Events))
			}
			rels, _ := orig.Unsigned["m.relations"].(map[string]any)
			got, _ := rels["m.replace"].(map[string]any)
			switch {
			case i < 2 && (got == nil || got["event_id"] != "$edit"+r):
				t.Fatalf("room %s: m.replace = %v, want $edit%s", r, got, r)
			case i == 2 && rels != nil:
				t.Fatalf("room %s without edits: m.relations = %v", r, rels)
			}
		}
	})
}

// TestAggregationsStopAtLeave: a user who left sees the aggregations as of
// their leave: later edits and replies are in history they may not see.
func TestAggregationsStopAtLeave(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		s := newServer(t, db)
		twoMembers(s)
		s.send(room, "$root", alice1.UserID, "m.room.message", `{"body":"root"}`)
		s.send(room, "$edit1", alice1.UserID, "m.room.message", edit("$root", "one"))
		s.state(room, "$bleave", "m.room.member", bob.UserID, bob.UserID, `{"membership":"leave"}`, "$bjoin")
		s.send(room, "$edit2", alice1.UserID, "m.room.message", edit("$root", "two"))
		s.send(room, "$reply", alice1.UserID, "m.room.message", relatesTo("m.thread", "$root", "later", ""))
		s.syncUntil("alice1", nil, hasTimelineEvent(room, "$reply"))
		relations := func(token string) map[string]any {
			t.Helper()
			code, body := s.get(token, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/$root")
			if code != http.StatusOK {
				t.Fatalf("GET /event/$root as %s = %d %s", token, code, body)
			}
			var e event
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			rels, _ := e.Unsigned["m.relations"].(map[string]any)
			return rels
		}
		rb := relations("bob")
		if e, _ := rb["m.replace"].(map[string]any); e["event_id"] != "$edit1" || rb["m.thread"] != nil {
			t.Fatalf("bob (left) sees m.relations %v, want only the edit before his leave", rb)
		}
		ra := relations("alice1")
		if e, _ := ra["m.replace"].(map[string]any); e["event_id"] != "$edit2" || ra["m.thread"] == nil {
			t.Fatalf("alice sees m.relations %v, want $edit2 and the thread", ra)
		}
	})
}
