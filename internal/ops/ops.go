// Package ops is the operations side of every Axon process: the Prometheus
// registry, the ops listener serving /metrics and /debug/pprof/, and HTTP
// servers that shut down gracefully with their process.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Mux returns the ops handler: /metrics from reg and /debug/pprof/.
func Mux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Server is a listening HTTP server.
type Server struct {
	Addr string // the bound address (useful when asked for port 0)
	srv  *http.Server
	done chan error
}

// Listen binds addr and serves h until Shutdown. TLS is used when tlsCfg is
// not nil.
func Listen(addr string, h http.Handler, log *slog.Logger, name string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	return serve(ln, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}, log, name, false), nil
}

// ListenTLS is Listen over TLS with srv's TLSConfig.
func ListenTLS(addr string, h http.Handler, log *slog.Logger, name string, configure func(*http.Server)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	configure(srv)
	return serve(ln, srv, log, name, true), nil
}

func serve(ln net.Listener, srv *http.Server, log *slog.Logger, name string, tls bool) *Server {
	s := &Server{Addr: ln.Addr().String(), srv: srv, done: make(chan error, 1)}
	log.Info("listening", "listener", name, "addr", s.Addr, "tls", tls)
	go func() {
		var err error
		if tls {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s
}

// Shutdown stops accepting, waits for requests in flight up to the context's
// deadline, then closes what remains (long-polls included).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}
