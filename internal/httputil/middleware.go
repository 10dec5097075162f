package httputil

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/apierr"
)

// Metrics are the HTTP request metrics of a listener.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "axon_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "axon_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 11),
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// ServerOptions configure Wrap.
type ServerOptions struct {
	Log     *slog.Logger
	Metrics *Metrics // optional
	// MaxBody limits request bodies (bytes); 0 means 1 MiB.
	MaxBody int64
	// CORS adds the spec's CORS headers and answers OPTIONS (client-facing listeners).
	CORS bool
	// Limiter, if set, rate-limits clients.
	Limiter *RateLimiter
}

// Wrap is the outermost handler of a listener: it recovers panics (logged,
// answered 500 M_UNKNOWN), limits bodies, answers CORS, turns the mux's own
// 404 and 405 answers into Matrix errors, and records metrics by route.
func Wrap(mux *http.ServeMux, o ServerOptions) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	a := Adapter{Log: o.Log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		route := "unmatched"
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				o.Log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				if !sw.wrote {
					WriteJSON(sw, http.StatusInternalServerError, apierr.WithStatus(http.StatusInternalServerError, apierr.CodeUnknown, "internal server error"))
				}
			}
			if o.Metrics != nil {
				o.Metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.code())).Inc()
				o.Metrics.latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
			}
		}()
		if o.CORS {
			h := sw.Header()
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
			if r.Method == http.MethodOptions {
				route = "OPTIONS"
				sw.WriteHeader(http.StatusOK)
				return
			}
		}
		r.Body = http.MaxBytesReader(sw, r.Body, o.MaxBody)
		if o.Limiter != nil && o.Limiter.limited(sw, r) {
			route = "rate limited"
			return
		}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// The mux would answer 404, 405 or a redirect in plain text: find out which, answer in Matrix.
			probe := &probeWriter{header: http.Header{}}
			h.ServeHTTP(probe, r)
			switch probe.status {
			case http.StatusMethodNotAllowed:
				if allow := probe.header.Get("Allow"); allow != "" {
					sw.Header().Set("Allow", allow)
				}
				WriteJSON(sw, http.StatusMethodNotAllowed, apierr.New(apierr.CodeUnrecognized, "method %s is not allowed here", r.Method))
			case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
				// Path cleaning redirects (e.g. "//") would bounce clients; Matrix has no such paths.
				a.WriteError(sw, r, apierr.WithStatus(http.StatusNotFound, apierr.CodeUnrecognized, "unrecognized request"))
			default:
				a.WriteError(sw, r, apierr.WithStatus(http.StatusNotFound, apierr.CodeUnrecognized, "unrecognized request"))
			}
			return
		}
		route = pattern
		// The mux, not the handler it found, sets the request's path values.
		mux.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets long responses stream through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if !s.wrote {
		return http.StatusOK
	}
	return s.status
}

// probeWriter records what the mux's fallback handler would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
