package stateres

import (
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// FuzzResolve resolves states made of arbitrary choices among the events of
// a small room with competing power levels, bans, joins and topics: every
// combination must resolve without error or panic, to a consistent state.
func FuzzResolve(f *testing.F) {
	nodes := append(initialNodes(),
		powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
		powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50, charlie: 50}),
		powerLevels("PC", alice, map[matrix.UserID]int{alice: 100, bob: 0}),
		member("BAN", bob, charlie, "ban"),
		member("KICK", alice, bob, "leave"),
		member("LZ", zara, zara, "leave"),
		member("JZ", zara, zara, "join"),
		node{"JR", bob, event.TypeJoinRules, sk(""), map[string]any{"join_rule": "invite"}},
		topic("T1", charlie),
		topic("T2", bob),
	)
	edges := [][]string{
		{"PB", "PA", "START"}, {"BAN", "PB"}, {"T1", "PB"},
		{"PC", "PA"}, {"KICK", "PC"}, {"JR", "PA"}, {"T2", "JR"},
		{"JZ", "LZ", "START"},
	}
	graphs := map[string]*graph{}
	for _, ver := range []string{"1", "10", "12"} {
		graphs[ver] = buildGraph(f, ver, nodes, edges)
	}
	names := []string{"CREATE", "IMA", "IPOWER", "IJR", "IMB", "IMC", "IMZ", "PA", "PB", "PC", "BAN", "KICK", "LZ", "JZ", "JR", "T1", "T2"}
	f.Add(uint8(1), []byte{0xff, 0xff, 0x01, 0x02, 0x33})
	f.Add(uint8(2), []byte{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70})
	f.Fuzz(func(t *testing.T, which uint8, choice []byte) {
		ver := []string{"1", "10", "12"}[int(which)%3]
		g := graphs[ver]
		if len(choice) > 64 {
			choice = choice[:64]
		}
		// Each byte sets one entry of one state: state (high bits) and
		// node (low bits); a node of another key overrides.
		states := make([]StateMap, 2+int(which)%2)
		for i := range states {
			states[i] = g.stateOf("CREATE", "IMA")
		}
		for _, b := range choice {
			n := names[int(b)%len(names)]
			s := states[int(b>>5)%len(states)]
			s[g.key(n)] = g.byName[n].EventID()
		}
		got, err := Resolve(t.Context(), g.v, states, g.store)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		// Events of the auth difference may fill keys the (artificial)
		// inputs lack, so check consistency rather than key sets.
		for k, id := range got {
			e := g.store.events[id]
			if e == nil || !e.IsState() || (StateKey{e.Type(), *e.StateKey()}) != k {
				t.Fatalf("resolved %v to %s, which is not an event of that key", k, id)
			}
		}
		// Step 5: the unconflicted state map wins.
		for k, id := range states[0] {
			same := true
			for _, s := range states[1:] {
				if s[k] != id {
					same = false
				}
			}
			if same && got[k] != id {
				t.Fatalf("unconflicted %v = %s resolved to %s", k, id, got[k])
			}
		}
	})
}
