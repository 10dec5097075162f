package httputil

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
)

// RateLimiter is a token bucket per client. Only requests that change
// something (not GET, HEAD or OPTIONS) spend tokens: reads such as /sync
// long-polls are how clients wait, and limiting them only adds latency.
type RateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[[32]byte]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter allows each client perSecond requests on average and burst
// at once.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	return &RateLimiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: map[[32]byte]*bucket{}}
}

// Allow spends a token of key's bucket, or says how long until one is there.
func (l *RateLimiter) Allow(key string) (bool, time.Duration) {
	k := sha256.Sum256([]byte(key)) // keys are access tokens: keep only their hash in memory
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets buckets that have refilled, so idle clients cost nothing.
func (l *RateLimiter) sweep(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	if now.Sub(l.swept) < full || len(l.buckets) < 1024 {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}

// limited answers 429 M_LIMIT_EXCEEDED when r's client is over its rate.
func (l *RateLimiter) limited(w http.ResponseWriter, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	key, err := AccessToken(r)
	if err != nil {
		key = "ip:" + remoteHost(r)
	}
	ok, wait := l.Allow(key)
	if ok {
		return false
	}
	ms := max(wait.Milliseconds(), 1)
	w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	WriteJSON(w, http.StatusTooManyRequests, map[string]any{
		"errcode": apierr.CodeLimitExceeded, "error": "too many requests", "retry_after_ms": ms})
	return true
}

func remoteHost(r *http.Request) string {
	h := r.RemoteAddr
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
	}
	return h
}
