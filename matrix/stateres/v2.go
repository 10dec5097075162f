package stateres

import (
	"cmp"
	"container/heap"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/authrules"
	"github.com/axon-hs/axon/matrix/event"
)

// idSet is a set of event IDs.
type idSet map[matrix.EventID]struct{}

func (s idSet) has(id matrix.EventID) bool { _, ok := s[id]; return ok }

// resolveV2 is state resolution v2 (room versions 2 to 11) and v2.1 (room
// version 12), rooms/fragments/v2-state-res.md and rooms/v12.md.
func (r *resolver) resolveV2(states []StateMap) (StateMap, error) {
	unconflicted, conflicted, perState := splitV2(states)
	if len(conflicted) == 0 {
		return unconflicted, nil
	}
	v21 := r.v.StateRes == event.StateResV2_1

	// Auth difference: ∪Cᵢ − ∩Cᵢ, where Cᵢ is the full auth chain of Sᵢ.
	// Sᵢ is the unconflicted events U plus the conflicted events Kᵢ it
	// holds, so Cᵢ = chain(U) ∪ chain(Kᵢ), and the difference is
	// ∪chain(Kᵢ) − chain(U) − ∩chain(Kᵢ): only the (usually small) chains
	// of conflicted events need to be kept as sets.
	chains := make([]idSet, len(perState))
	union := idSet{}
	for i, ks := range perState {
		c, err := r.authChain(ks, nil)
		if err != nil {
			return nil, err
		}
		chains[i] = c
		for id := range c {
			union[id] = struct{}{}
		}
	}
	candidates := idSet{}
	for id := range union {
		inAll := true
		for _, c := range chains {
			if !c.has(id) {
				inAll = false
				break
			}
		}
		if !inAll {
			candidates[id] = struct{}{}
		}
	}
	if len(candidates) > 0 {
		// Remove what the unconflicted events' chains hold. Nothing below
		// an event in every chain(Kᵢ) can be a candidate, so the walk
		// stops there.
		inAll := func(id matrix.EventID) bool {
			for _, c := range chains {
				if !c.has(id) {
					return false
				}
			}
			return true
		}
		roots := make([]matrix.EventID, 0, len(unconflicted))
		for _, id := range unconflicted {
			roots = append(roots, id)
		}
		common, err := r.authChain(roots, inAll)
		if err != nil {
			return nil, err
		}
		for id := range common {
			delete(candidates, id)
		}
	}

	// Full conflicted set: the conflicted state set, the auth difference
	// and, in v2.1, the conflicted state subgraph.
	full := maps.Clone(conflicted)
	for id := range candidates {
		full[id] = struct{}{}
	}
	if v21 {
		sub, err := r.conflictedSubgraph(conflicted, union)
		if err != nil {
			return nil, err
		}
		for id := range sub {
			full[id] = struct{}{}
		}
	}

	// Step 1: the power events of the full conflicted set and the events
	// of their auth chains that are in it, in reverse topological power
	// ordering.
	var power []matrix.EventID
	for id := range full {
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		if isPowerEvent(e) {
			power = append(power, id)
		}
	}
	powerChain, err := r.authChain(power, nil)
	if err != nil {
		return nil, err
	}
	x := idSet{}
	for _, id := range power {
		x[id] = struct{}{}
	}
	for id := range powerChain {
		if full.has(id) {
			x[id] = struct{}{}
		}
	}
	sortedPower, err := r.reverseTopologicalPowerOrder(x)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state map (v2)
	// or from an empty map (v2.1).
	resolved := StateMap{}
	if !v21 {
		resolved = maps.Clone(unconflicted)
	}
	if err := r.iterativeAuthChecks(resolved, sortedPower); err != nil {
		return nil, err
	}

	// Step 3: the other events in mainline order of the resolved power
	// levels.
	var rest []*event.PDU
	for id := range full {
		if x.has(id) {
			continue
		}
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		rest = append(rest, e)
	}
	if err := r.mainlineSort(rest, resolved[StateKey{Type: event.TypePowerLevels}]); err != nil {
		return nil, err
	}

	// Step 4.
	if err := r.iterativeAuthChecks(resolved, rest); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state map wins.
	maps.Copy(resolved, unconflicted)
	return resolved, nil
}

// splitV2 divides the states into the unconflicted state map and the
// conflicted state set: a key is unconflicted when every state has it with
// the same event. perState[i] lists the conflicted events state i holds.
func splitV2(states []StateMap) (unconflicted StateMap, conflicted idSet, perState [][]matrix.EventID) {
	unconflicted = make(StateMap, len(states[0]))
	conflicted = idSet{}
	perState = make([][]matrix.EventID, len(states))
	conflictedKeys := map[StateKey]struct{}{}
	for i, s := range states {
		for k, id := range s {
			if i > 0 {
				if _, done := conflictedKeys[k]; done {
					continue
				}
				if _, done := unconflicted[k]; done {
					continue
				}
			}
			same := true
			for j, o := range states {
				if j == i {
					continue
				}
				if oid, ok := o[k]; !ok || oid != id {
					same = false
					break
				}
			}
			if same {
				unconflicted[k] = id
				continue
			}
			conflictedKeys[k] = struct{}{}
		}
	}
	for k := range conflictedKeys {
		for i, s := range states {
			if id, ok := s[k]; ok {
				conflicted[id] = struct{}{}
				perState[i] = append(perState[i], id)
			}
		}
	}
	return unconflicted, conflicted, perState
}

// isPowerEvent reports whether e is a power event: a state event of type
// m.room.power_levels or m.room.join_rules, or a leave or ban of another
// user. The definition goes by type alone, as the spec writes it (Synapse
// also requires an empty state key and counts m.room.create; neither
// differs for events the auth rules consult).
func isPowerEvent(e *event.PDU) bool {
	if !e.IsState() {
		return false
	}
	switch e.Type() {
	case event.TypePowerLevels, event.TypeJoinRules:
		return true
	case event.TypeMember:
		m := e.Membership()
		return (m == "leave" || m == "ban") && string(e.Sender()) != *e.StateKey()
	}
	return false
}

// authChain returns the union of the auth chains of roots: every event
// reachable through auth_events, roots excluded unless reachable from
// another root. When stop is set, the walk records but does not go below
// events for which stop is true.
func (r *resolver) authChain(roots []matrix.EventID, stop func(matrix.EventID) bool) (idSet, error) {
	seen := make(idSet, len(roots))
	stack := make([]matrix.EventID, 0, 4*len(roots))
	for _, id := range roots {
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		stack = append(stack, e.AuthEventIDs()...)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen.has(id) {
			continue
		}
		seen[id] = struct{}{}
		if stop != nil && stop(id) {
			continue
		}
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		stack = append(stack, e.AuthEventIDs()...)
	}
	return seen, nil
}

// conflictedSubgraph returns the events on auth_events paths between two
// events of the conflicted state set, endpoints included (rooms/v12.md).
// reach is the union of the conflicted events' auth chains: every such
// path lies in it.
func (r *resolver) conflictedSubgraph(conflicted, reach idSet) (idSet, error) {
	// leadsTo[x]: x is conflicted or one of its auth events leads to a
	// conflicted event. Computed depth first without recursion, since
	// auth chains can be thousands of events long.
	const (
		unknown = iota
		visiting
		yes
		no
	)
	state := make(map[matrix.EventID]uint8, len(reach)+len(conflicted))
	type frame struct {
		id   matrix.EventID
		auth []matrix.EventID
		i    int
		hit  bool
	}
	resolve := func(root matrix.EventID) error {
		stack := []frame{}
		push := func(id matrix.EventID) error {
			e, err := r.get(id)
			if err != nil {
				return err
			}
			state[id] = visiting
			stack = append(stack, frame{id: id, auth: e.AuthEventIDs(), hit: conflicted.has(id)})
			return nil
		}
		if err := push(root); err != nil {
			return err
		}
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i < len(f.auth) {
				a := f.auth[f.i]
				f.i++
				switch state[a] {
				case yes:
					f.hit = true
				case unknown:
					if err := push(a); err != nil {
						return err
					}
				}
				// visiting would be a cycle in auth_events, which a valid
				// room cannot have; treat it as leading nowhere.
				continue
			}
			done := *f
			stack = stack[:len(stack)-1]
			if done.hit {
				state[done.id] = yes
				if len(stack) > 0 {
					stack[len(stack)-1].hit = true
				}
			} else {
				state[done.id] = no
			}
		}
		return nil
	}
	out := idSet{}
	for id := range conflicted {
		if state[id] == unknown {
			if err := resolve(id); err != nil {
				return nil, err
			}
		}
	}
	// Every event in reach is reachable from a conflicted event; it is on
	// a path between two of them if it also leads to one.
	for id := range reach {
		if state[id] == unknown {
			if err := resolve(id); err != nil {
				return nil, err
			}
		}
		if state[id] == yes {
			out[id] = struct{}{}
		}
	}
	for id := range conflicted {
		out[id] = struct{}{}
	}
	return out, nil
}

// senderPower is the power level of e's sender "when looking at their
// respective auth_events": the m.room.power_levels and m.room.create among
// e's auth events (the create event the room ID names in v12).
func (r *resolver) senderPower(e *event.PDU) (int64, error) {
	var create, pl *event.PDU
	for _, id := range e.AuthEventIDs() {
		a, err := r.get(id)
		if err != nil {
			return 0, err
		}
		if !a.StateKeyEquals("") {
			continue
		}
		switch a.Type() {
		case event.TypePowerLevels:
			pl = a
		case event.TypeCreate:
			create = a
		}
	}
	if r.v.RoomIDFromCreate {
		c, err := r.roomCreate(e)
		if err != nil {
			return 0, err
		}
		create = c
	}
	return authrules.PowerLevel(e.Sender(), create, pl), nil
}

// powerItem is one event in the reverse topological power ordering.
type powerItem struct {
	e        *event.PDU
	power    int64
	children []int
	indeg    int
}

// powerLess is the comparison relation of the reverse topological power
// ordering: greater sender power first, then smaller origin_server_ts,
// then smaller event ID.
func powerLess(a, b *powerItem) bool {
	if a.power != b.power {
		return a.power > b.power
	}
	if a.e.OriginServerTS() != b.e.OriginServerTS() {
		return a.e.OriginServerTS() < b.e.OriginServerTS()
	}
	return a.e.EventID() < b.e.EventID()
}

type powerHeap struct {
	items []*powerItem
	idx   []int
}

func (h *powerHeap) Len() int           { return len(h.idx) }
func (h *powerHeap) Less(i, j int) bool { return powerLess(h.items[h.idx[i]], h.items[h.idx[j]]) }
func (h *powerHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *powerHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *powerHeap) Pop() any {
	n := len(h.idx) - 1
	v := h.idx[n]
	h.idx = h.idx[:n]
	return v
}

// reverseTopologicalPowerOrder sorts set by Kahn's algorithm over the auth
// events DAG restricted to set, taking at each step the smallest candidate
// by powerLess: auth events come before the events they authorise.
func (r *resolver) reverseTopologicalPowerOrder(set idSet) ([]*event.PDU, error) {
	ids := make([]matrix.EventID, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids) // deterministic construction
	index := make(map[matrix.EventID]int, len(ids))
	items := make([]*powerItem, len(ids))
	for i, id := range ids {
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		p, err := r.senderPower(e)
		if err != nil {
			return nil, err
		}
		items[i] = &powerItem{e: e, power: p}
		index[id] = i
	}
	for i, it := range items {
		for _, a := range uniqueIDs(it.e.AuthEventIDs()) {
			if j, ok := index[a]; ok {
				items[j].children = append(items[j].children, i)
				it.indeg++
			}
		}
	}
	h := &powerHeap{items: items}
	for i, it := range items {
		if it.indeg == 0 {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	out := make([]*event.PDU, 0, len(items))
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		out = append(out, items[i].e)
		for _, c := range items[i].children {
			items[c].indeg--
			if items[c].indeg == 0 {
				heap.Push(h, c)
			}
		}
	}
	if len(out) != len(items) {
		return nil, fmt.Errorf("auth events of %d conflicted events form a cycle", len(items)-len(out))
	}
	return out, nil
}

func uniqueIDs(ids []matrix.EventID) []matrix.EventID {
	for i := 1; i < len(ids); i++ {
		if slices.Contains(ids[:i], ids[i]) {
			out := slices.Clone(ids[:i])
			for _, id := range ids[i:] {
				if !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
			return out
		}
	}
	return ids
}

// powerLevelsAuth returns the m.room.power_levels event among e's auth
// events, or nil.
func (r *resolver) powerLevelsAuth(e *event.PDU) (*event.PDU, error) {
	for _, id := range e.AuthEventIDs() {
		a, err := r.get(id)
		if err != nil {
			return nil, err
		}
		if a.Type() == event.TypePowerLevels && a.StateKeyEquals("") {
			return a, nil
		}
	}
	return nil, nil
}

// mainlineSort sorts events by the mainline ordering based on the power
// levels event pl (none: every position is ∞): greater mainline position
// first, then smaller origin_server_ts, then smaller event ID.
func (r *resolver) mainlineSort(events []*event.PDU, pl matrix.EventID) error {
	mainline := map[matrix.EventID]int{}
	for i, id := 0, pl; id != ""; i++ {
		if _, loop := mainline[id]; loop {
			break
		}
		mainline[id] = i
		p, err := r.get(id)
		if err != nil {
			return err
		}
		next, err := r.powerLevelsAuth(p)
		if err != nil {
			return err
		}
		if next == nil {
			break
		}
		id = next.EventID()
	}
	const infinity = math.MaxInt
	// at[id] is the position found from a power levels event id itself
	// included; an event's position starts from the power levels event
	// in its auth events (e₁), never from the event itself (e₀).
	at := map[matrix.EventID]int{}
	var from func(p *event.PDU) (int, error)
	from = func(p *event.PDU) (int, error) {
		var path []matrix.EventID
		pos := infinity
		for p != nil {
			if i, ok := mainline[p.EventID()]; ok {
				pos = i
				break
			}
			if i, ok := at[p.EventID()]; ok {
				pos = i
				break
			}
			if slices.Contains(path, p.EventID()) {
				break // a cycle: no position
			}
			path = append(path, p.EventID())
			next, err := r.powerLevelsAuth(p)
			if err != nil {
				return 0, err
			}
			p = next
		}
		for _, id := range path {
			at[id] = pos
		}
		return pos, nil
	}
	pos := make(map[matrix.EventID]int, len(events))
	for _, e := range events {
		first, err := r.powerLevelsAuth(e)
		if err != nil {
			return err
		}
		p := infinity
		if first != nil {
			if p, err = from(first); err != nil {
				return err
			}
		}
		pos[e.EventID()] = p
	}
	slices.SortFunc(events, func(a, b *event.PDU) int {
		if c := cmp.Compare(pos[b.EventID()], pos[a.EventID()]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.OriginServerTS(), b.OriginServerTS()); c != 0 {
			return c
		}
		return cmp.Compare(a.EventID(), b.EventID())
	})
	return nil
}

// iterativeAuthChecks applies each event to state, in order, if the auth
// rules allow it against the state so far, falling back to the event's own
// non-rejected auth events for keys the state lacks.
func (r *resolver) iterativeAuthChecks(state StateMap, events []*event.PDU) error {
	for i, e := range events {
		if i%256 == 255 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
		}
		k, ok := keyOf(e)
		if !ok {
			continue // not state: nothing to apply
		}
		allowed, err := r.allowed(state.get, e, true)
		if err != nil {
			return err
		}
		if allowed {
			state[k] = e.EventID()
		}
	}
	return nil
}
