package stateres

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"maps"
	"slices"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// resolveV1 is the state resolution of room version 1 (rooms/v1.md "State
// resolution").
//
// A conflict is two states holding different events for one key; a key
// missing from some states is not a conflict (the v1 text defines
// conflicts by "different event_ids", unlike v2's "present in every
// state").
//
// The text resolves "conflicts between m.room.member events" as one step;
// each member key is resolved on its own against R as it stood after the
// join rules, and R takes all of them at once afterwards, so the result
// does not depend on the order of the keys (as Synapse does it).
func (r *resolver) resolveV1(states []StateMap) (StateMap, error) {
	resolved := make(StateMap, len(states[0]))
	conflicts := map[StateKey][]matrix.EventID{}
	for _, s := range states {
		for k, id := range s {
			if ids, ok := conflicts[k]; ok {
				if !slices.Contains(ids, id) {
					conflicts[k] = append(ids, id)
				}
				continue
			}
			if cur, ok := resolved[k]; ok && cur != id {
				delete(resolved, k)
				conflicts[k] = []matrix.EventID{cur, id}
				continue
			}
			resolved[k] = id
		}
	}
	if len(conflicts) == 0 {
		return resolved, nil
	}

	keys := slices.SortedFunc(maps.Keys(conflicts), func(a, b StateKey) int {
		if c := cmp.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return cmp.Compare(a.StateKey, b.StateKey)
	})
	for _, typ := range []string{event.TypePowerLevels, event.TypeJoinRules, event.TypeMember} {
		picked := StateMap{}
		for _, k := range keys {
			if k.Type != typ {
				continue
			}
			id, err := r.resolveAuthKeyV1(resolved, k, conflicts[k])
			if err != nil {
				return nil, err
			}
			picked[k] = id
		}
		maps.Copy(resolved, picked)
	}

	// "No other events affect the authorisation rules": each remaining
	// key takes its event with the highest depth and lowest sha1(event_id)
	// that passes authentication in R.
	picked := StateMap{}
	for _, k := range keys {
		switch k.Type {
		case event.TypePowerLevels, event.TypeJoinRules, event.TypeMember:
			continue
		}
		evs, err := r.loadAll(conflicts[k])
		if err != nil {
			return nil, err
		}
		slices.SortFunc(evs, func(a, b *event.PDU) int { return -v1Order(a, b) })
		// NOTSPEC: the text does not say what happens when no event
		// passes; like Synapse we keep the last one tried, the one with
		// the lowest depth.
		choice := evs[len(evs)-1].EventID()
		for _, e := range evs {
			ok, err := r.allowed(resolved.get, e, false)
			if err != nil {
				return nil, err
			}
			if ok {
				choice = e.EventID()
				break
			}
		}
		picked[k] = choice
	}
	maps.Copy(resolved, picked)
	return resolved, nil
}

// resolveAuthKeyV1 resolves one conflicted key of an auth event type:
// sort by ascending depth then descending sha1(event_id), take the first,
// and replace it by each next one while that one is allowed in R.
func (r *resolver) resolveAuthKeyV1(base StateMap, k StateKey, ids []matrix.EventID) (matrix.EventID, error) {
	evs, err := r.loadAll(ids)
	if err != nil {
		return "", err
	}
	slices.SortFunc(evs, v1Order)
	cur := evs[0]
	for _, e := range evs[1:] {
		ok, err := r.allowed(base.with(k, cur.EventID()), e, false)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		cur = e
	}
	return cur.EventID(), nil
}

// v1Order is ascending depth, then descending sha1(event_id).
func v1Order(a, b *event.PDU) int {
	if c := cmp.Compare(a.Depth(), b.Depth()); c != 0 {
		return c
	}
	ha := sha1.Sum([]byte(a.EventID()))
	hb := sha1.Sum([]byte(b.EventID()))
	return -bytes.Compare(ha[:], hb[:])
}

func (r *resolver) loadAll(ids []matrix.EventID) ([]*event.PDU, error) {
	out := make([]*event.PDU, 0, len(ids))
	for _, id := range ids {
		e, err := r.get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
