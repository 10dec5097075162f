package storage_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// indexer stores events as the consumer does: the row, then its index.
type indexer struct {
	t   *testing.T
	s   *storage.Storage
	db  *sqlutil.DB
	pos streams.Position
}

// add stores an event of sender with content at the next position and
// returns its id ($e<pos>).
func (ix *indexer) add(room, typ, sender string, stateKey *string, ts int64, content string) string {
	ix.t.Helper()
	ix.pos++
	m := map[string]any{"type": typ, "sender": sender, "room_id": room, "origin_server_ts": ts, "content": json.RawMessage(content)}
	if stateKey != nil {
		m["state_key"] = *stateKey
	}
	js, err := json.Marshal(m)
	if err != nil {
		ix.t.Fatal(err)
	}
	e := storage.Event{Position: ix.pos, EventID: fmt.Sprintf("$e%d", ix.pos), RoomID: room, RoomVersion: "10",
		Type: typ, Sender: sender, StateKey: stateKey, JSON: js}
	ctx := ix.t.Context()
	if _, err := ix.s.Events.Insert(ctx, ix.db, e); err != nil {
		ix.t.Fatal(err)
	}
	for range 2 { // a redelivery indexes nothing twice
		if err := ix.s.IndexEvent(ctx, ix.db, e); err != nil {
			ix.t.Fatalf("IndexEvent(%s): %v", e.EventID, err)
		}
	}
	return e.EventID
}

func rel(relType, parent string, extra string) string {
	return fmt.Sprintf(`{"body":"x","m.relates_to":{"rel_type":%q,"event_id":%q}%s}`, relType, parent, extra)
}

const newContent = `,"m.new_content":{"body":"new"}`

func TestRelations(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		ix := &indexer{t: t, s: s, db: db}
		const room = "!r:x"
		root := ix.add(room, "m.room.message", "@a:x", nil, 100, `{"body":"root"}`)                   // $e1
		edit1 := ix.add(room, "m.room.message", "@a:x", nil, 200, rel("m.replace", root, newContent)) // $e2
		edit2 := ix.add(room, "m.room.message", "@a:x", nil, 150, rel("m.replace", root, newContent)) // $e3: older ts
		// Invalid edits: another sender, another type, no m.new_content, an edit of an edit.
		ix.add(room, "m.room.message", "@b:x", nil, 300, rel("m.replace", root, newContent))
		ix.add(room, "m.sticker", "@a:x", nil, 300, rel("m.replace", root, newContent))
		ix.add(room, "m.room.message", "@a:x", nil, 300, rel("m.replace", root, ""))
		editOfEdit := ix.add(room, "m.room.message", "@a:x", nil, 300, rel("m.replace", edit1, newContent)) // $e7
		th1 := ix.add(room, "m.room.message", "@b:x", nil, 400, rel("m.thread", root, ""))                  // $e8
		th2 := ix.add(room, "m.room.message", "@c:x", nil, 401, rel("m.thread", root, ""))                  // $e9
		ref := ix.add(room, "m.room.message", "@c:x", nil, 402, rel("m.reference", th1, ""))                // $e10
		ix.add(room, "m.room.message", "@c:x", nil, 403, `{"body":"plain","m.relates_to":{"m.in_reply_to":{"event_id":"$e1"}}}`)
		other := ix.add("!o:x", "m.room.message", "@c:x", nil, 404, rel("m.thread", root, "")) // another room

		// Children pages, newest first and oldest first, filtered.
		page := func(q storage.ChildrenQuery) []string {
			t.Helper()
			evs, err := s.Relations.Children(ctx, db.Reader(), q)
			if err != nil {
				t.Fatalf("Children(%+v): %v", q, err)
			}
			return ids(evs)
		}
		all := storage.ChildrenQuery{RoomID: room, Parent: root, Backwards: true, Limit: 100}
		if got, want := page(all), []string{th2, th1, "$e5", "$e4", edit2, edit1}; !slices.Equal(got, want) {
			t.Fatalf("all children = %v, want %v", got, want)
		}
		q := all
		q.RelType, q.Limit = "m.replace", 2
		if got, want := page(q), []string{"$e5", "$e4"}; !slices.Equal(got, want) {
			t.Fatalf("m.replace newest two = %v, want %v", got, want)
		}
		q.From = 3
		if got, want := page(q), []string{edit2, edit1}; !slices.Equal(got, want) {
			t.Fatalf("m.replace from 3 = %v, want %v", got, want)
		}
		q = storage.ChildrenQuery{RoomID: room, Parent: root, RelType: "m.replace", Type: "m.sticker", Limit: 10}
		if got, want := page(q), []string{"$e5"}; !slices.Equal(got, want) {
			t.Fatalf("m.sticker edits = %v, want %v", got, want)
		}
		q = storage.ChildrenQuery{RoomID: room, Parent: root, From: 2, To: 8, Limit: 10}
		if got, want := page(q), []string{edit2, "$e4", "$e5", th1}; !slices.Equal(got, want) {
			t.Fatalf("forwards (2, 8] = %v, want %v", got, want)
		}
		// Recursion reaches the edit of an edit and the reference to a thread reply.
		q = storage.ChildrenQuery{RoomID: room, Parent: root, Limit: 100, Depth: 3}
		if got := page(q); !slices.Contains(got, editOfEdit) || !slices.Contains(got, ref) || slices.Contains(got, other) {
			t.Fatalf("recursive children = %v, want %s and %s, not %s", got, editOfEdit, ref, other)
		}

		// Edits: only the valid candidates.
		cands, err := s.Relations.Edits(ctx, db.Reader(), []string{root, edit1}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range cands {
			got = append(got, c.Parent+">"+c.EventID)
		}
		slices.Sort(got)
		if want := []string{root + ">" + edit1, root + ">" + edit2}; !slices.Equal(got, want) {
			t.Fatalf("edit candidates = %v, want %v (an edit of an edit is not valid)", got, want)
		}
		if cands, err := s.Relations.Edits(ctx, db.Reader(), []string{root}, 2); err != nil || len(cands) != 1 {
			t.Fatalf("edits up to 2 = %v, %v; want one", cands, err)
		}

		// Thread summaries.
		sum, err := s.Relations.Threads(ctx, db.Reader(), []string{root, th1}, "@b:x", nil, 100)
		if err != nil || len(sum) != 1 {
			t.Fatalf("Threads = %+v, %v; want one", sum, err)
		}
		// The reply from another room is not part of the thread.
		if s0 := sum[0]; s0.Root != root || s0.Count != 2 || s0.Latest != th2 || !s0.Participant {
			t.Fatalf("thread = %+v", s0)
		}
		sum, err = s.Relations.Threads(ctx, db.Reader(), []string{root}, "@a:x", []string{"@c:x"}, 100)
		if err != nil || len(sum) != 1 || sum[0].Count != 1 || sum[0].Latest != th1 || sum[0].Participant {
			t.Fatalf("thread without @c:x, for @a:x = %+v, %v", sum, err)
		}
		types, err := s.Relations.RelTypes(ctx, db.Reader(), []string{root, th1, ref}, 100)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(types[root])
		if !slices.Equal(types[root], []string{"m.replace", "m.thread"}) || !slices.Equal(types[th1], []string{"m.reference"}) || len(types[ref]) != 0 {
			t.Fatalf("RelTypes = %v", types)
		}
		refs, err := s.Relations.References(ctx, db.Reader(), []string{th1}, 100)
		if err != nil || !slices.Equal(refs[th1], []string{ref}) {
			t.Fatalf("References = %v, %v", refs, err)
		}

		// A room's threads, latest reply first; participated.
		root2 := ix.add(room, "m.room.message", "@d:x", nil, 500, `{"body":"root2"}`)
		ix.add(room, "m.room.message", "@d:x", nil, 501, rel("m.thread", root2, "")) // the latest event
		threads := func(rq storage.RoomThreadsQuery) []string {
			t.Helper()
			rq.RoomID, rq.UpTo = room, 100
			if rq.Limit == 0 {
				rq.Limit = 10
			}
			ts, err := s.Relations.RoomThreads(ctx, db.Reader(), rq)
			if err != nil {
				t.Fatalf("RoomThreads: %v", err)
			}
			var out []string
			for _, x := range ts {
				out = append(out, x.Root)
			}
			return out
		}
		if got := threads(storage.RoomThreadsQuery{UserID: "@z:x"}); !slices.Equal(got, []string{root2, root}) {
			t.Fatalf("threads = %v, want [%s %s]", got, root2, root)
		}
		if got := threads(storage.RoomThreadsQuery{UserID: "@z:x", Limit: 1}); !slices.Equal(got, []string{root2}) {
			t.Fatalf("first thread = %v", got)
		}
		r2pos := ix.pos
		if got := threads(storage.RoomThreadsQuery{UserID: "@z:x", Before: r2pos - 1}); !slices.Equal(got, []string{root}) {
			t.Fatalf("threads before %d = %v, want [%s]", r2pos-1, got, root)
		}
		if got := threads(storage.RoomThreadsQuery{UserID: "@a:x", Participated: true}); !slices.Equal(got, []string{root}) {
			t.Fatalf("threads @a:x started = %v, want [%s]", got, root)
		}
		if got := threads(storage.RoomThreadsQuery{UserID: "@d:x", Participated: true}); !slices.Equal(got, []string{root2}) {
			t.Fatalf("threads @d:x took part in = %v, want [%s]", got, root2)
		}
		if got := threads(storage.RoomThreadsQuery{UserID: "@c:x", Participated: true}); !slices.Equal(got, []string{root}) {
			t.Fatalf("threads @c:x replied to = %v, want [%s]", got, root)
		}

		// Redacting a child breaks its relationship.
		if err := s.UnindexEvent(ctx, db, th2); err != nil {
			t.Fatal(err)
		}
		q = storage.ChildrenQuery{RoomID: room, Parent: root, RelType: "m.thread", Backwards: true, Limit: 10}
		if got := page(q); !slices.Equal(got, []string{th1}) {
			t.Fatalf("threads after redacting %s = %v", th2, got)
		}
	})
}

func TestSearchIndex(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		ix := &indexer{t: t, s: s, db: db}
		msg := func(room, body string) string {
			b, _ := json.Marshal(body)
			return ix.add(room, "m.room.message", "@a:x", nil, 1, `{"msgtype":"m.text","body":`+string(b)+`}`)
		}
		m1 := msg("!a:x", "The Martians have landed")                                        // $e1
		m2 := msg("!a:x", "martians martians everywhere, martians and men")                  // $e2
		m3 := msg("!b:x", "Martians in room b")                                              // $e3
		name := ix.add("!a:x", "m.room.name", "@a:x", ptr(""), 1, `{"name":"Martian base"}`) // $e4
		topic := ix.add("!a:x", "m.room.topic", "@a:x", ptr(""), 1,
			`{"topic":"plain","m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"},{"body":"zebra crossing"}]}}`) // $e5
		ix.add("!a:x", "m.room.message", "@a:x", nil, 1, `{"body":42}`) // not text: not indexed
		msg("!a:x", "nothing to see")

		search := func(sq storage.SearchQuery) []string {
			t.Helper()
			if sq.Limit == 0 {
				sq.Limit = 10
			}
			if sq.UpTo == 0 {
				sq.UpTo = 100
			}
			hits, err := s.Search.Search(ctx, db.Reader(), sq)
			if err != nil {
				t.Fatalf("Search(%+v): %v", sq, err)
			}
			var out []string
			for _, h := range hits {
				out = append(out, h.Event.EventID)
			}
			return out
		}
		msgs := []string{"m.room.message"}
		both := []string{"!a:x", "!b:x"}
		terms := storage.SearchTerms("MARTIANS")
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs}); !slices.Equal(got, []string{m3, m2, m1}) {
			t.Fatalf("recent = %v, want [%s %s %s]", got, m3, m2, m1)
		}
		if got := search(storage.SearchQuery{Terms: terms, Rooms: []string{"!a:x"}, Types: msgs}); !slices.Equal(got, []string{m2, m1}) {
			t.Fatalf("room a = %v", got)
		}
		// Rank: the body saying martians three times in few words comes first.
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs, ByRank: true}); len(got) != 3 || got[0] != m2 {
			t.Fatalf("by rank = %v, want %s first", got, m2)
		}
		// Pages.
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs, Before: 3}); !slices.Equal(got, []string{m2, m1}) {
			t.Fatalf("recent before 3 = %v", got)
		}
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs, ByRank: true, Offset: 1, Limit: 1}); len(got) != 1 || got[0] == m2 {
			t.Fatalf("second by rank = %v", got)
		}
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs, UpTo: 2}); !slices.Equal(got, []string{m2, m1}) {
			t.Fatalf("up to 2 = %v", got)
		}
		// Prefixes, several words (all must match), names and topics.
		if got := search(storage.SearchQuery{Terms: storage.SearchTerms("martian"), Rooms: both, Types: []string{"m.room.name"}}); !slices.Equal(got, []string{name}) {
			t.Fatalf("name = %v, want [%s]", got, name)
		}
		if got := search(storage.SearchQuery{Terms: storage.SearchTerms("men martians"), Rooms: both, Types: msgs}); !slices.Equal(got, []string{m2}) {
			t.Fatalf("two words = %v, want [%s]", got, m2)
		}
		if got := search(storage.SearchQuery{Terms: storage.SearchTerms("zebra"), Rooms: both, Types: []string{"m.room.topic"}}); !slices.Equal(got, []string{topic}) {
			t.Fatalf("m.topic body = %v, want [%s]", got, topic)
		}
		// Query syntax in the input is only words.
		for _, q := range []string{`"martians`, `martians OR *`, `NEAR(a b)`, `'; DROP TABLE x; --`, `a:* & !b`, `martians) (`} {
			if _, err := s.Search.Search(ctx, db.Reader(), storage.SearchQuery{Terms: storage.SearchTerms(q), Rooms: both, Types: msgs, UpTo: 100, Limit: 10}); err != nil {
				t.Fatalf("Search(%q): %v", q, err)
			}
		}
		n, err := s.Search.Count(ctx, db.Reader(), storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs, UpTo: 100})
		if err != nil || n != 3 {
			t.Fatalf("Count = %d, %v; want 3", n, err)
		}
		// A room left at position 1 matches nothing after it, in the page and the count.
		left := map[string]streams.Position{"!a:x": 1}
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Left: left, Types: msgs}); !slices.Equal(got, []string{m3, m1}) {
			t.Fatalf("left !a:x at 1 = %v, want [%s %s]", got, m3, m1)
		}
		if n, err := s.Search.Count(ctx, db.Reader(), storage.SearchQuery{Terms: terms, Rooms: both, Left: left, Types: msgs, UpTo: 100}); err != nil || n != 2 {
			t.Fatalf("Count with a left room = %d, %v; want 2", n, err)
		}
		// A redacted event drops out.
		if err := s.UnindexEvent(ctx, db, m2); err != nil {
			t.Fatal(err)
		}
		if got := search(storage.SearchQuery{Terms: terms, Rooms: both, Types: msgs}); !slices.Equal(got, []string{m3, m1}) {
			t.Fatalf("after redaction = %v", got)
		}
	})
}

func TestSearchTerms(t *testing.T) {
	tests := map[string][]string{
		"":                        nil,
		"  ":                      nil,
		"Hello, World!":           {"hello", "world"},
		`"a" OR b* c:d`:           {"a", "or", "b", "c", "d"},
		"Ünïcödé 日本語 hello hello": {"ünïcödé", "日本語", "hello"},
	}
	for in, want := range tests {
		if got := storage.SearchTerms(in); !slices.Equal(got, want) {
			t.Errorf("SearchTerms(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMigrationIndexesStoredEvents: events stored before the relations and
// search tables existed are indexed by the migration that adds them.
func TestIndexMigration(t *testing.T) {
	db := storagetest.SQLite(t)
	s := open(t, db)
	ix := &indexer{t: t, s: s, db: db}
	root := ix.add("!r:x", "m.room.message", "@a:x", nil, 1, `{"body":"hello"}`)
	ix.add("!r:x", "m.room.message", "@a:x", nil, 2, rel("m.thread", root, ""))
	ctx := t.Context()
	for _, stmt := range []string{`DROP TABLE syncapi_relations`, `DROP TABLE syncapi_search`,
		`DELETE FROM axon_migrations WHERE component = 'syncapi' AND version = 4`} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, db)
	sum, err := s.Relations.Threads(ctx, db.Reader(), []string{root}, "@a:x", nil, 10)
	if err != nil || len(sum) != 1 || sum[0].Count != 1 {
		t.Fatalf("threads after migration = %+v, %v", sum, err)
	}
	n, err := s.Search.Count(ctx, db.Reader(), storage.SearchQuery{Terms: []string{"hello"}, Rooms: []string{"!r:x"}, Types: []string{"m.room.message"}, UpTo: 10})
	if err != nil || n != 1 {
		t.Fatalf("search after migration = %d, %v", n, err)
	}
}

// TestPlainEventsInsertMany: events stored and indexed many per statement
// read back as one by one would, a second copy is reported, and indexing a
// position twice keeps the first text.
func TestPlainEventsInsertMany(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		s := open(t, db)
		var evs []storage.Event
		var rows []storage.SearchRow
		for i := range 70 { // more than one statement's worth
			body := fmt.Sprintf("walrus number %d", i)
			if i%10 == 9 {
				body = ""
			}
			b, _ := json.Marshal(map[string]any{"type": "m.room.message", "sender": "@a:x", "origin_server_ts": 1000 + i,
				"content": map[string]any{"msgtype": "m.text", "body": body}})
			e := storage.Event{Position: streams.Position(i + 1), EventID: fmt.Sprintf("$p%d", i), RoomID: "!r:x", RoomVersion: "12",
				Type: "m.room.message", Sender: "@a:x", JSON: b}
			if i == 3 {
				e.Txn = storage.TxnID{UserID: "@a:x", DeviceID: "D", TxnID: "t3"}
			}
			text, plain := storage.PlainText(e)
			if !plain || (body != "" && text != body) {
				t.Fatalf("PlainText(%d) = %q, %v", i, text, plain)
			}
			evs = append(evs, e)
			rows = append(rows, storage.SearchRow{Event: e, Text: text})
		}
		if ok, err := s.Events.InsertMany(ctx, db, evs); err != nil || !ok {
			t.Fatalf("InsertMany = %v, %v", ok, err)
		}
		if err := s.IndexPlain(ctx, db, rows); err != nil {
			t.Fatal(err)
		}
		for _, want := range []storage.Event{evs[0], evs[3], evs[69]} {
			got, err := s.Events.SelectByIDs(ctx, db.Reader(), []string{want.EventID})
			if err != nil || len(got) != 1 || got[0].Position != want.Position || got[0].Txn != want.Txn || string(got[0].JSON) != string(want.JSON) {
				t.Fatalf("event %s = %+v, %v; want %+v", want.EventID, got, err, want)
			}
		}
		// Indexing again keeps one entry per position.
		if err := s.IndexPlain(ctx, db, rows[:5]); err != nil {
			t.Fatal(err)
		}
		n, err := s.Search.Count(ctx, db.Reader(), storage.SearchQuery{Terms: storage.SearchTerms("walrus"), Rooms: []string{"!r:x"},
			Types: []string{"m.room.message"}, UpTo: 100})
		if err != nil || n != 63 {
			t.Fatalf("Count = %d, %v; want 63 (70 less the 7 empty bodies)", n, err)
		}
		// A batch holding a stored event reports it.
		dup := []storage.Event{{Position: 100, EventID: "$new", RoomID: "!r:x", RoomVersion: "12", Type: "m.room.message", Sender: "@a:x", JSON: []byte(`{}`)}, evs[5]}
		dup[1].Position = 101
		if ok, err := s.Events.InsertMany(ctx, db, dup); err != nil || ok {
			t.Fatalf("InsertMany with a stored event = %v, %v; want false", ok, err)
		}
		// An event relating to another is not plain.
		if _, plain := storage.PlainText(storage.Event{Type: "m.room.message",
			JSON: []byte(`{"content":{"body":"x","m.relates_to":{"rel_type":"m.thread","event_id":"$p1"}}}`)}); plain {
			t.Fatal("a threaded reply was taken as plain")
		}
	})
}
