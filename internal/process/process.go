// Package process starts and stops an Axon process: the context cancelled by
// SIGINT/SIGTERM, the slog logger, and ordered shutdown of what was started.
package process

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Logger returns a structured logger at level ("debug", "info", "warn",
// "error"), JSON when format is "json", text otherwise.
func Logger(level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Stopper runs shutdown steps in the reverse order of registration, so what
// was started last (listeners) stops first and what everything uses
// (databases, the log) stops last.
type Stopper struct {
	mu    sync.Mutex
	steps []step
}

type step struct {
	name string
	f    func(ctx context.Context) error
}

// Add registers a shutdown step.
func (s *Stopper) Add(name string, f func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, step{name, f})
}

// Stop runs the steps within timeout, logging failures.
func (s *Stopper) Stop(log *slog.Logger, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.mu.Lock()
	steps := s.steps
	s.steps = nil
	s.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].f(ctx); err != nil {
			log.Warn("shutdown step failed", "step", steps[i].name, "err", err)
		}
	}
}
