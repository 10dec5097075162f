package stateres

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

func v2Versions() []string {
	var out []string
	for i := 2; i <= 12; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// TestGraphs runs the classic state resolution v2 scenarios (the graphs
// Synapse's test suite uses, rebuilt here): each checks the state at END
// against the keys that changed since START.
func TestGraphs(t *testing.T) {
	cases := []struct {
		name  string
		nodes []node
		edges [][]string
		want  []string
	}{
		{
			// Bob's power levels change races alice banning him: the ban
			// wins and his change is dropped.
			name: "ban vs power levels",
			nodes: []node{
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				member("MA", alice, alice, "join"),
				member("MB", alice, bob, "ban"),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50}),
			},
			edges: [][]string{{"END", "MB", "MA", "PA", "START"}, {"END", "PB", "PA"}},
			want:  []string{"PA", "MA", "MB"},
		},
		{
			// Evelyn joins on a branch where the room is still public; the
			// other branch made it private (a join rules event without a
			// join_rule, which means invite).
			name: "join rule evasion",
			nodes: []node{
				{"JR", alice, event.TypeJoinRules, sk(""), map[string]any{"join_rules": "private"}},
				member("ME", evelyn, evelyn, "join"),
			},
			edges: [][]string{{"END", "JR", "START"}, {"END", "ME", "START"}},
			want:  []string{"JR"},
		},
		{
			name: "off-topic power levels",
			nodes: []node{
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50, charlie: 50}),
				powerLevels("PC", charlie, map[matrix.UserID]int{alice: 100, bob: 50, charlie: 0}),
			},
			edges: [][]string{{"END", "PC", "PB", "PA", "START"}, {"END", "PA"}},
			want:  []string{"PC"},
		},
		{
			name: "topic basic",
			nodes: []node{
				topic("T1", alice),
				powerLevels("PA1", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T2", alice),
				powerLevels("PA2", alice, map[matrix.UserID]int{alice: 100, bob: 0}),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T3", bob),
			},
			edges: [][]string{{"END", "PA2", "T2", "PA1", "T1", "START"}, {"END", "T3", "PB", "PA1"}},
			want:  []string{"PA2", "T2"},
		},
		{
			name: "topic reset",
			nodes: []node{
				topic("T1", alice),
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T2", bob),
				member("MB", alice, bob, "ban"),
			},
			edges: [][]string{{"END", "MB", "T2", "PA", "T1", "START"}, {"END", "T1"}},
			want:  []string{"T1", "MB", "PA"},
		},
		{
			name: "topic",
			nodes: []node{
				topic("T1", alice),
				powerLevels("PA1", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T2", alice),
				powerLevels("PA2", alice, map[matrix.UserID]int{alice: 100, bob: 0}),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T3", bob),
				{"MZ1", zara, "m.room.message", nil, map[string]any{}},
				topic("T4", alice),
			},
			edges: [][]string{
				{"END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"},
				{"END", "MZ1", "T3", "PB", "PA1"},
			},
			want: []string{"T4", "PA2"},
		},
		{
			// T3 wins although T4 was sent later: T4's power levels are
			// older in the mainline.
			name: "mainline sort",
			nodes: []node{
				topic("T1", alice),
				powerLevels("PA1", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T2", alice),
				powerLevels("PA2", alice, map[matrix.UserID]int{alice: 100, bob: 50}, "events", map[string]any{event.TypePowerLevels: 100}),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50}),
				topic("T3", bob),
				topic("T4", alice),
			},
			edges: [][]string{
				{"END", "T3", "PA2", "T2", "PA1", "T1", "START"},
				{"END", "T4", "PB", "PA1"},
			},
			want: []string{"T3", "PA2"},
		},
	}
	for _, tc := range cases {
		for _, ver := range v2Versions() {
			t.Run(tc.name+"/v"+ver, func(t *testing.T) {
				g := buildGraph(t, ver, append(initialNodes(), tc.nodes...), tc.edges)
				want := g.stateOf(tc.want...)
				if got := g.changedAtEnd(tc.want); !maps.Equal(got, want) {
					t.Fatalf("state at END = %s, want %s", g.describe(got), g.describe(want))
				}
			})
		}
	}
}

// TestBanVsJoin: alice bans bob on one branch while bob, who had left,
// rejoins the public room on the other. The ban (a power event) is
// applied first and the join fails against it.
func TestBanVsJoin(t *testing.T) {
	for _, ver := range append([]string{"1"}, v2Versions()...) {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				member("LB", bob, bob, "leave"),
				member("BAN", alice, bob, "ban"),
				member("JB", bob, bob, "join"),
			), [][]string{{"END", "BAN", "LB", "START"}, {"END", "JB", "LB"}})
			// In v1 both are at the same depth, so sha1(event_id) orders
			// them and the second wins only if allowed after the first: a
			// join is never allowed over a ban, and a ban is allowed over
			// a join, so the ban wins either way.
			got := g.after["END"][g.key("BAN")]
			if got != g.byName["BAN"].EventID() {
				t.Fatalf("bob's membership at END = %s, want BAN; state %s", g.names[got], g.describe(g.after["END"]))
			}
		})
	}
}

// TestPowerLevelsBothSides: alice demotes bob on one branch while bob,
// still a moderator on his branch, lowers state_default and sets the
// topic. Alice's change is ordered first (higher sender power), so bob's
// change and topic fail. In v1 alice's change wins too (whichever power
// levels come first, hers is allowed after bob's and his is not after
// hers), but bob's topic stays: only his branch has a topic, which v1 does
// not count as a conflict.
func TestPowerLevelsBothSides(t *testing.T) {
	for _, ver := range append([]string{"1"}, v2Versions()...) {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				powerLevels("PA2", alice, map[matrix.UserID]int{alice: 100, bob: 0}),
				powerLevels("PB", bob, map[matrix.UserID]int{alice: 100, bob: 50}, "state_default", 40),
				topic("TB", bob),
			), [][]string{{"END", "PA2", "PA", "START"}, {"END", "TB", "PB", "PA"}})
			end := g.after["END"]
			if got := end[g.key("PA2")]; got != g.byName["PA2"].EventID() {
				t.Fatalf("power levels at END = %s, want PA2", g.names[got])
			}
			if _, ok := end[g.key("TB")]; ok != (ver == "1") {
				t.Fatalf("bob's topic kept = %v, want %v: %s", ok, ver == "1", g.describe(end))
			}
		})
	}
}

// TestJoinRuleConflict: alice makes the room invite-only on one branch
// while dave joins on the other. In v2 the join is checked against the
// resolved join rules and dropped; in v1 a key only one state has is not
// a conflict, so the join stays.
func TestJoinRuleConflict(t *testing.T) {
	dave := matrix.UserID("@dave:example.com")
	for _, ver := range append([]string{"1"}, v2Versions()...) {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				node{"JR", alice, event.TypeJoinRules, sk(""), map[string]any{"join_rule": "invite"}},
				member("JD", dave, dave, "join"),
			), [][]string{{"END", "JR", "START"}, {"END", "JD", "START"}})
			end := g.after["END"]
			if got := end[g.key("JR")]; got != g.byName["JR"].EventID() {
				t.Fatalf("join rules at END = %s, want JR", g.names[got])
			}
			_, joined := end[g.key("JD")]
			if want := ver == "1"; joined != want {
				t.Fatalf("dave joined = %v, want %v; state %s", joined, want, g.describe(end))
			}
		})
	}
}

// TestTopicConflict: two topics on two branches with the same power
// levels. v2 orders them by mainline position (equal) then timestamp, so
// the later one wins; v1 takes the deeper one.
func TestTopicConflict(t *testing.T) {
	for _, ver := range append([]string{"1"}, v2Versions()...) {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				topic("TA", alice),
				topic("TA2", alice),
				topic("TB", alice),
			), [][]string{{"END", "TA2", "TA", "START"}, {"END", "TB", "START"}})
			end := g.after["END"]
			want := "TB" // the latest timestamp
			if ver == "1" {
				want = "TA2" // the greatest depth
			}
			if got := g.names[end[g.key("TB")]]; got != want {
				t.Fatalf("topic at END = %s, want %s", got, want)
			}
		})
	}
}

// TestV2VersusV21: bob, a moderator, makes the room invite-only and then
// leaves. One state holds his join rules, the other not, and both hold his
// leave. Plain v2 checks his join rules against the unconflicted state, in
// which he has left, and drops them: a state reset. v2.1 starts from an
// empty state and uses the conflicted state subgraph (his join lies on
// the path from his join rules to the old ones), so his change stands.
func TestV2VersusV21(t *testing.T) {
	for _, ver := range []string{"11", "12"} {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100, bob: 50}),
				node{"JR2", bob, event.TypeJoinRules, sk(""), map[string]any{"join_rule": "invite"}},
				member("LB", bob, bob, "leave"),
			), [][]string{{"JR2", "PA", "START"}, {"LB", "JR2"}})
			s1 := g.stateOf("CREATE", "IMA", "PA", "IJR", "IMC", "IMZ", "LB")
			s2 := g.stateOf("CREATE", "IMA", "PA", "JR2", "IMC", "IMZ", "LB")
			// LB comes after JR2: s1 is a state where JR2 was resolved away.
			got, err := Resolve(t.Context(), g.v, []StateMap{s1, s2}, g.store)
			if err != nil {
				t.Fatal(err)
			}
			want := "IJR"
			if g.v.StateRes == event.StateResV2_1 {
				want = "JR2"
			}
			if name := g.names[got[g.key("IJR")]]; name != want {
				t.Fatalf("join rules = %s, want %s; state %s", name, want, g.describe(got))
			}
			if name := g.names[got[g.key("LB")]]; name != "LB" {
				t.Fatalf("bob's membership = %s, want LB", name)
			}
		})
	}
}

func TestTrivialInputs(t *testing.T) {
	g := buildGraph(t, "10", initialNodes(), nil)
	s := g.after["START"]
	for _, tc := range []struct {
		name   string
		states []StateMap
		want   StateMap
	}{
		{"none", nil, StateMap{}},
		{"one", []StateMap{s}, s},
		{"same twice", []StateMap{s, maps.Clone(s)}, s},
	} {
		got, err := Resolve(t.Context(), g.v, tc.states, g.store)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !maps.Equal(got, tc.want) {
			t.Fatalf("%s: got %s, want %s", tc.name, g.describe(got), g.describe(tc.want))
		}
	}
}

func TestErrors(t *testing.T) {
	for _, ver := range []string{"1", "10", "12"} {
		g := buildGraph(t, ver, append(initialNodes(), topic("TA", alice), topic("TB", alice)),
			[][]string{{"END", "TA", "START"}, {"END", "TB", "START"}})
		sa, sb := g.after["TA"], g.after["TB"]

		// A missing conflicted event.
		missing := maps.Clone(sb)
		missing[g.key("TB")] = "$missing"
		if _, err := Resolve(t.Context(), g.v, []StateMap{sa, missing}, g.store); err == nil {
			t.Errorf("v%s: Resolve with a missing event succeeded", ver)
		}

		// A missing auth event.
		delete(g.store.events, g.byName["IMA"].EventID())
		if _, err := Resolve(t.Context(), g.v, []StateMap{sa, sb}, g.store); err == nil && ver != "1" {
			t.Errorf("v%s: Resolve with a missing auth event succeeded", ver)
		}
		g.store.events[g.byName["IMA"].EventID()] = g.byName["IMA"]

		// A cancelled context (the cancellation is noticed while loading).
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Resolve(ctx, g.v, []StateMap{sa, sb}, ctxStore{g.store}); !errors.Is(err, context.Canceled) {
			t.Errorf("v%s: Resolve with a cancelled context: %v", ver, err)
		}

		if _, err := Resolve(t.Context(), nil, []StateMap{sa, sb}, g.store); err == nil {
			t.Errorf("Resolve(nil version) succeeded")
		}
		if _, err := Resolve(t.Context(), event.MustVersion("3"), []StateMap{sa, sb}, g.store); err == nil && ver != "3" {
			t.Errorf("v%s: Resolve with events of another version succeeded", ver)
		}
	}
}

// ctxStore fails loads once its context is done.
type ctxStore struct{ *store }

func (s ctxStore) Event(ctx context.Context, id matrix.EventID) (*event.PDU, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.store.Event(ctx, id)
}

// TestRejectedAuthEventsIgnored: in the iterative auth checks, a key the
// state lacks is taken from the event's auth events unless that auth event
// was rejected.
func TestRejectedAuthEventsIgnored(t *testing.T) {
	g := buildGraph(t, "12", append(initialNodes(),
		topic("TA", alice), topic("TB", alice),
	), [][]string{{"END", "TA", "START"}, {"END", "TB", "START"}})
	// v2.1 starts from an empty state, so alice's topics are authorised by
	// their own auth events; mark her membership rejected and neither passes.
	g.store.rejected[g.byName["IMA"].EventID()] = true
	sa, sb := g.after["TA"], g.after["TB"]
	got, err := Resolve(t.Context(), g.v, []StateMap{sa, sb}, g.store)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := got[g.key("TA")]; ok {
		t.Fatalf("topic %s passed with a rejected auth event", g.names[id])
	}
}

func TestConflictedSubgraph(t *testing.T) {
	// CREATE ← IMA ← IPOWER ← IJR ← IMB ← (bob's leave LB): conflicting
	// IJR against LB puts IMB (on the path LB → IMB → IJR) in the
	// subgraph, and nothing below IJR.
	g := buildGraph(t, "12", append(initialNodes(), member("LB", bob, bob, "leave")), [][]string{{"LB", "START"}})
	r := &resolver{ctx: t.Context(), v: g.v, events: g.store, cache: map[matrix.EventID]*event.PDU{}}
	conflicted := idSet{g.byName["IJR"].EventID(): {}, g.byName["LB"].EventID(): {}}
	reach, err := r.authChain([]matrix.EventID{g.byName["IJR"].EventID(), g.byName["LB"].EventID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.conflictedSubgraph(conflicted, reach)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for id := range sub {
		names = append(names, g.names[id])
	}
	want := map[string]bool{"IJR": true, "LB": true, "IMB": true}
	if len(names) != len(want) {
		t.Fatalf("subgraph = %v, want IJR, IMB, LB", names)
	}
	for _, n := range names {
		if !want[n] {
			t.Fatalf("subgraph = %v, want IJR, IMB, LB", names)
		}
	}
}

func TestMainlinePositionExcludesEventItself(t *testing.T) {
	// P0 ← P1 (mainline of P1 is [P1, P0]). An event citing P1 has position
	// 0, one citing P0 position 1; sorted, the older (higher position) first.
	g := buildGraph(t, "10", append(initialNodes(),
		powerLevels("P1", alice, map[matrix.UserID]int{alice: 100, bob: 10}),
		topic("TOLD", alice),
		topic("TNEW", alice),
	), [][]string{{"TOLD", "START"}, {"P1", "START"}, {"TNEW", "P1"}})
	r := &resolver{ctx: t.Context(), v: g.v, events: g.store, cache: map[matrix.EventID]*event.PDU{}}
	evs := []*event.PDU{g.byName["TNEW"], g.byName["TOLD"]}
	if err := r.mainlineSort(evs, g.byName["P1"].EventID()); err != nil {
		t.Fatal(err)
	}
	if g.names[evs[0].EventID()] != "TOLD" {
		t.Fatalf("mainline order = %s, %s; want TOLD first", g.names[evs[0].EventID()], g.names[evs[1].EventID()])
	}
}

// TestConflictedSubgraphMatters needs the conflicted state subgraph, not
// only the empty starting state. Alice's PA, then PB (bob and charlie to
// 50), then bob's PC; charlie's topic TX cites PB. One state holds PA (PB
// was resolved away) and TX, the other PC and TX. PB is in both full auth
// chains (through TX), so it is not in the auth difference, but it lies on
// the path PC → PB → PA between the two conflicted power levels. Without
// it, PC is checked against PA, where bob has no power, and is dropped;
// with it, PB is re-applied first and PC stands.
func TestConflictedSubgraphMatters(t *testing.T) {
	for _, ver := range []string{"11", "12"} {
		t.Run("v"+ver, func(t *testing.T) {
			g := buildGraph(t, ver, append(initialNodes(),
				powerLevels("PA", alice, map[matrix.UserID]int{alice: 100}, "kick", 60),
				powerLevels("PB", alice, map[matrix.UserID]int{alice: 100, bob: 50, charlie: 50}, "kick", 60),
				powerLevels("PC", bob, map[matrix.UserID]int{alice: 100, bob: 50, charlie: 50}, "kick", 60, "state_default", 40),
				topic("TX", charlie),
			), [][]string{{"PC", "PB", "PA", "START"}, {"TX", "PB"}})
			s1 := maps.Clone(g.after["TX"])
			s1[g.key("PA")] = g.byName["PA"].EventID()
			s2 := maps.Clone(g.after["TX"])
			s2[g.key("PA")] = g.byName["PC"].EventID()
			got, err := Resolve(t.Context(), g.v, []StateMap{s1, s2}, g.store)
			if err != nil {
				t.Fatal(err)
			}
			want := "PA"
			if g.v.StateRes == event.StateResV2_1 {
				want = "PC"
			}
			if name := g.names[got[g.key("PA")]]; name != want {
				t.Fatalf("power levels = %s, want %s; state %s", name, want, g.describe(got))
			}
		})
	}
}
