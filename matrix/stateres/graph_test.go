package stateres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
)

var testKey = func() signing.Key {
	seed := sha256.Sum256([]byte("stateres test key"))
	k, err := signing.NewKeyFromSeed("ed25519:test", seed[:])
	if err != nil {
		panic(err)
	}
	return k
}()

const (
	alice   = matrix.UserID("@alice:example.com")
	bob     = matrix.UserID("@bob:example.com")
	charlie = matrix.UserID("@charlie:example.com")
	evelyn  = matrix.UserID("@evelyn:example.com")
	zara    = matrix.UserID("@zara:example.com")
)

func sk(s string) *string { return &s }

// store is an in-memory Events.
type store struct {
	events   map[matrix.EventID]*event.PDU
	rejected map[matrix.EventID]bool
}

func newStore() *store {
	return &store{events: map[matrix.EventID]*event.PDU{}, rejected: map[matrix.EventID]bool{}}
}

func (s *store) Event(_ context.Context, id matrix.EventID) (*event.PDU, error) {
	e, ok := s.events[id]
	if !ok {
		return nil, fmt.Errorf("event %s not in store", id)
	}
	return e, nil
}

func (s *store) Rejected(_ context.Context, id matrix.EventID) (bool, error) {
	return s.rejected[id], nil
}

// node is one event of a test graph, named for readability.
type node struct {
	name     string
	sender   matrix.UserID
	typ      string
	stateKey *string
	content  map[string]any
}

func member(name string, sender, target matrix.UserID, membership string) node {
	return node{name, sender, event.TypeMember, sk(string(target)), map[string]any{"membership": membership}}
}

func powerLevels(name string, sender matrix.UserID, users map[matrix.UserID]int, extra ...any) node {
	u := map[string]any{}
	for k, v := range users {
		u[string(k)] = v
	}
	c := map[string]any{"users": u}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return node{name, sender, event.TypePowerLevels, sk(""), c}
}

func topic(name string, sender matrix.UserID) node {
	return node{name, sender, "m.room.topic", sk(""), map[string]any{"topic": name}}
}

// initialNodes start every graph; initialEdges chain them.
func initialNodes() []node {
	return []node{
		{"CREATE", alice, event.TypeCreate, sk(""), map[string]any{}},
		member("IMA", alice, alice, "join"),
		powerLevels("IPOWER", alice, map[matrix.UserID]int{alice: 100}),
		{"IJR", alice, event.TypeJoinRules, sk(""), map[string]any{"join_rule": "public"}},
		member("IMB", bob, bob, "join"),
		member("IMC", charlie, charlie, "join"),
		member("IMZ", zara, zara, "join"),
		{"START", zara, "m.room.message", nil, map[string]any{}},
		{"END", zara, "m.room.message", nil, map[string]any{}},
	}
}

var initialEdges = []string{"START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"}

// graph is a built test DAG.
type graph struct {
	v      *event.RoomVersion
	store  *store
	byName map[string]*event.PDU
	names  map[matrix.EventID]string
	// state after each node
	after map[string]StateMap
}

// buildGraph builds nodes linked by edges (each chain [a, b, c] means a's
// prev event is b, b's is c), processing them in topological order with
// ties broken by name. origin_server_ts grows by one per event in that
// order. The state before an event with several prev events is their
// resolution.
func buildGraph(t testing.TB, version string, nodes []node, edges [][]string) *graph {
	t.Helper()
	v := event.MustVersion(version)
	g := &graph{v: v, store: newStore(), byName: map[string]*event.PDU{}, names: map[matrix.EventID]string{}, after: map[string]StateMap{}}
	byName := map[string]node{}
	prevs := map[string]map[string]bool{}
	for _, n := range nodes {
		if v.PrivilegedCreators && n.typ == event.TypePowerLevels {
			// Room version 12 creators cannot be listed.
			n.content = maps.Clone(n.content)
			u := maps.Clone(n.content["users"].(map[string]any))
			delete(u, string(alice))
			n.content["users"] = u
		}
		if v.CreateRequiresCreator && n.typ == event.TypeCreate {
			n.content = map[string]any{"creator": alice}
		}
		byName[n.name] = n
		prevs[n.name] = map[string]bool{}
	}
	for _, chain := range append([][]string{initialEdges}, edges...) {
		for i := 0; i+1 < len(chain); i++ {
			prevs[chain[i]][chain[i+1]] = true
		}
	}
	done := map[string]bool{}
	ts := int64(1000)
	var roomID matrix.RoomID
	if !v.RoomIDFromCreate {
		roomID = "!room:example.com"
	}
	for len(done) < len(byName) {
		var ready []string
		for name := range byName {
			if done[name] {
				continue
			}
			ok := true
			for p := range prevs[name] {
				if !done[p] {
					ok = false
				}
			}
			if ok {
				ready = append(ready, name)
			}
		}
		if len(ready) == 0 {
			t.Fatal("graph has a cycle")
		}
		slices.Sort(ready)
		name := ready[0]
		n := byName[name]
		prevNames := slices.Sorted(maps.Keys(prevs[name]))
		var before StateMap
		switch len(prevNames) {
		case 0:
			before = StateMap{}
		case 1:
			before = maps.Clone(g.after[prevNames[0]])
		default:
			var states []StateMap
			for _, p := range prevNames {
				states = append(states, g.after[p])
			}
			var err error
			before, err = Resolve(t.Context(), v, states, g.store)
			if err != nil {
				t.Fatalf("resolve state before %s: %v", name, err)
			}
		}
		p := event.Proto{Type: n.typ, StateKey: n.stateKey, Sender: n.sender, RoomID: roomID, Content: n.content, OriginServerTS: ts}
		ts++
		for _, pn := range prevNames {
			e := g.byName[pn]
			p.PrevEvents = append(p.PrevEvents, e.EventID())
			p.Depth = max(p.Depth, e.Depth()+1)
		}
		for _, k := range event.AuthEventsNeeded(p, v) {
			if id, ok := before[StateKey{k.Type, k.StateKey}]; ok {
				p.AuthEvents = append(p.AuthEvents, id)
			}
		}
		e, err := p.Build(v, n.sender.Server(), testKey)
		if err != nil {
			t.Fatalf("build %s: %v", name, err)
		}
		if n.typ == event.TypeCreate {
			roomID = e.RoomID()
		}
		g.store.events[e.EventID()] = e
		g.byName[name] = e
		g.names[e.EventID()] = name
		after := before
		if n.stateKey != nil {
			after = maps.Clone(before)
			after[StateKey{n.typ, *n.stateKey}] = e.EventID()
		}
		g.after[name] = after
		done[name] = true
	}
	return g
}

// describe renders a state map with node names, for failure messages.
func (g *graph) describe(s StateMap) string {
	keys := slices.SortedFunc(maps.Keys(s), func(a, b StateKey) int {
		if a.Type != b.Type {
			return cmpStr(a.Type, b.Type)
		}
		return cmpStr(a.StateKey, b.StateKey)
	})
	out := "{"
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		name := g.names[s[k]]
		if name == "" {
			name = string(s[k])
		}
		out += fmt.Sprintf("%s/%s=%s", k.Type, k.StateKey, name)
	}
	return out + "}"
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// key returns the state key of the named node.
func (g *graph) key(name string) StateKey {
	e := g.byName[name]
	return StateKey{e.Type(), *e.StateKey()}
}

// changedAtEnd is the state at END restricted to keys that changed since
// START or that want names.
func (g *graph) changedAtEnd(want []string) StateMap {
	start, end := g.after["START"], g.after["END"]
	wantKeys := map[StateKey]bool{}
	for _, n := range want {
		wantKeys[g.key(n)] = true
	}
	out := StateMap{}
	for k, id := range end {
		if wantKeys[k] || start[k] != id {
			out[k] = id
		}
	}
	return out
}

func (g *graph) stateOf(names ...string) StateMap {
	out := StateMap{}
	for _, n := range names {
		out[g.key(n)] = g.byName[n].EventID()
	}
	return out
}
