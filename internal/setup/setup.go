// Package setup is what every Axon binary does before and after its
// component work: load the configuration, make the logger and metrics
// registry, serve the ops listener, open databases and the log, load the
// signing key, wire internal API clients for the polylith, and shut all of
// it down in order on SIGINT/SIGTERM.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/axon-hs/axon/internal/config"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/internal/ops"
	"github.com/axon-hs/axon/internal/process"
	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix/signing"
)

// ExitConfig is the exit status for a bad configuration.
const ExitConfig = 2

// Process is one running Axon process.
type Process struct {
	Cfg         config.Config
	AppServices []config.AppService
	Log         *slog.Logger
	Registry    *prometheus.Registry
	Stopper     *process.Stopper

	dbMetrics   *sqlutil.Metrics
	httpMetrics *httputil.Metrics
	LogMetrics  *eventlog.Metrics
	Ops         *ops.Server
}

// Boot loads the configuration from args and the environment and starts
// the ops listener. A configuration error is returned as *ConfigError.
func Boot(args []string, stderr io.Writer) (*Process, error) {
	cfg, err := config.Load(args, os.Getenv, stderr)
	if err != nil {
		return nil, &ConfigError{err}
	}
	// Registration files are validated at start so a broken one stops the
	// server at once; the appservice component that uses them is still to come.
	apps, err := config.LoadAppServices(cfg.AppServices)
	if err != nil {
		return nil, &ConfigError{err}
	}
	log := process.Logger(cfg.Logging.Level, cfg.Logging.Format)
	if len(apps) > 0 {
		log.Info("application service registrations loaded", "count", len(apps))
	}
	reg := ops.NewRegistry()
	p := &Process{Cfg: cfg, AppServices: apps, Log: log, Registry: reg, Stopper: &process.Stopper{},
		dbMetrics: sqlutil.NewMetrics(reg), httpMetrics: httputil.NewMetrics(reg), LogMetrics: eventlog.NewMetrics(reg)}
	if cfg.Ops.Addr != "" {
		s, err := ops.Listen(cfg.Ops.Addr, ops.Mux(reg), log, "ops")
		if err != nil {
			return nil, err
		}
		p.Ops = s
		p.Stopper.Add("ops listener", s.Shutdown)
	}
	return p, nil
}

// ConfigError is a configuration problem (exit status 2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Exit prints err and returns the process exit status for it.
func Exit(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "axon:", err)
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ExitConfig
	}
	return 1
}

// OpenDB opens and closes-on-stop the database of component.
func (p *Process) OpenDB(ctx context.Context, component string) (*sqlutil.DB, error) {
	db, err := sqlutil.Open(ctx, p.Cfg.DatabaseFor(component), sqlutil.Options{Name: component, Metrics: p.dbMetrics})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", component, err)
	}
	p.Stopper.Add(component+" database", func(context.Context) error { return db.Close() })
	return db, nil
}

// OpenLog connects to the log: an embedded JetStream under the data
// directory, or the configured NATS server.
func (p *Process) OpenLog(ctx context.Context) (eventlog.Log, error) {
	l, err := eventlog.OpenJetStream(ctx, eventlog.JetStreamConfig{
		URL: p.Cfg.Log.NATSURL, DataDir: filepath.Join(p.Cfg.DataDir, "jetstream"),
		Replicas: p.Cfg.Log.Replicas, Prefix: p.Cfg.Log.Prefix,
	}, p.Log.With("component", "eventlog"))
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	p.Stopper.Add("event log", func(context.Context) error { return l.Close() })
	return l, nil
}

// SigningKey loads the signing key, generating it on first start.
func (p *Process) SigningKey() (signing.Key, error) {
	path := p.Cfg.SigningKeyPath()
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := signing.ParseKeyFile(data)
		if err != nil {
			return signing.Key{}, fmt.Errorf("signing key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return signing.Key{}, fmt.Errorf("read signing key: %w", err)
	}
	k, err := WriteNewKey(path)
	if err != nil {
		return signing.Key{}, err
	}
	p.Log.Info("generated signing key", "path", path, "key_id", string(k.ID))
	return k, nil
}

// WriteNewKey generates an ed25519 signing key and writes it to path
// (refusing to overwrite).
func WriteNewKey(path string) (signing.Key, error) {
	k, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		return signing.Key{}, fmt.Errorf("generate signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return signing.Key{}, fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return signing.Key{}, fmt.Errorf("write signing key: %w", err)
	}
	if _, err := f.Write(signing.MarshalKeyFile(k)); err != nil {
		f.Close()
		return signing.Key{}, fmt.Errorf("write signing key: %w", err)
	}
	return k, f.Close()
}

// Handler wraps a mux with the middleware of a listener.
func (p *Process) Handler(mux *http.ServeMux, cors bool) http.Handler {
	return httputil.Wrap(mux, httputil.ServerOptions{Log: p.Log, Metrics: p.httpMetrics, MaxBody: p.Cfg.HTTP.MaxBodyBytes, CORS: cors})
}

// ServeClient serves mux as the client-facing listener on the configured
// HTTP address, rate-limited when the configuration says so.
func (p *Process) ServeClient(mux *http.ServeMux) (*ops.Server, error) {
	o := httputil.ServerOptions{Log: p.Log, Metrics: p.httpMetrics, MaxBody: p.Cfg.HTTP.MaxBodyBytes, CORS: true}
	if rl := p.Cfg.RateLimits; rl.Enabled {
		o.Limiter = httputil.NewRateLimiter(rl.PerSecond, rl.Burst)
	}
	s, err := ops.Listen(p.Cfg.HTTP.Addr, httputil.Wrap(mux, o), p.Log, "client")
	if err != nil {
		return nil, err
	}
	p.Stopper.Add("client listener", s.Shutdown)
	return s, nil
}

// ServeInternal serves a component's internal API (polylith) on its
// configured internal address.
func (p *Process) ServeInternal(component string, register func(s *rpc.Server)) error {
	addr := p.Cfg.Internal[component]
	if addr == "" {
		return &ConfigError{fmt.Errorf("internal.%s: the internal API address of %s is not set", component, component)}
	}
	mux := http.NewServeMux()
	register(rpc.NewServer(mux, p.Log))
	s, err := ops.Listen(addr, p.Handler(mux, false), p.Log, component+" internal api")
	if err != nil {
		return err
	}
	p.Stopper.Add(component+" internal listener", s.Shutdown)
	return nil
}

// Client returns an internal API client for a remote component.
func (p *Process) Client(component string) (*rpc.Client, error) {
	addr := p.Cfg.Internal[component]
	if addr == "" {
		return nil, &ConfigError{fmt.Errorf("internal.%s: the internal API address of %s is not set", component, component)}
	}
	return rpc.NewClient("http://"+addr, nil), nil
}

// Wait blocks until ctx ends, then stops everything within the shutdown
// budget (Complement gives 10 s).
func (p *Process) Wait(ctx context.Context) {
	<-ctx.Done()
	p.Log.Info("shutting down")
	p.Stopper.Stop(p.Log, 8*time.Second)
}

// Adapter is the error adapter for routes of this process.
func (p *Process) Adapter() httputil.Adapter { return httputil.Adapter{Log: p.Log} }

// Main is the whole life of a component binary: boot from args, start the
// component, serve until SIGINT/SIGTERM, shut down; it returns the exit status.
func Main(args []string, stderr io.Writer, start func(ctx context.Context, p *Process) error) int {
	ctx, cancel := process.SignalContext()
	defer cancel()
	p, err := Boot(args, stderr)
	if err != nil {
		return Exit(err, stderr)
	}
	if err := start(ctx, p); err != nil {
		p.Stopper.Stop(p.Log, 8*time.Second)
		return Exit(err, stderr)
	}
	p.Log.Info("ready", "server_name", p.Cfg.ServerName)
	p.Wait(ctx)
	return 0
}
