package resolve

import (
	"cmp"
	"net"
	"slices"
)

// usableSRV drops records whose target is ".", which RFC 2782 defines as
// "the service is decidedly not available at this domain". NOTSPEC: the
// Matrix spec does not say what to do then; we treat such a record like a
// missing one and go on to the next step, which is what a server that
// publishes "." for _matrix._tcp while serving _matrix-fed._tcp needs.
func usableSRV(records []*net.SRV) []*net.SRV {
	out := records[:0:0]
	for _, rec := range records {
		if rec != nil && rec.Target != "." && rec.Target != "" {
			out = append(out, rec)
		}
	}
	return out
}

// orderSRV returns records in the order RFC 2782 says to try them: by
// ascending priority and, within a priority, by repeated weighted random
// choice. randIntN(n) must return a number in [0, n). net.Resolver already
// orders its answers this way; other DNS implementations may not, so the
// order is always computed here.
func orderSRV(records []*net.SRV, randIntN func(n int) int) []*net.SRV {
	recs := slices.Clone(records)
	// A stable sort keeps equal-priority records in the order received,
	// which keeps the result reproducible for a given random source.
	slices.SortStableFunc(recs, func(a, b *net.SRV) int { return cmp.Compare(a.Priority, b.Priority) })
	out := make([]*net.SRV, 0, len(recs))
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].Priority == recs[i].Priority {
			j++
		}
		out = appendWeighted(out, recs[i:j], randIntN)
		i = j
	}
	return out
}

// appendWeighted implements the selection of RFC 2782 for one priority:
// put zero-weight records first, draw a number in [0, sum of weights] and
// take the first record whose running sum reaches it; repeat with the rest.
func appendWeighted(out, group []*net.SRV, randIntN func(n int) int) []*net.SRV {
	group = slices.Clone(group)
	slices.SortStableFunc(group, func(a, b *net.SRV) int {
		return cmp.Compare(min(a.Weight, 1), min(b.Weight, 1))
	})
	for len(group) > 0 {
		sum := 0
		for _, rec := range group {
			sum += int(rec.Weight)
		}
		pick := randIntN(sum + 1)
		k, running := len(group)-1, 0
		for idx, rec := range group {
			running += int(rec.Weight)
			if running >= pick {
				k = idx
				break
			}
		}
		out = append(out, group[k])
		group = slices.Delete(group, k, k+1)
	}
	return out
}
