package stateres

import (
	"fmt"
	"maps"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// linearRoom builds events one after the other, tracking the state.
type linearRoom struct {
	tb    testing.TB
	v     *event.RoomVersion
	store *store
	id    matrix.RoomID
	state StateMap
	last  *event.PDU
	ts    int64
}

func (r *linearRoom) send(sender matrix.UserID, typ string, stateKey *string, content any) *event.PDU {
	p := event.Proto{Type: typ, StateKey: stateKey, Sender: sender, RoomID: r.id, Content: content, OriginServerTS: r.ts}
	r.ts++
	if r.last != nil {
		p.PrevEvents = []matrix.EventID{r.last.EventID()}
		p.Depth = r.last.Depth() + 1
	}
	for _, k := range event.AuthEventsNeeded(p, r.v) {
		if id, ok := r.state[StateKey{k.Type, k.StateKey}]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	e, err := p.Build(r.v, sender.Server(), testKey)
	if err != nil {
		r.tb.Fatal(err)
	}
	if typ == event.TypeCreate {
		r.id = e.RoomID()
	}
	r.store.events[e.EventID()] = e
	if stateKey != nil {
		r.state[StateKey{typ, *stateKey}] = e.EventID()
	}
	r.last = e
	return e
}

func (r *linearRoom) fork() *linearRoom {
	c := *r
	c.state = maps.Clone(r.state)
	return &c
}

// forkedRoom builds a public room with members joined users, then two
// branches of 25 state events each: on one alice kicks ten users, sets the
// topic five times, changes the power levels and sets nine other state
// keys; on the other a moderator bans ten users (five of them kicked on
// the first branch), sets the topic, changes events_default and sets nine
// other keys. About 50 events are conflicted.
func forkedRoom(tb testing.TB, version string, members int) (*event.RoomVersion, []StateMap, *store) {
	v := event.MustVersion(version)
	r := &linearRoom{tb: tb, v: v, store: newStore(), state: StateMap{}, ts: 1_000_000}
	if !v.RoomIDFromCreate {
		r.id = "!bench:example.com"
	}
	create := map[string]any{}
	if v.CreateRequiresCreator {
		create["creator"] = alice
	}
	r.send(alice, event.TypeCreate, sk(""), create)
	r.send(alice, event.TypeMember, sk(string(alice)), map[string]any{"membership": "join"})
	mod := matrix.UserID("@mod:example.org")
	users := map[string]any{string(mod): 50}
	if !v.PrivilegedCreators {
		users[string(alice)] = 100
	}
	r.send(alice, event.TypePowerLevels, sk(""), map[string]any{"users": users})
	r.send(alice, event.TypeJoinRules, sk(""), map[string]any{"join_rule": "public"})
	r.send(mod, event.TypeMember, sk(string(mod)), map[string]any{"membership": "join"})
	uid := func(i int) matrix.UserID { return matrix.UserID(fmt.Sprintf("@u%d:example.net", i)) }
	for i := range members {
		r.send(uid(i), event.TypeMember, sk(string(uid(i))), map[string]any{"membership": "join"})
	}

	a, b := r.fork(), r.fork()
	for i := range 10 {
		a.send(alice, event.TypeMember, sk(string(uid(i))), map[string]any{"membership": "leave"})
		b.send(mod, event.TypeMember, sk(string(uid(i+5))), map[string]any{"membership": "ban"})
	}
	for i := range 5 {
		a.send(alice, "m.room.topic", sk(""), map[string]any{"topic": fmt.Sprint("a", i)})
		b.send(mod, "m.room.topic", sk(""), map[string]any{"topic": fmt.Sprint("b", i)})
	}
	usersA := maps.Clone(users)
	usersA["@helper:example.org"] = 50
	a.send(alice, event.TypePowerLevels, sk(""), map[string]any{"users": usersA})
	b.send(mod, event.TypePowerLevels, sk(""), map[string]any{"users": users, "events_default": 10})
	for i := range 9 {
		a.send(alice, "m.custom", sk(fmt.Sprint("a", i)), map[string]any{})
		b.send(mod, "m.custom", sk(fmt.Sprint("b", i)), map[string]any{})
	}
	return v, []StateMap{a.state, b.state}, r.store
}

// BenchmarkResolve resolves two forks of a room with 10,000 joined members
// and about 50 conflicted state events.
func BenchmarkResolve(b *testing.B) {
	for _, ver := range []string{"1", "10", "12"} {
		b.Run("v"+ver, func(b *testing.B) {
			v, states, st := forkedRoom(b, ver, 10_000)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Resolve(b.Context(), v, states, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestForkedRoom checks the benchmark's outcome on a small room: the
// resolution keeps alice's power levels and topic, and the moderator's
// bans of users alice did not kick.
func TestForkedRoom(t *testing.T) {
	for _, ver := range []string{"10", "12"} {
		v, states, st := forkedRoom(t, ver, 50)
		got, err := Resolve(t.Context(), v, states, st)
		if err != nil {
			t.Fatal(err)
		}
		m := func(i int) string {
			id := got[StateKey{event.TypeMember, fmt.Sprintf("@u%d:example.net", i)}]
			return st.events[id].Membership()
		}
		// Kicks (power events by alice, who outranks the moderator) are
		// ordered first; the moderator's bans of u5..u9 then still pass,
		// since banning a user who left is allowed.
		for i, want := range map[int]string{0: "leave", 4: "leave", 5: "ban", 9: "ban", 10: "ban", 14: "ban", 15: "join"} {
			if got := m(i); got != want {
				t.Errorf("v%s: u%d membership = %q, want %q", ver, i, got, want)
			}
		}
		pl := st.events[got[StateKey{event.TypePowerLevels, ""}]]
		if pl.Sender() != alice {
			t.Errorf("v%s: power levels from %s, want alice's", ver, pl.Sender())
		}
		if len(got) != len(states[0])+9 {
			t.Errorf("v%s: %d state entries, want %d", ver, len(got), len(states[0])+9)
		}
	}
}
