package httputil

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewRateLimiter(2, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: %v %v, want refused for 500ms", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client was limited")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refilled token refused")
	}
}

func TestRateLimitMiddleware(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/x", func(w http.ResponseWriter, r *http.Request) {})
	h := Wrap(mux, ServerOptions{Limiter: NewRateLimiter(0.001, 2)})
	codes := []int{}
	for range 3 {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/x", nil)
		r.Header.Set("Authorization", "Bearer tok")
		h.ServeHTTP(rec, r)
		codes = append(codes, rec.Code)
		if rec.Code == 429 {
			var body struct {
				Errcode string `json:"errcode"`
				Retry   int64  `json:"retry_after_ms"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Errcode != "M_LIMIT_EXCEEDED" || body.Retry <= 0 || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("429 body = %s", rec.Body)
			}
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes = %v, want 200 200 429", codes)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 200 {
		t.Fatalf("GET was limited: %d", rec.Code)
	}
}
