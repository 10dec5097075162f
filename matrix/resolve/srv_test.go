package resolve

import (
	"math/rand/v2"
	"net"
	"reflect"
	"testing"
)

func targets(recs []*net.SRV) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Target
	}
	return out
}

// scripted returns the given numbers in turn and records the n it was asked
// for, so a test can check both the draw range and the outcome.
type scripted struct {
	picks []int
	asked []int
}

func (s *scripted) IntN(n int) int {
	s.asked = append(s.asked, n)
	p := s.picks[0]
	s.picks = s.picks[1:]
	return p
}

func TestOrderSRV(t *testing.T) {
	tests := []struct {
		name      string
		in        []*net.SRV
		picks     []int
		want      []string
		wantAsked []int
	}{
		{
			name:      "priority first, lowest wins",
			in:        []*net.SRV{srv("c", 1, 30, 0), srv("a", 1, 10, 0), srv("b", 1, 20, 0)},
			picks:     []int{0, 0, 0},
			want:      []string{"a", "b", "c"},
			wantAsked: []int{1, 1, 1},
		},
		{
			// Weights 0, 10, 30, sum 40: the draw is in [0, 40]. Zero-weight
			// records go first, so a draw of 0 picks it.
			name:      "draw 0 picks the zero-weight record",
			in:        []*net.SRV{srv("w30", 1, 5, 30), srv("w0", 1, 5, 0), srv("w10", 1, 5, 10)},
			picks:     []int{0, 40, 0},
			want:      []string{"w0", "w10", "w30"},
			wantAsked: []int{41, 41, 31},
		},
		{
			// Order after moving zero weights first: w0, w30, w10. Running
			// sums 0, 30, 40: a draw of 30 is the first to reach w30, 31 is
			// past it.
			name:      "running sum boundaries",
			in:        []*net.SRV{srv("w30", 1, 5, 30), srv("w0", 1, 5, 0), srv("w10", 1, 5, 10)},
			picks:     []int{31, 30, 0},
			want:      []string{"w10", "w30", "w0"},
			wantAsked: []int{41, 31, 1},
		},
		{
			name:      "priorities are drawn separately",
			in:        []*net.SRV{srv("p2a", 1, 2, 1), srv("p1a", 1, 1, 1), srv("p2b", 1, 2, 1), srv("p1b", 1, 1, 1)},
			picks:     []int{2, 0, 0, 0},
			want:      []string{"p1b", "p1a", "p2a", "p2b"},
			wantAsked: []int{3, 2, 3, 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{picks: tc.picks}
			got := targets(orderSRV(tc.in, s.IntN))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("orderSRV = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(s.asked, tc.wantAsked) {
				t.Errorf("draws asked for %v, want %v", s.asked, tc.wantAsked)
			}
		})
	}
}

// TestOrderSRVDistribution checks the weighted choice over many draws from a
// seeded generator (deterministic, so it cannot flake). With weights 1 and 3
// the draw is uniform over [0, 4]: the heavier record comes first for draws
// 2, 3 and 4, that is 3 times in 5.
func TestOrderSRVDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := []*net.SRV{srv("light", 1, 0, 1), srv("heavy", 1, 0, 3)}
	const n = 20000
	heavy := 0
	for range n {
		if orderSRV(recs, rng.IntN)[0].Target == "heavy" {
			heavy++
		}
	}
	if frac := float64(heavy) / n; frac < 0.58 || frac > 0.62 {
		t.Fatalf("heavy record first in %.3f of draws, want about 0.6", frac)
	}
}

func TestUsableSRV(t *testing.T) {
	in := []*net.SRV{srv(".", 0, 0, 0), nil, srv("a.example.", 1, 0, 0), srv("", 1, 0, 0)}
	if got := targets(usableSRV(in)); !reflect.DeepEqual(got, []string{"a.example."}) {
		t.Fatalf("usableSRV = %v", got)
	}
	if in[0].Target != "." {
		t.Fatal("usableSRV modified its input")
	}
}
