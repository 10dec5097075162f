package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamConfig configures [OpenJetStream].
type JetStreamConfig struct {
	// URL of an external server or cluster ("nats://127.0.0.1:4222,nats://...");
	// empty runs an embedded server.
	URL string
	// DataDir is the embedded server's JetStream store directory.
	DataDir string
	// Replicas is the stream replica count on a cluster (default 1).
	Replicas int
	// Prefix is an optional subject prefix (dotted name) so that several
	// Axon servers or tests can share one NATS; stream names get it too.
	Prefix string
	// MaxAge is how long messages are retained (default 7 days).
	MaxAge time.Duration
}

// DefaultMaxAge is the retention of a topic when JetStreamConfig.MaxAge is 0.
const DefaultMaxAge = 7 * 24 * time.Hour

// embeddedMaxPayload lifts the embedded server's message size limit from
// NATS' 1MB default: a roomserver output event carries state deltas that can
// be large. An external server's limit is its operator's choice.
const embeddedMaxPayload = 8 << 20

// maxMsgsPerSubject is the per-subject limit of a stream: high enough never
// to drop a message, set only for the block size it brings (ensureStream).
const maxMsgsPerSubject = 1 << 62

// jsLog is the JetStream implementation of Log.
type jsLog struct {
	nc       *nats.Conn
	ncClosed chan struct{} // closed when nc is
	js       jetstream.JetStream
	srv      *server.Server // nil when external
	names    names
	cfg      JetStreamConfig
	logger   *slog.Logger

	mu      sync.Mutex
	streams map[string]bool // topic → stream known to exist
	subs    map[*subscription]bool
	closed  bool
}

// OpenJetStream connects to JetStream: to cfg.URL, or to a server it embeds
// in the process (no TCP listener: the connection is in-process) storing
// under cfg.DataDir. Close shuts the embedded server down cleanly.
func OpenJetStream(ctx context.Context, cfg JetStreamConfig, log *slog.Logger) (Log, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "eventlog")
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Prefix != "" {
		if err := checkName("prefix", cfg.Prefix); err != nil {
			return nil, fmt.Errorf("open jetstream: %w", err)
		}
	}
	l := &jsLog{
		names:    names{prefix: cfg.Prefix},
		cfg:      cfg,
		logger:   log,
		streams:  map[string]bool{},
		subs:     map[*subscription]bool{},
		ncClosed: make(chan struct{}),
	}
	opts := []nats.Option{
		nats.Name("axon"),
		nats.MaxReconnects(-1),
		// The default 2s is short for a busy host or a cluster far away.
		nats.Timeout(10 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(l.ncClosed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error", "err", err)
		}),
	}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg.DataDir, log)
		if err != nil {
			return nil, err
		}
		l.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		l.shutdownServer()
		// Not the URL: it may carry credentials.
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	l.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAllTimeout))
	if err != nil {
		nc.Close()
		l.shutdownServer()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	l.js = js
	// Fail now, not at the first publish, when JetStream is off on the server.
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		l.shutdownServer()
		return nil, fmt.Errorf("jetstream account info: %w", err)
	}
	return l, nil
}

// startEmbedded starts a JetStream server without a listener.
func startEmbedded(dataDir string, log *slog.Logger) (*server.Server, error) {
	if dataDir == "" {
		return nil, errors.New("embedded nats: DataDir is required")
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "axon-embedded",
		DontListen: true,
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true,
		MaxPayload: embeddedMaxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats in %s: %w", dataDir, err)
	}
	srv.SetLoggerV2(natsLogger{log.With("nats", "embedded")}, false, false, false)
	srv.Start()
	// Recovering a large store can take a while; JetStream must be up before
	// the first request.
	if !srv.ReadyForConnections(time.Minute) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats in %s: not ready after a minute", dataDir)
	}
	return srv, nil
}

func (l *jsLog) shutdownServer() {
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// Publish implements Log.
func (l *jsLog) Publish(ctx context.Context, topic, key string, data []byte) (uint64, error) {
	stream, err := l.ensureStream(ctx, topic)
	if err != nil {
		return 0, err
	}
	ack, err := l.js.Publish(ctx, l.names.subject(topic, key), data, jetstream.WithExpectStream(stream))
	if err != nil {
		return 0, fmt.Errorf("publish to %s key %q: %w", topic, key, err)
	}
	return ack.Sequence, nil
}

// publishAllTimeout bounds PublishAll's wait for each ack (jetstream's
// default for a synchronous publish): one lost with a connection fails
// then instead of being awaited for ever.
const publishAllTimeout = 5 * time.Second

// PublishAll implements AllPublisher: the messages go out one after the
// other on the connection (so the server appends them in that order) and
// their acks are awaited together.
func (l *jsLog) PublishAll(ctx context.Context, topic string, keys []string, data [][]byte) error {
	stream, err := l.ensureStream(ctx, topic)
	if err != nil {
		return err
	}
	acks := make([]jetstream.PubAckFuture, len(data))
	for i := range data {
		if acks[i], err = l.js.PublishAsync(l.names.subject(topic, keys[i]), data[i], jetstream.WithExpectStream(stream)); err != nil {
			return fmt.Errorf("publish to %s key %q: %w", topic, keys[i], err)
		}
	}
	for i, a := range acks {
		select {
		case <-a.Ok():
		case err := <-a.Err():
			return fmt.Errorf("publish to %s key %q: %w", topic, keys[i], err)
		case <-ctx.Done():
			return fmt.Errorf("publish to %s: %w", topic, ctx.Err())
		}
	}
	return nil
}

// ensureStream creates the stream of topic unless this Log saw it already,
// and returns its name.
func (l *jsLog) ensureStream(ctx context.Context, topic string) (string, error) {
	name := l.names.stream(topic)
	l.mu.Lock()
	closed, known := l.closed, l.streams[topic]
	l.mu.Unlock()
	if closed {
		return "", fmt.Errorf("topic %s: eventlog closed", topic)
	}
	if known {
		return name, nil
	}
	if err := checkName("topic", topic); err != nil {
		return "", err
	}
	subjects := []string{l.names.subjectBase(topic) + ".>"}
	_, err := l.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "axon topic " + topic,
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
		MaxAge:      l.cfg.MaxAge,
		Discard:     jetstream.DiscardOld,
		// Never reached (so retention is still by age alone): setting it
		// makes the server pick 4 MB file blocks instead of the 8 MB it
		// gives a limits stream with no limit set. Each stream holds its
		// last block in memory while writing it, growing a buffer to the
		// block size, so the monolith carried 8 MB per busy topic plus the
		// blocks consumers were still reading; StreamConfig has no block
		// size of its own (nats-server 2.15 sizes blocks from the limits).
		MaxMsgsPerSubject: maxMsgsPerSubject,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created before (by us or another process): keep its settings, but
		// make sure it is this topic's stream and not a name collision.
		var s jetstream.Stream
		s, err = l.js.Stream(ctx, name)
		if err == nil && !slices.Equal(s.CachedInfo().Config.Subjects, subjects) {
			err = fmt.Errorf("stream %s has subjects %v, want %v (topic name collision?)", name, s.CachedInfo().Config.Subjects, subjects)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create stream for topic %s: %w", topic, err)
	}
	l.mu.Lock()
	l.streams[topic] = true
	l.mu.Unlock()
	return name, nil
}

// Subscribe implements Log.
func (l *jsLog) Subscribe(ctx context.Context, topic, group string, opts ConsumeOptions, handler func(ctx context.Context, m RawMsg) error) (Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("subscribe %s to %s: nil handler", group, topic)
	}
	opts.HandlerBatch = 1
	return l.subscribe(ctx, topic, group, opts, func(ctx context.Context, msgs []RawMsg) error {
		return handler(ctx, msgs[0])
	})
}

// SubscribeBatch implements BatchLog.
func (l *jsLog) SubscribeBatch(ctx context.Context, topic, group string, opts ConsumeOptions, handler func(ctx context.Context, msgs []RawMsg) error) (Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("subscribe %s to %s: nil handler", group, topic)
	}
	return l.subscribe(ctx, topic, group, opts, handler)
}

func (l *jsLog) subscribe(ctx context.Context, topic, group string, opts ConsumeOptions, handler func(ctx context.Context, msgs []RawMsg) error) (Subscription, error) {
	if group == "" {
		return nil, fmt.Errorf("subscribe to %s: empty group", topic)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("subscribe %s to %s: %w", group, topic, err)
	}
	stream, err := l.ensureStream(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", group, err)
	}
	s := newSubscription(l, stream, topic, group, opts, handler)
	if err := s.start(ctx); err != nil {
		return nil, fmt.Errorf("subscribe %s to %s: %w", group, topic, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		s.Stop()
		return nil, fmt.Errorf("subscribe %s to %s: eventlog closed", group, topic)
	}
	l.subs[s] = true
	l.mu.Unlock()
	return s, nil
}

// forget drops a stopped subscription.
func (l *jsLog) forget(s *subscription) {
	l.mu.Lock()
	delete(l.subs, s)
	l.mu.Unlock()
}

// Close implements Log.
func (l *jsLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	subs := make([]*subscription, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	l.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(s.Stop)
	}
	wg.Wait()
	// Stop flushed each subscription's acks; Drain also delivers anything
	// still buffered before the connection closes itself.
	var err error
	if derr := l.nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
		err = fmt.Errorf("drain nats connection: %w", derr)
	}
	select {
	case <-l.ncClosed:
	case <-time.After(10 * time.Second):
		l.nc.Close()
	}
	l.shutdownServer()
	return err
}

// natsLogger sends the embedded server's log to slog.
type natsLogger struct{ log *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) {
	n.log.Debug("nats", "text", fmt.Sprintf(format, v...))
}
func (n natsLogger) Warnf(format string, v ...any) {
	n.log.Warn("nats", "text", fmt.Sprintf(format, v...))
}
func (n natsLogger) Fatalf(format string, v ...any) {
	n.log.Error("nats", "text", fmt.Sprintf(format, v...))
}
func (n natsLogger) Errorf(format string, v ...any) {
	n.log.Error("nats", "text", fmt.Sprintf(format, v...))
}
func (n natsLogger) Debugf(format string, v ...any) {
	n.log.Debug("nats", "text", fmt.Sprintf(format, v...))
}
func (n natsLogger) Tracef(string, ...any) {}
