package routing

import (
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

const (
	me    = "@me:x"
	other = "@c:x"
	roomA = "!a:x"
	roomB = "!b:x"
	roomC = "!c:x"
)

// section says where a room is in a response: "join", "invite",
// "leave" or "".
func (r syncResult) section(room string) string {
	if _, ok := r.Rooms.Join[room]; ok {
		return "join"
	}
	if _, ok := r.Rooms.Invite[room]; ok {
		return "invite"
	}
	if _, ok := r.Rooms.Leave[room]; ok {
		return "leave"
	}
	return ""
}

func (r syncResult) leftTimeline(room string) []string {
	out := []string{}
	for _, e := range r.Rooms.Leave[room].Timeline.Events {
		out = append(out, e.EventID)
	}
	return out
}

// TestSyncMembershipCache checks that every change of the user's
// memberships shows in the very next incremental /sync while the
// membership cache is warm (one per step), that a token from before the
// cached span is answered from storage, and that every answer equals the
// one of a handler without caches.
func TestSyncMembershipCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newSyncFixture(t, db)
		joinA := "$joinme" + roomA
		for _, room := range []string{roomA, roomB, roomC} {
			f.createRoom(room, other)
		}
		f.membership(roomA, joinA, me, me, join)
		f.membership(roomB, "$joinme"+roomB, me, me, join)
		tok := f.checkedSync(me, "", nil).NextBatch

		// Quiet windows: served from the cache.
		for i := range 3 {
			id := fmt.Sprintf("$quiet%d", i)
			f.message(roomA, id, other)
			r := f.checkedSync(me, tok, nil)
			if got := r.timelineIDs(roomA); !slices.Equal(got, []string{id}) {
				t.Fatalf("quiet sync %d: timeline of A = %v, want [%s]", i, got, id)
			}
			tok = r.NextBatch
		}
		beforeLeave := tok

		steps := []struct {
			name  string
			do    func()
			room  string
			want  string // the room's section in the next sync
			event string // an event the room's timeline must carry
		}{
			{name: "leave", do: func() { f.membership(roomA, "$leaveA", me, me, leave, joinA) },
				room: roomA, want: "leave", event: "$leaveA"},
			{name: "a message after the leave is not sent", do: func() {
				f.message(roomA, "$afterleave", other)
				f.message(roomB, "$inB", other)
			}, room: roomA, want: ""},
			{name: "invite", do: func() { f.membership(roomC, "$inviteC", other, me, invite) },
				room: roomC, want: "invite"},
			{name: "join", do: func() { f.membership(roomC, "$joinC", me, me, join, "$inviteC") },
				room: roomC, want: "join", event: "$joinC"},
			{name: "leave and join back in one window", do: func() {
				f.membership(roomB, "$leaveB", me, me, leave, "$joinme"+roomB)
				f.membership(roomB, "$rejoinB", me, me, join, "$leaveB")
			}, room: roomB, want: "join", event: "$rejoinB"},
			{name: "ban in a room joined again", do: func() {
				f.membership(roomA, "$rejoinA", me, me, join, "$leaveA")
				f.membership(roomA, "$banA", other, me, ban, "$rejoinA")
			}, room: roomA, want: "leave", event: "$banA"},
		}
		for _, st := range steps {
			st.do()
			r := f.checkedSync(me, tok, nil)
			if got := r.section(st.room); got != st.want {
				t.Fatalf("%s: %s is in %q, want %q: %v", st.name, st.room, got, st.want, r)
			}
			if st.event != "" {
				evs := r.timelineIDs(st.room)
				if st.want == "leave" {
					evs = r.leftTimeline(st.room)
				}
				if !slices.Contains(evs, st.event) {
					t.Fatalf("%s: timeline of %s = %v, want %s in it", st.name, st.room, evs, st.event)
				}
			}
			tok = r.NextBatch
		}

		// A token from before all that (another device): the cache holds the
		// memberships of a later span, so they are read at the token.
		old := f.checkedSync(me, beforeLeave, nil)
		if old.section(roomA) != "leave" || old.section(roomC) != "join" || old.section(roomB) != "join" {
			t.Fatalf("sync since before the changes: A %q, B %q, C %q; want leave, join, join",
				old.section(roomA), old.section(roomB), old.section(roomC))
		}

		// State resolution drops the user's member event from C's state: C
		// is no longer among the user's rooms.
		f.publish(rsapi.OutputEvent{RoomID: roomC, RoomVersion: "10", EventID: "$rewrite",
			Event: f.pdu(roomC, "m.room.topic", other, sk(""), `{"topic":"t"}`), Rewrite: true,
			AddsState: []string{"$create" + roomC, "$join_" + other + roomC, "$pl" + roomC, "$jr" + roomC, "$name" + roomC, "$rewrite"}})
		r := f.checkedSync(me, tok, nil)
		tok = r.NextBatch
		f.message(roomC, "$afterremoval", other)
		f.message(roomB, "$inB2", other)
		if r = f.checkedSync(me, tok, nil); r.section(roomC) != "" {
			t.Fatalf("after the removal of the member event, C is in %q, want nowhere", r.section(roomC))
		}
	})
}

func sk(s string) *string { return &s }

// TestSyncMembershipCacheRestart checks that a restart (nothing in memory
// kept) answers a token from before it, with a membership change on each
// side of the restart.
func TestSyncMembershipCacheRestart(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newSyncFixture(t, db)
		f.createRoom(roomA, other)
		f.createRoom(roomB, other)
		f.membership(roomA, "$joinA", me, me, join)
		tok := f.checkedSync(me, "", nil).NextBatch
		f.message(roomA, "$m1", other)
		tok = f.checkedSync(me, tok, nil).NextBatch // warm

		f.membership(roomA, "$leaveA", me, me, leave, "$joinA")
		f.start(db)
		f.membership(roomB, "$joinB", me, me, join)
		r := f.checkedSync(me, tok, nil)
		if r.section(roomA) != "leave" || r.section(roomB) != "join" {
			t.Fatalf("after restart: A in %q, B in %q; want leave, join", r.section(roomA), r.section(roomB))
		}
		f.message(roomA, "$m2", other)
		f.message(roomB, "$m3", other)
		r = f.checkedSync(me, r.NextBatch, nil)
		if r.section(roomA) != "" || !slices.Equal(r.timelineIDs(roomB), []string{"$m3"}) {
			t.Fatalf("next sync: A in %q, B timeline %v; want nowhere, [$m3]", r.section(roomA), r.timelineIDs(roomB))
		}
	})
}

// TestSyncMembershipCacheOtherWriter has the membership change written by
// another process (a polylith's consumer) than the one whose cache is
// warm: the cache is checked against storage, not told of the writes.
func TestSyncMembershipCacheOtherWriter(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		reader := newSyncFixture(t, db)
		writer := newSyncFixture(t, db)
		writer.createRoom(roomA, other)
		writer.createRoom(roomB, other)
		writer.membership(roomA, "$joinA", me, me, join)
		writer.membership(roomB, "$joinB", me, me, join)
		// The reader process hears of positions as they commit (its own
		// notifications; simulated here).
		hear := func() { reader.n.OnRoomEvent(roomA, writer.n.Current().Get(streams.PDU), nil) }
		hear()
		tok := reader.checkedSync(me, "", nil).NextBatch
		writer.message(roomA, "$m1", other)
		hear()
		tok = reader.checkedSync(me, tok, nil).NextBatch // warm

		writer.membership(roomA, "$leaveA", me, me, leave, "$joinA")
		writer.message(roomB, "$m2", other)
		hear()
		r := reader.checkedSync(me, tok, nil)
		if r.section(roomA) != "leave" || !slices.Contains(r.leftTimeline(roomA), "$leaveA") {
			t.Fatalf("reader: A in %q (timeline %v), want leave with $leaveA", r.section(roomA), r.leftTimeline(roomA))
		}
	})
}

// TestSyncIgnoredCache checks that a change of m.ignored_user_list applies
// from the next /sync with the list cached, also when a later change is
// committed but not yet notified.
func TestSyncIgnoredCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newSyncFixture(t, db)
		const spam, spam2 = "@spam:x", "@spam2:x"
		f.createRoom(roomA, other)
		f.membership(roomA, "$joinA", me, me, join)
		tok := f.checkedSync(me, "", nil).NextBatch
		step := 0
		// send sends a message of each sender and returns which arrived.
		send := func() []string {
			t.Helper()
			step++
			var ids []string
			for _, s := range []string{other, spam, spam2} {
				id := fmt.Sprintf("$%d%s", step, s)
				f.message(roomA, id, s)
				ids = append(ids, id)
			}
			r := f.checkedSync(me, tok, nil)
			tok = r.NextBatch
			var got []string
			for i, id := range ids {
				if slices.Contains(r.timelineIDs(roomA), id) {
					got = append(got, []string{other, spam, spam2}[i])
				}
			}
			return got
		}
		if got := send(); len(got) != 3 {
			t.Fatalf("nobody ignored: got messages of %v", got)
		}
		send() // warm
		f.accountData(me, "", ignoredUserListType, `{"ignored_users":{"`+spam+`":{}}}`, 1)
		if got := send(); !slices.Equal(got, []string{other, spam2}) {
			t.Fatalf("spam ignored: got messages of %v", got)
		}
		if got := send(); !slices.Equal(got, []string{other, spam2}) {
			t.Fatalf("spam still ignored (cached): got messages of %v", got)
		}
		f.accountData(me, "", ignoredUserListType, `{"ignored_users":{}}`, 2)
		if got := send(); len(got) != 3 {
			t.Fatalf("nobody ignored again: got messages of %v", got)
		}

		// Two changes in a row, the second committed without the notifier
		// hearing of it yet: the second's list is used, never the one
		// before the first.
		f.accountData(me, "", ignoredUserListType, `{"ignored_users":{"`+spam+`":{}}}`, 3)
		f.accountDataUnheard(me, ignoredUserListType, `{"ignored_users":{"`+spam+`":{},"`+spam2+`":{}}}`, 4)
		if got := send(); !slices.Equal(got, []string{other}) {
			t.Fatalf("after two changes, the second not notified: got messages of %v", got)
		}
	})
}

// accountDataUnheard stores global account data as the consumer does but
// without telling the notifier: committed, and not yet heard by /sync.
func (f *syncFixture) accountDataUnheard(userID, typ, content string, version int64) {
	f.tb.Helper()
	ctx := f.tb.Context()
	err := f.db.InTx(ctx, func(tx *sql.Tx) error {
		pos, err := f.db.Positions.Next(ctx, tx, streams.AccountData)
		if err != nil {
			return err
		}
		return f.db.AccountData.Upsert(ctx, tx, userID, storage.AccountData{Type: typ, Content: []byte(content), Version: version, Position: pos})
	})
	if err != nil {
		f.tb.Fatalf("store account data: %v", err)
	}
}

// TestSyncWindow checks the timelines served from events read at once for
// the whole window against the reads per room they replace (checkedSync),
// for windows under and over the bound, with and without a filter.
func TestSyncWindow(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newSyncFixture(t, db)
		const spam = "@spam:x"
		f.createRoom(roomA, other)
		f.createRoom(roomB, other)
		f.createRoom(roomC, other) // the user is not in C
		f.membership(roomA, "$joinA", me, me, join)
		f.membership(roomB, "$joinB", me, me, join)
		filtered := url.Values{"filter": {`{"room":{"timeline":{"limit":5,"not_senders":["` + other + `"]}}}`}}
		tests := []struct {
			name     string
			inA, inB int
			q        url.Values
			ignore   bool
			limited  bool
			lenA     int
		}{
			{name: "one message", inA: 1, lenA: 1},
			{name: "over the timeline limit", inA: 25, inB: 3, limited: true, lenA: DefaultTimelineLimit},
			{name: "over the window bound", inA: 70, inB: 70, limited: true, lenA: DefaultTimelineLimit},
			{name: "filtered", inA: 12, inB: 2, q: filtered, limited: true, lenA: 5},
			{name: "full state", inA: 2, q: url.Values{"full_state": {"true"}}, lenA: 2},
			{name: "ignored sender", inA: 12, inB: 1, ignore: true, lenA: 6}, // ignored from here on
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.ignore {
					f.accountData(me, "", ignoredUserListType, `{"ignored_users":{"`+spam+`":{}}}`, int64(i+1))
				}
				tok := f.checkedSync(me, "", tc.q).NextBatch
				for j := range max(tc.inA, tc.inB) {
					sender := []string{other, spam}[j%2]
					if j < tc.inA {
						f.message(roomA, fmt.Sprintf("$%dA%d", i, j), sender)
					}
					if j < tc.inB {
						f.message(roomB, fmt.Sprintf("$%dB%d", i, j), sender)
					}
					f.message(roomC, fmt.Sprintf("$%dC%d", i, j), sender)
				}
				r := f.checkedSync(me, tok, tc.q)
				a := r.Rooms.Join[roomA].Timeline
				if len(a.Events) != tc.lenA || a.Limited != tc.limited {
					t.Fatalf("timeline of A: %d events, limited %v; want %d, %v", len(a.Events), a.Limited, tc.lenA, tc.limited)
				}
				if last := fmt.Sprintf("$%dA%d", i, tc.inA-1); tc.q == nil && !tc.ignore && a.Events[len(a.Events)-1].EventID != last {
					t.Fatalf("timeline of A ends with %s, want %s", a.Events[len(a.Events)-1].EventID, last)
				}
				if r.section(roomC) != "" {
					t.Fatalf("C, where the user is not, is in %q", r.section(roomC))
				}
			})
		}
	})
}
