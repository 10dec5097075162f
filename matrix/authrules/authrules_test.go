package authrules

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
)

// versionRange parses "7-12" or "5" into a predicate on version IDs.
func versionRange(t *testing.T, s string) func(string) bool {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad version range %q", s)
	}
	return func(id string) bool {
		n, _ := strconv.Atoi(id)
		return n >= a && n <= b
	}
}

// ruleCase is one authorisation: setup builds a room of the version and
// returns the event to check against its current state; want gives the
// rule that rejects it in the version's numbering, nil to allow.
type ruleCase struct {
	name     string
	versions string
	setup    func(r *room) *event.PDU
	room     func(t testing.TB, version string) *room // nil: public standard room
	want     func(n *numbering) rule
}

func allow(*numbering) rule { return nil }

func runCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		in := versionRange(t, tc.versions)
		for _, ver := range allVersions {
			if !in(ver) {
				continue
			}
			t.Run(tc.name+"/v"+ver, func(t *testing.T) {
				var r *room
				if tc.room != nil {
					r = tc.room(t, ver)
				} else {
					r = standardRoom(t, ver, "public", nil)
				}
				e := tc.setup(r)
				err := r.check(e)
				want := ""
				if w := tc.want(numberingOf(r.v)); w != nil {
					want = w.String()
				}
				if got := ruleOf(t, err); got != want {
					t.Fatalf("Check(%s %s) = %v, want rule %q", e.Type(), e.Content(), err, want)
				}
			})
		}
	}
}

func publicRoom(users map[matrix.UserID]int) func(testing.TB, string) *room {
	return func(t testing.TB, v string) *room { return standardRoom(t, v, "public", users) }
}

func roomWithRule(rule string, users map[matrix.UserID]int) func(testing.TB, string) *room {
	return func(t testing.TB, v string) *room { return standardRoom(t, v, rule, users) }
}

func TestCreateRules(t *testing.T) {
	cases := []struct {
		name     string
		versions string
		content  map[string]any
		roomID   matrix.RoomID
		prev     bool
		want     string
	}{
		{name: "plain", versions: "1-12", want: ""},
		{name: "has prev_events", versions: "1-12", prev: true, want: "1.1"},
		{name: "room ID on another server", versions: "1-11", roomID: "!room:b.example", want: "1.2"},
		{name: "unknown room_version", versions: "1-12", content: map[string]any{"room_version": "999"}, want: "1.3"},
		{name: "room_version not a string", versions: "1-12", content: map[string]any{"room_version": 5}, want: "1.3"},
		{name: "no creator", versions: "1-10", content: map[string]any{"creator": nil}, want: "1.4"},
		{name: "no creator needed", versions: "11-12", content: map[string]any{"creator": nil}, want: ""},
		{name: "additional creators", versions: "12", content: map[string]any{"additional_creators": []string{"@bob:b.example"}}, want: ""},
		{name: "additional creators not array", versions: "12", content: map[string]any{"additional_creators": "@bob:b.example"}, want: "1.4"},
		{name: "additional creators bad ID", versions: "12", content: map[string]any{"additional_creators": []any{"bob"}}, want: "1.4"},
		{name: "additional creators not string", versions: "12", content: map[string]any{"additional_creators": []any{1}}, want: "1.4"},
		{name: "additional creators ignored before v12", versions: "11", content: map[string]any{"additional_creators": 5}, want: ""},
	}
	for _, tc := range cases {
		in := versionRange(t, tc.versions)
		for _, ver := range allVersions {
			if !in(ver) {
				continue
			}
			t.Run(tc.name+"/v"+ver, func(t *testing.T) {
				v := event.MustVersion(ver)
				content := map[string]any{"room_version": ver}
				if v.CreateRequiresCreator {
					content["creator"] = alice
				}
				for k, val := range tc.content {
					if val == nil {
						delete(content, k)
					} else {
						content[k] = val
					}
				}
				p := event.Proto{Type: event.TypeCreate, StateKey: sk(""), Sender: alice, Content: content, OriginServerTS: 1}
				if !v.RoomIDFromCreate {
					p.RoomID = "!room:a.example"
					if tc.roomID != "" {
						p.RoomID = tc.roomID
					}
				}
				if tc.prev {
					p.PrevEvents = []matrix.EventID{"$prev:a.example"}
					if !v.EventIDInJSON() {
						p.PrevEvents = []matrix.EventID{"$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
					}
				}
				e, err := p.Build(v, "a.example", testKey)
				if err != nil {
					t.Fatal(err)
				}
				if got := ruleOf(t, Check(e, nil)); got != tc.want {
					t.Fatalf("Check(create %s) = %q, want %q", e.Content(), got, tc.want)
				}
			})
		}
	}
}

func TestAuthEventsRules(t *testing.T) {
	t.Run("no create event", func(t *testing.T) {
		for _, ver := range allVersions {
			r := standardRoom(t, ver, "public", nil)
			e := r.message(alice, "m.room.message", nil)
			var auth []*event.PDU
			for _, a := range r.authFor(e) {
				if a.Type() != event.TypeCreate {
					auth = append(auth, a)
				}
			}
			want := "2.4"
			if r.v.RoomIDFromCreate {
				want = "2"
			}
			if got := ruleOf(t, Check(e, auth)); got != want {
				t.Errorf("v%s: Check without create = %q, want %q", ver, got, want)
			}
		}
	})
	t.Run("duplicate keys", func(t *testing.T) {
		for _, ver := range allVersions {
			r := standardRoom(t, ver, "public", nil)
			oldPL := r.state[event.StateKeyTuple{Type: event.TypePowerLevels}]
			r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "ban": 40}))
			e := r.message(alice, "m.room.message", nil)
			want := "2.1"
			if r.v.RoomIDFromCreate {
				want = "3.1"
			}
			if got := ruleOf(t, Check(e, append(r.authFor(e), oldPL))); got != want {
				t.Errorf("v%s: Check with two power levels = %q, want %q", ver, got, want)
			}
		}
	})
	t.Run("other room", func(t *testing.T) {
		for _, ver := range allVersions {
			r := standardRoom(t, ver, "public", nil)
			other := newRoom(t, ver, map[string]any{"topic_hint": "another room"})
			if !r.v.RoomIDFromCreate {
				other.id = "!other:a.example"
			}
			e := r.message(alice, "m.room.message", nil)
			auth := r.authFor(e)
			for i, a := range auth {
				if a.Type() == event.TypeMember {
					auth[i] = other.member(alice, alice, "join", nil)
				}
			}
			want := "2.5"
			if r.v.RoomIDFromCreate {
				want = "3.4"
			}
			if got := ruleOf(t, Check(e, auth)); got != want {
				t.Errorf("v%s: Check with another room's event = %q, want %q", ver, got, want)
			}
		}
	})
}

func TestCheckAuthEvents(t *testing.T) {
	for _, ver := range allVersions {
		t.Run("v"+ver, func(t *testing.T) {
			r := standardRoom(t, ver, "public", nil)
			r.join(bob)
			byID := map[matrix.EventID]*event.PDU{}
			for _, e := range r.state {
				byID[e.EventID()] = e
			}
			listed := func(e *event.PDU) []*event.PDU {
				var out []*event.PDU
				for _, id := range e.AuthEventIDs() {
					if a := byID[id]; a != nil {
						out = append(out, a)
					}
				}
				if r.v.RoomIDFromCreate {
					out = append(out, r.create)
				}
				return out
			}
			prefix := "2."
			if r.v.RoomIDFromCreate {
				prefix = "3."
			}

			ok := r.message(bob, "m.room.message", nil)
			if err := CheckAuthEvents(ok, listed(ok), nil); err != nil {
				t.Fatalf("CheckAuthEvents(valid) = %v", err)
			}

			// An extra, unselected auth event (the join rules for a message).
			jr := r.state[event.StateKeyTuple{Type: event.TypeJoinRules}]
			extra := r.build(event.Proto{Type: "m.room.message", Sender: bob, AuthEvents: append(ok.AuthEventIDs(), jr.EventID())})
			if got := ruleOf(t, CheckAuthEvents(extra, listed(extra), nil)); got != prefix+"2" {
				t.Errorf("unselected auth event: rule %q, want %s2", got, prefix)
			}

			// A rejected auth event.
			bobJoin := r.state[event.StateKeyTuple{Type: event.TypeMember, StateKey: string(bob)}]
			rejected := func(id matrix.EventID) bool { return id == bobJoin.EventID() }
			if got := ruleOf(t, CheckAuthEvents(ok, listed(ok), rejected)); got != prefix+"3" {
				t.Errorf("rejected auth event: rule %q, want %s3", got, prefix)
			}

			// A missing one.
			if err := CheckAuthEvents(ok, nil, nil); !errors.Is(err, ErrMissingAuthEvent) && !(r.v.RoomIDFromCreate && ruleOf(t, err) == "2") {
				t.Errorf("missing auth events: %v", err)
			}

			// v12: the create event must not be listed.
			if r.v.RoomIDFromCreate {
				withCreate := r.build(event.Proto{Type: "m.room.message", Sender: bob, AuthEvents: append(ok.AuthEventIDs(), r.create.EventID())})
				byID[r.create.EventID()] = r.create
				if got := ruleOf(t, CheckAuthEvents(withCreate, listed(withCreate), nil)); got != "3.2" {
					t.Errorf("v12 create listed: rule %q, want 3.2", got)
				}
			}
		})
	}
}

func TestFederate(t *testing.T) {
	runCases(t, []ruleCase{
		{
			name: "m.federate false, other server", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := newRoom(t, v, map[string]any{"m.federate": false})
				r.mustSend(r.member(alice, alice, "join", nil))
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "public"}))
				return r
			},
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.federate} },
		},
		{
			name: "m.federate false, same server", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := newRoom(t, v, map[string]any{"m.federate": false})
				r.mustSend(r.member(alice, alice, "join", nil))
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "public"}))
				return r
			},
			setup: func(r *room) *event.PDU { return r.member(carol, carol, "join", nil) },
			want:  allow,
		},
	})
}

func TestAliases(t *testing.T) {
	runCases(t, []ruleCase{
		{
			name: "own server, not joined", versions: "1-5",
			setup: func(r *room) *event.PDU {
				return r.state1(bob, event.TypeAliases, "b.example", map[string]any{"aliases": []string{"#x:b.example"}})
			},
			want: allow,
		},
		{
			name: "other server", versions: "1-5",
			setup: func(r *room) *event.PDU {
				return r.state1(bob, event.TypeAliases, "a.example", map[string]any{"aliases": []string{"#x:a.example"}})
			},
			want: func(n *numbering) rule { return rule{n.aliases, 2} },
		},
		{
			name: "no state key", versions: "1-5",
			setup: func(r *room) *event.PDU {
				return r.message(alice, event.TypeAliases, map[string]any{"aliases": []string{"#x:a.example"}})
			},
			want: func(n *numbering) rule { return rule{n.aliases, 1} },
		},
		{
			name: "no special case from v6", versions: "6-12",
			setup: func(r *room) *event.PDU {
				return r.state1(bob, event.TypeAliases, "b.example", map[string]any{"aliases": []string{"#x:b.example"}})
			},
			want: func(n *numbering) rule { return rule{n.notJoined} },
		},
	})
}

func TestJoin(t *testing.T) {
	restrictedUsers := map[matrix.UserID]int{carol: 0}
	cases := []ruleCase{
		{
			name: "creator first join", versions: "1-12",
			room: func(t testing.TB, v string) *room { return newRoom(t, v, nil) },
			setup: func(r *room) *event.PDU {
				return r.member(alice, alice, "join", nil)
			},
			want: allow,
		},
		{
			name: "other user first join", versions: "1-12",
			room: func(t testing.TB, v string) *room { return newRoom(t, v, nil) },
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", nil)
			},
			// No join rules event: the NOTSPEC "invite" default applies.
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "creator join with other prev event", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := newRoom(t, v, nil)
				r.mustSend(r.member(alice, alice, "join", nil))
				r.mustSend(r.member(alice, alice, "leave", nil))
				return r
			},
			setup: func(r *room) *event.PDU { return r.member(alice, alice, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "public", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  allow,
		},
		{
			name: "for someone else", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(alice, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, 2} },
		},
		{
			name: "banned", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(bob, bob, "join", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, 3} },
		},
		{
			name: "invite only, not invited", versions: "1-12",
			room:  roomWithRule("invite", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "invite only, invited", versions: "1-12",
			room: roomWithRule("invite", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "invite", nil))
				return r.member(bob, bob, "join", nil)
			},
			want: allow,
		},
		{
			name: "invite only, already joined (profile change)", versions: "1-12",
			room: roomWithRule("invite", nil),
			setup: func(r *room) *event.PDU {
				return r.member(alice, alice, "join", map[string]any{"displayname": "Alice"})
			},
			want: allow,
		},
		{
			name: "knock rule, invited", versions: "7-12",
			room: roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "invite", nil))
				return r.member(bob, bob, "join", nil)
			},
			want: allow,
		},
		{
			name: "knock rule before knocking existed", versions: "1-6",
			room: roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "invite", nil))
				return r.member(bob, bob, "join", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "knock rule, not invited", versions: "7-12",
			room:  roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "private", versions: "1-12",
			room:  roomWithRule("private", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "restricted, authorised by joined member", versions: "8-12",
			room: func(t testing.TB, v string) *room {
				r := standardRoom(t, v, "public", restrictedUsers)
				r.join(carol)
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "restricted"}))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
			},
			want: allow,
		},
		{
			name: "restricted before v8", versions: "1-7",
			room: roomWithRule("restricted", nil),
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": alice})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "restricted, no authoriser", versions: "8-12",
			room:  roomWithRule("restricted", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "join", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mJoin, n.jRestricted, 2} },
		},
		{
			name: "restricted, authoriser not joined", versions: "8-12",
			room: roomWithRule("restricted", nil),
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jRestricted, 2} },
		},
		{
			name: "restricted, authoriser below invite level", versions: "8-12",
			room: func(t testing.TB, v string) *room {
				r := standardRoom(t, v, "public", nil)
				r.join(carol)
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, map[matrix.UserID]int{carol: 10}), "invite": 50}))
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "restricted"}))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jRestricted, 2} },
		},
		{
			name: "restricted, invited", versions: "8-12",
			room: roomWithRule("restricted", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "invite", nil))
				return r.member(bob, bob, "join", nil)
			},
			want: allow,
		},
		{
			name: "authoriser not a user ID", versions: "8-12",
			room: roomWithRule("restricted", nil),
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": 5})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mAuthorisedVia, 1} },
		},
		{
			name: "knock_restricted, authorised", versions: "10-12",
			room: func(t testing.TB, v string) *room {
				r := standardRoom(t, v, "public", nil)
				r.join(carol)
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "knock_restricted"}))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
			},
			want: allow,
		},
		{
			name: "knock_restricted before v10", versions: "8-9",
			room: func(t testing.TB, v string) *room {
				r := standardRoom(t, v, "public", nil)
				r.join(carol)
				r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "knock_restricted"}))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} },
		},
		{
			name: "no membership", versions: "1-12",
			setup: func(r *room) *event.PDU {
				return r.state1(bob, event.TypeMember, string(bob), map[string]any{"displayname": "b"})
			},
			want: func(n *numbering) rule { return rule{n.member, 1} },
		},
		{
			name: "membership not a string", versions: "1-12",
			setup: func(r *room) *event.PDU {
				return r.state1(bob, event.TypeMember, string(bob), map[string]any{"membership": 1})
			},
			want: func(n *numbering) rule { return rule{n.member, n.mUnknown} },
		},
		{
			name: "unknown membership", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "dance", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mUnknown} },
		},
	}
	runCases(t, cases)
}

// plUsers returns the users map of a power levels event in r: alice at 100
// before v12 (where she is a creator and must not be listed) plus extra.
func plUsers(r *room, extra map[matrix.UserID]int) map[string]any {
	u := map[string]any{}
	if !r.v.PrivilegedCreators {
		u[string(alice)] = 100
	}
	for k, v := range extra {
		u[string(k)] = v
	}
	return u
}

func TestInviteLeaveBanKnock(t *testing.T) {
	mods := map[matrix.UserID]int{carol: 50, dave: 50}
	cases := []ruleCase{
		{
			name: "invite", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(alice, bob, "invite", nil) },
			want:  allow,
		},
		{
			name: "invite by non-member", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(carol, bob, "invite", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mInvite, 2} },
		},
		{
			name: "invite joined user", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				return r.member(alice, bob, "invite", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mInvite, 3} },
		},
		{
			name: "invite banned user", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(alice, bob, "invite", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mInvite, 3} },
		},
		{
			name: "invite below invite level", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "invite": 10}))
				r.join(carol)
				return r.member(carol, bob, "invite", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mInvite, 5} },
		},
		{
			name: "leave", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				return r.member(bob, bob, "leave", nil)
			},
			want: allow,
		},
		{
			name: "reject invite", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "invite", nil))
				return r.member(bob, bob, "leave", nil)
			},
			want: allow,
		},
		{
			name: "leave when not in room", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "leave", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mLeave, 1} },
		},
		{
			name: "leave when banned", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(bob, bob, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 1} },
		},
		{
			name: "kick", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				return r.member(alice, bob, "leave", nil)
			},
			want: allow,
		},
		{
			name: "kick without power", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob, carol)
				return r.member(carol, bob, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 5} },
		},
		{
			name: "kick by non-member", versions: "1-12",
			room: publicRoom(mods),
			setup: func(r *room) *event.PDU {
				r.join(bob)
				return r.member(carol, bob, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 2} },
		},
		{
			name: "kick equal level", versions: "1-12",
			room: publicRoom(mods),
			setup: func(r *room) *event.PDU {
				r.join(carol, dave)
				return r.member(carol, dave, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 5} },
		},
		{
			name: "kick higher level", versions: "1-12",
			room: publicRoom(mods),
			setup: func(r *room) *event.PDU {
				r.join(carol)
				return r.member(carol, alice, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 5} },
		},
		{
			name: "unban", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(alice, bob, "leave", nil)
			},
			want: allow,
		},
		{
			name: "unban below ban level", versions: "1-12",
			room: publicRoom(mods),
			setup: func(r *room) *event.PDU {
				r.join(carol)
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, mods), "ban": 60}))
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(carol, bob, "leave", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mLeave, 3} },
		},
		{
			name: "ban", versions: "1-12",
			room: publicRoom(mods),
			setup: func(r *room) *event.PDU {
				r.join(carol)
				return r.member(carol, bob, "ban", nil)
			},
			want: allow,
		},
		{
			name: "ban by non-member", versions: "1-12",
			room:  publicRoom(mods),
			setup: func(r *room) *event.PDU { return r.member(carol, bob, "ban", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mBan, 1} },
		},
		{
			name: "ban without power", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(carol)
				return r.member(carol, bob, "ban", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mBan, 3} },
		},
		{
			name: "ban the creator", versions: "1-12",
			room: publicRoom(map[matrix.UserID]int{carol: 100}),
			setup: func(r *room) *event.PDU {
				r.join(carol)
				return r.member(carol, alice, "ban", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mBan, 3} },
		},
		{
			name: "knock", versions: "7-12",
			room:  roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "knock", nil) },
			want:  allow,
		},
		{
			name: "knock before v7", versions: "1-6",
			room:  roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "knock", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mUnknown} },
		},
		{
			name: "knock on public room", versions: "7-12",
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "knock", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mKnock, 1} },
		},
		{
			name: "knock on knock_restricted", versions: "10-12",
			room:  roomWithRule("knock_restricted", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "knock", nil) },
			want:  allow,
		},
		{
			name: "knock on knock_restricted before v10", versions: "7-9",
			room:  roomWithRule("knock_restricted", nil),
			setup: func(r *room) *event.PDU { return r.member(bob, bob, "knock", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mKnock, 1} },
		},
		{
			name: "knock for someone else", versions: "7-12",
			room:  roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU { return r.member(alice, bob, "knock", nil) },
			want:  func(n *numbering) rule { return rule{n.member, n.mKnock, 2} },
		},
		{
			name: "knock while banned", versions: "7-12",
			room: roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(alice, bob, "ban", nil))
				return r.member(bob, bob, "knock", nil)
			},
			want: func(n *numbering) rule { return rule{n.member, n.mKnock, 4} },
		},
		{
			name: "retract knock", versions: "7-12",
			room: roomWithRule("knock", nil),
			setup: func(r *room) *event.PDU {
				r.mustSend(r.member(bob, bob, "knock", nil))
				return r.member(bob, bob, "leave", nil)
			},
			want: allow,
		},
	}
	runCases(t, cases)
}

func TestOtherEvents(t *testing.T) {
	cases := []ruleCase{
		{
			name: "message by member", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.message(alice, "m.room.message", map[string]any{"body": "hi"}) },
			want:  allow,
		},
		{
			name: "message by non-member", versions: "1-12",
			setup: func(r *room) *event.PDU { return r.message(bob, "m.room.message", nil) },
			want:  func(n *numbering) rule { return rule{n.notJoined} },
		},
		{
			name: "state below state_default", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				return r.state1(bob, "m.room.topic", "", map[string]any{"topic": "x"})
			},
			want: func(n *numbering) rule { return rule{n.required} },
		},
		{
			name: "state allowed by events", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "events": map[string]any{"m.room.topic": 0}}))
				r.join(bob)
				return r.state1(bob, "m.room.topic", "", map[string]any{"topic": "x"})
			},
			want: allow,
		},
		{
			name: "message above events_default", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "events_default": 10}))
				r.join(bob)
				return r.message(bob, "m.room.message", nil)
			},
			want: func(n *numbering) rule { return rule{n.required} },
		},
		{
			name: "state_key of another user", versions: "1-12",
			setup: func(r *room) *event.PDU {
				return r.state1(alice, "m.custom", string(bob), nil)
			},
			want: func(n *numbering) rule { return rule{n.userStateKey} },
		},
		{
			name: "state_key of own user", versions: "1-12",
			setup: func(r *room) *event.PDU {
				return r.state1(alice, "m.custom", string(alice), nil)
			},
			want: allow,
		},
		{
			name: "third-party invite event", versions: "1-12",
			setup: func(r *room) *event.PDU {
				return r.state1(alice, event.TypeThirdPartyInvite, "tok", map[string]any{"display_name": "x"})
			},
			want: allow,
		},
		{
			name: "third-party invite event below invite level", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "invite": 10}))
				r.join(bob)
				return r.state1(bob, event.TypeThirdPartyInvite, "tok", map[string]any{"display_name": "x"})
			},
			want: func(n *numbering) rule { return rule{n.thirdPartyInvite, 1} },
		},
		{
			name: "redaction by redact level", versions: "1-12",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				m := r.mustSend(r.message(bob, "m.room.message", nil))
				return r.build(event.Proto{Type: event.TypeRedaction, Sender: alice, Redacts: m.EventID()})
			},
			want: allow,
		},
		{
			name: "redaction of other server's event without power", versions: "1-2",
			setup: func(r *room) *event.PDU {
				r.join(bob, carol)
				m := r.mustSend(r.message(bob, "m.room.message", nil))
				return r.build(event.Proto{Type: event.TypeRedaction, Sender: carol, Redacts: m.EventID()})
			},
			want: func(n *numbering) rule { return rule{n.redaction, 3} },
		},
		{
			name: "redaction of own server's event without power", versions: "1-2",
			setup: func(r *room) *event.PDU {
				r.join(bob)
				m := r.mustSend(r.message(bob, "m.room.message", nil))
				return r.build(event.Proto{Type: event.TypeRedaction, Sender: bob, Redacts: m.EventID()})
			},
			want: allow,
		},
		{
			name: "redaction without power is not an auth matter from v3", versions: "3-12",
			setup: func(r *room) *event.PDU {
				r.join(bob, carol)
				m := r.mustSend(r.message(bob, "m.room.message", nil))
				return r.build(event.Proto{Type: event.TypeRedaction, Sender: carol, Redacts: m.EventID()})
			},
			want: allow,
		},
		{
			name: "redaction below its events level", versions: "3-12",
			setup: func(r *room) *event.PDU {
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, nil), "events": map[string]any{event.TypeRedaction: 20}}))
				r.join(bob)
				m := r.mustSend(r.message(bob, "m.room.message", nil))
				return r.build(event.Proto{Type: event.TypeRedaction, Sender: bob, Redacts: m.EventID()})
			},
			want: func(n *numbering) rule { return rule{n.required} },
		},
	}
	runCases(t, cases)
}

func pl(r *room, extra map[string]any, users map[matrix.UserID]int) map[string]any {
	c := map[string]any{"users": plUsers(r, users)}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestPowerLevels(t *testing.T) {
	mods := map[matrix.UserID]int{carol: 50, dave: 50}
	modsRoom := func(t testing.TB, v string) *room {
		r := standardRoom(t, v, "public", mods)
		r.join(carol, dave)
		return r
	}
	cases := []ruleCase{
		{
			name: "first power levels", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := newRoom(t, v, nil)
				r.mustSend(r.member(alice, alice, "join", nil))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.state1(alice, event.TypePowerLevels, "", pl(r, map[string]any{"ban": 1000}, nil))
			},
			want: allow,
		},
		{
			name: "moderator lowers ban", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"ban": 40, "state_default": 50}, mods))
			},
			// carol (50) cannot send power levels at state_default 50? She can: 50 ≥ 50.
			want: allow,
		},
		{
			name: "raise a level above own", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"kick": 60}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plAlterations, 2} },
		},
		{
			name: "change a level above own", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := modsRoom(t, v)
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", pl(r, map[string]any{"redact": 70}, mods)))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"redact": 10}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plAlterations, 1} },
		},
		{
			name: "remove an events entry above own", versions: "1-12",
			room: func(t testing.TB, v string) *room {
				r := modsRoom(t, v)
				r.mustSend(r.state1(alice, event.TypePowerLevels, "", pl(r, map[string]any{"events": map[string]any{"m.room.name": 80}}, mods)))
				return r
			},
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, nil, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plMapsOld, 1} },
		},
		{
			name: "add an events entry above own", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"events": map[string]any{"m.room.name": 80}}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plMapsNew, 1} },
		},
		{
			name: "add a notifications entry above own", versions: "6-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"notifications": map[string]any{"room": 80}}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plMapsNew, 1} },
		},
		{
			// Differential finding: mautrix checks notifications in every
			// version; rooms/v6.md added them to rules 9.4 and 9.5.
			name: "notifications not checked before v6", versions: "1-5",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"notifications": map[string]any{"room": 80}}, mods))
			},
			want: allow,
		},
		{
			name: "promote to own level", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, nil, map[matrix.UserID]int{carol: 50, dave: 50, bob: 50}))
			},
			want: allow,
		},
		{
			name: "promote above own level", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, nil, map[matrix.UserID]int{carol: 50, dave: 50, bob: 51}))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsersNew, 1} },
		},
		{
			name: "demote a peer", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, nil, map[matrix.UserID]int{carol: 50, dave: 0}))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsersOld, 1} },
		},
		{
			name: "demote self", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, nil, map[matrix.UserID]int{carol: 10, dave: 50}))
			},
			want: allow,
		},
		{
			name: "string levels", versions: "1-9",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"ban": " +040 "}, map[matrix.UserID]int{carol: 50, dave: 50}))
			},
			want: allow,
		},
		{
			name: "string user level", versions: "1-9",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = "10"
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: allow,
		},
		{
			name: "string user level rejected from v10", versions: "10-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = "10"
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "string top-level rejected from v10", versions: "10-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"ban": "40"}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plTopLevelInts} },
		},
		{
			name: "null top-level rejected from v10", versions: "10-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"kick": nil}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plTopLevelInts} },
		},
		{
			name: "string events entry rejected from v10", versions: "10-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"events": map[string]any{"m.room.name": "50"}}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plMapInts} },
		},
		{
			name: "events not an object from v10", versions: "10-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"notifications": []int{1}}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plMapInts} },
		},
		{
			name: "bad string user level", versions: "1-9",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = "1.5"
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "bad string top-level when compared", versions: "1-9",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"ban": "lots"}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plAlterations} },
		},
		{
			name: "invalid user ID", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)["bob"] = 0
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "users not an object", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": []string{"x"}})
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "null user level", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = nil
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "float user level truncated", versions: "1-5",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = json.RawMessage("50.9")
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: allow,
		},
		{
			name: "float user level truncated still too high", versions: "1-5",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = json.RawMessage("5.1E1")
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsersNew, 1} },
		},
		{
			name: "float out of binary64", versions: "1-5",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"ban": json.RawMessage("1e999")}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels} },
		},
		{
			// Differential finding: mautrix reads true as 1 (Python's
			// int). Rule 10.1/9.1 wants "integers (or a string that is an
			// integer)"; v1-stringy-power-levels lists strings as the only
			// other encoding.
			name: "boolean user level", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(bob)] = true
				return r.state1(carol, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plUsers} },
		},
		{
			name: "boolean top-level level when compared", versions: "1-9",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(carol, event.TypePowerLevels, "", pl(r, map[string]any{"kick": true}, mods))
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plAlterations} },
		},
		{
			// Differential finding: mautrix dereferences a nil value when
			// an entry is removed from users.
			name: "remove a lower user's entry", versions: "1-12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(alice, event.TypePowerLevels, "", pl(r, nil, map[matrix.UserID]int{carol: 50}))
			},
			want: allow,
		},
		{
			name: "creator listed in users", versions: "12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				c := pl(r, nil, mods)
				c["users"].(map[string]any)[string(alice)] = 100
				return r.state1(alice, event.TypePowerLevels, "", c)
			},
			want: func(n *numbering) rule { return rule{n.powerLevels, n.plCreators} },
		},
		{
			name: "creator raises anyone", versions: "12",
			room: modsRoom,
			setup: func(r *room) *event.PDU {
				return r.state1(alice, event.TypePowerLevels, "", pl(r, map[string]any{"ban": 1 << 50}, map[matrix.UserID]int{carol: 1 << 52}))
			},
			want: allow,
		},
	}
	runCases(t, cases)
}

func TestCreators(t *testing.T) {
	// v12: additional creators have infinite power and cannot kick each
	// other; they cannot be listed in users.
	r := newRoom(t, "12", map[string]any{"additional_creators": []string{string(bob)}})
	r.mustSend(r.member(alice, alice, "join", nil))
	r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "public"}))
	r.join(bob, carol)
	if got := PowerLevel(bob, r.create, nil); got != CreatorLevel {
		t.Fatalf("PowerLevel(additional creator) = %d, want CreatorLevel", got)
	}
	if got := PowerLevel(carol, r.create, nil); got != 0 {
		t.Fatalf("PowerLevel(carol) = %d, want 0", got)
	}
	if err := r.check(r.member(bob, alice, "leave", nil)); ruleOf(t, err) != "5.5.5" {
		t.Fatalf("creator kicks creator: %v, want rule 5.5.5", err)
	}
	if err := r.check(r.member(bob, carol, "ban", nil)); err != nil {
		t.Fatalf("creator bans member: %v", err)
	}
	bad := r.state1(bob, event.TypePowerLevels, "", map[string]any{"users": map[string]any{string(bob): 100}})
	if err := r.check(bad); ruleOf(t, err) != "10.4" {
		t.Fatalf("additional creator in users: %v, want rule 10.4", err)
	}
	if got := Creators(r.create); len(got) != 2 || got[0] != alice || got[1] != bob {
		t.Fatalf("Creators = %v", got)
	}
}

func TestPowerLevelFunc(t *testing.T) {
	for _, ver := range allVersions {
		r := newRoom(t, ver, nil)
		want := int64(100)
		if r.v.PrivilegedCreators {
			want = CreatorLevel
		}
		if got := PowerLevel(alice, r.create, nil); got != want {
			t.Errorf("v%s: PowerLevel(creator, no power levels) = %d, want %d", ver, got, want)
		}
		if got := PowerLevel(bob, r.create, nil); got != 0 {
			t.Errorf("v%s: PowerLevel(other, no power levels) = %d, want 0", ver, got)
		}
		r.mustSend(r.member(alice, alice, "join", nil))
		content := map[string]any{"users": map[string]any{string(carol): 42}, "users_default": 7}
		if !r.v.EnforceIntPowerLevels {
			content = map[string]any{"users": map[string]any{string(carol): " 42"}, "users_default": "7"}
		}
		plEv := r.mustSend(r.state1(alice, event.TypePowerLevels, "", content))
		if got := PowerLevel(carol, r.create, plEv); got != 42 {
			t.Errorf("v%s: PowerLevel(listed) = %d, want 42", ver, got)
		}
		if got := PowerLevel(bob, r.create, plEv); got != 7 {
			t.Errorf("v%s: PowerLevel(default) = %d, want 7", ver, got)
		}
		if got := RequiredPowerLevel("m.room.name", true, plEv); got != 50 {
			t.Errorf("v%s: RequiredPowerLevel(state) = %d, want 50", ver, got)
		}
		if got := RequiredPowerLevel("m.room.message", false, nil); got != 0 {
			t.Errorf("v%s: RequiredPowerLevel(message, none) = %d, want 0", ver, got)
		}
	}
}

func TestRedactionAllowed(t *testing.T) {
	for _, ver := range allVersions {
		r := standardRoom(t, ver, "public", nil)
		r.join(bob, carol, dave)
		plEv := r.state[event.StateKeyTuple{Type: event.TypePowerLevels}]
		msg := r.mustSend(r.message(bob, "m.room.message", nil))
		byAdmin := r.build(event.Proto{Type: event.TypeRedaction, Sender: alice, Redacts: msg.EventID()})
		byOther := r.build(event.Proto{Type: event.TypeRedaction, Sender: dave, Redacts: msg.EventID()})
		if !RedactionAllowed(byAdmin, msg, r.create, plEv) {
			t.Errorf("v%s: admin redaction not allowed", ver)
		}
		if RedactionAllowed(byOther, msg, r.create, plEv) {
			t.Errorf("v%s: redaction by another server's user allowed", ver)
		}
	}
}

// signedInvite builds the signed object of a third-party invite for mxid
// and token, signed by the identity server key.
func signedInvite(t testing.TB, mxid matrix.UserID, token string, key signing.Key) map[string]any {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"mxid": mxid, "token": token})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signing.SignJSON(raw, "id.example", key)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(signed, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestThirdPartyInvite(t *testing.T) {
	seed := sha256.Sum256([]byte("identity server"))
	idKey, err := signing.NewKeyFromSeed("ed25519:0", seed[:])
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("someone else"))
	wrongKey, _ := signing.NewKeyFromSeed("ed25519:0", other[:])
	pub := signing.EncodeBase64URL(idKey.Public())

	tpiRoom := func(content map[string]any) func(testing.TB, string) *room {
		return func(t testing.TB, v string) *room {
			r := standardRoom(t, v, "invite", nil)
			r.mustSend(r.state1(alice, event.TypeThirdPartyInvite, "tok", content))
			return r
		}
	}
	withKey := tpiRoom(map[string]any{"display_name": "b…", "key_validity_url": "https://id.example/v", "public_key": pub})
	withKeys := tpiRoom(map[string]any{"display_name": "b…", "public_key": "bm90IGEga2V5", "public_keys": []any{map[string]any{"public_key": "junk"}, map[string]any{"public_key": pub}}})
	invite := func(sender matrix.UserID, signed map[string]any) func(r *room) *event.PDU {
		return func(r *room) *event.PDU {
			return r.member(sender, bob, "invite", map[string]any{"third_party_invite": map[string]any{"display_name": "b…", "signed": signed}})
		}
	}
	tp := func(last int) func(n *numbering) rule {
		return func(n *numbering) rule { return rule{n.member, n.mInvite, 1, last} }
	}
	cases := []ruleCase{
		// Differential finding: mautrix looks for the public keys in the
		// member event; rule 4.4.1.7 says "The public keys are in content
		// of m.room.third_party_invite".
		{name: "valid", versions: "1-12", room: withKey, setup: invite(alice, signedInvite(t, bob, "tok", idKey)), want: allow},
		{name: "valid with public_keys", versions: "1-12", room: withKeys, setup: invite(alice, signedInvite(t, bob, "tok", idKey)), want: allow},
		{name: "wrong key", versions: "1-12", room: withKey, setup: invite(alice, signedInvite(t, bob, "tok", wrongKey)), want: tp(8)},
		{name: "mxid mismatch", versions: "1-12", room: withKey, setup: invite(alice, signedInvite(t, carol, "tok", idKey)), want: tp(4)},
		{name: "token mismatch", versions: "1-12", room: withKey, setup: invite(alice, signedInvite(t, bob, "other", idKey)), want: tp(5)},
		{name: "no signed", versions: "1-12", room: withKey, setup: func(r *room) *event.PDU {
			return r.member(alice, bob, "invite", map[string]any{"third_party_invite": map[string]any{"display_name": "x"}})
		}, want: tp(2)},
		{name: "no token", versions: "1-12", room: withKey, setup: invite(alice, map[string]any{"mxid": bob}), want: tp(3)},
		{name: "sender mismatch", versions: "1-12", room: func(t testing.TB, v string) *room {
			r := withKey(t, v)
			r.mustSend(r.member(alice, carol, "invite", nil))
			r.join(carol)
			return r
		}, setup: invite(carol, signedInvite(t, bob, "tok", idKey)), want: tp(6)},
		{name: "target banned", versions: "1-12", room: withKey, setup: func(r *room) *event.PDU {
			r.mustSend(r.member(alice, bob, "ban", nil))
			return invite(alice, signedInvite(t, bob, "tok", idKey))(r)
		}, want: tp(1)},
	}
	runCases(t, cases)
}

// TestNumbering pins the rule numbers of the rendered pages.
func TestNumbering(t *testing.T) {
	tests := []struct {
		version string
		got     func(n *numbering) rule
		want    string
	}{
		{"1", func(n *numbering) rule { return rule{n.member, n.mUnknown} }, "5.6"},
		{"1", func(n *numbering) rule { return rule{n.redaction, 3} }, "11.3"},
		{"1", func(n *numbering) rule { return rule{n.allow} }, "12"},
		{"3", func(n *numbering) rule { return rule{n.allow} }, "11"},
		{"5", func(n *numbering) rule { return rule{n.powerLevels, n.plUsersOld, 1} }, "10.6.1"},
		{"6", func(n *numbering) rule { return rule{n.member, n.mUnknown} }, "4.6"},
		{"6", func(n *numbering) rule { return rule{n.powerLevels, n.plMapsNew} }, "9.5"},
		{"7", func(n *numbering) rule { return rule{n.member, n.mKnock, 3} }, "4.6.3"},
		{"7", func(n *numbering) rule { return rule{n.member, n.mJoin, n.jOtherwise} }, "4.2.6"},
		{"8", func(n *numbering) rule { return rule{n.member, n.mJoin, n.jRestricted, 2} }, "4.3.5.2"},
		{"8", func(n *numbering) rule { return rule{n.member, n.mUnknown} }, "4.8"},
		{"10", func(n *numbering) rule { return rule{n.powerLevels, n.plUsersNew} }, "9.9"},
		{"11", func(n *numbering) rule { return rule{1, n.createAllow} }, "1.4"},
		{"12", func(n *numbering) rule { return rule{n.authEvents, n.aeRoomID} }, "3.4"},
		{"12", func(n *numbering) rule { return rule{n.member, n.mKnock, 1} }, "5.7.1"},
		{"12", func(n *numbering) rule { return rule{n.powerLevels, n.plCreators} }, "10.4"},
		{"12", func(n *numbering) rule { return rule{n.powerLevels, n.plAllow} }, "10.11"},
		{"12", func(n *numbering) rule { return rule{n.allow} }, "11"},
	}
	for _, tt := range tests {
		n := numberingOf(event.MustVersion(tt.version))
		if got := tt.got(n).String(); got != tt.want {
			t.Errorf("v%s rule = %s, want %s", tt.version, got, tt.want)
		}
	}
}

// TestNoPanicOnOddInput feeds Check nil and mismatched input.
func TestNoPanicOnOddInput(t *testing.T) {
	if err := Check(nil, nil); err == nil {
		t.Fatal("Check(nil) allowed")
	}
	r := standardRoom(t, "10", "public", nil)
	e := r.message(alice, "m.room.message", nil)
	if err := Check(e, []*event.PDU{nil, nil}); err == nil {
		t.Fatal("Check without auth events allowed")
	}
	// A message carrying odd content is still just a message.
	odd := r.message(alice, "m.room.message", json.RawMessage(`{"membership":5,"users":"x"}`))
	if err := r.check(odd); err != nil {
		t.Fatalf("odd message: %v", err)
	}
	_ = canonicaljson.Valid
	_ = ed25519.PublicKeySize
}
