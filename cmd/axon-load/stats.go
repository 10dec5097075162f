package main

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Summary describes a set of durations.
type Summary struct {
	N                       int
	Min, P50, P95, P99, Max time.Duration
	Mean                    time.Duration
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted:
// the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// summarize sorts ds in place and describes it.
func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Summary{N: len(ds), Min: ds[0], P50: percentile(ds, 50), P95: percentile(ds, 95),
		P99: percentile(ds, 99), Max: ds[len(ds)-1], Mean: sum / time.Duration(len(ds))}
}

// recorder collects durations from concurrent goroutines.
type recorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *recorder) summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarize(slices.Clone(r.ds))
}
