package eventlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// openHooks, for tests, holds a func per subscription that open runs just
// before the new iterator replaces the old one.
var openHooks sync.Map

// pullExpiry is how long a pull request waits on the server.
const pullExpiry = 5 * time.Second

// subscription is one group consuming one topic from JetStream.
type subscription struct {
	log          *jsLog
	stream       string // stream name
	topic        string
	group        string
	consumerName string
	partition    string // lag label: "" or "i/n"
	opts         ConsumeOptions
	// handler gets up to opts.HandlerBatch messages (1 for a per-message
	// handler, which Subscribe wraps).
	handler func(ctx context.Context, msgs []RawMsg) error
	logger  *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond // workers: s.ready, s.paused or s.stopping changed
	idle     *sync.Cond // pauseAndDrop: s.running reached 0, or s.stopping
	held     map[uint64]*held
	lanes    map[string]*lane // ordered mode: key → lane
	ready    []*lane          // FIFO of lanes to run
	stopping bool
	paused   bool      // a resync is waiting for running handlers
	running  int       // handlers in progress
	lastCall time.Time // when the last handler call ended (Linger)
	// lingering counts the workers waiting out a Linger; lingerWake ends
	// a wait early once a whole batch is ready.
	lingering  int
	lingerWake chan struct{}
	cons       jetstream.Consumer
	iter       jetstream.MessagesContext
	// lastDelivery is the consumer sequence of the last delivery seen
	// (ordered mode): deliveries are numbered 1, 2, 3... by the server, so
	// a jump means some were lost on the way and will come back late.
	lastDelivery uint64
	// redeliveredUpTo: messages up to this stream sequence may have been
	// handed out before the last reset (which forgets delivery counts).
	redeliveredUpTo uint64
	lastReset       time.Time
	// awaiting holds the messages whose handler succeeded, in s.held until
	// a call of opts.AckAfter lets them be acked; ackWake tells the
	// goroutine making those calls that it grew.
	awaiting []*held
	ackWake  chan struct{}
	// rewindWanted: AckAfter failed and the fetch loop is to rewind the
	// group once the iterator it drained ends. The next pauseAndDrop
	// clears it.
	rewindWanted bool

	stopOnce   sync.Once
	stopCtx    func() bool   // releases the context.AfterFunc
	stopFetch  chan struct{} // closed when stopping: no new iterators
	fetchDone  chan struct{} // closed when the fetch goroutine returned
	workers    sync.WaitGroup
	background sync.WaitGroup // heartbeat, lag and AckAfter
	stopBg     chan struct{}  // closed after the workers finished
	stopped    chan struct{}  // closed when Stop completed
}

func newSubscription(l *jsLog, stream, topic, group string, opts ConsumeOptions, handler func(context.Context, []RawMsg) error) *subscription {
	logger := opts.Logger
	if logger == nil {
		logger = l.logger
	}
	s := &subscription{
		log:          l,
		stream:       stream,
		topic:        topic,
		group:        group,
		consumerName: consumerName(group, opts.Partitions, opts.Partition),
		opts:         opts,
		handler:      handler,
		logger:       logger.With("topic", topic, "group", group),
		held:         map[uint64]*held{},
		lanes:        map[string]*lane{},
		stopFetch:    make(chan struct{}),
		fetchDone:    make(chan struct{}),
		stopBg:       make(chan struct{}),
		stopped:      make(chan struct{}),
		lingerWake:   make(chan struct{}, 1),
		ackWake:      make(chan struct{}, 1),
	}
	if opts.Partitions > 1 {
		s.partition = strconv.Itoa(opts.Partition) + "/" + strconv.Itoa(opts.Partitions)
		s.logger = s.logger.With("partition", s.partition)
	}
	s.cond = sync.NewCond(&s.mu)
	s.idle = sync.NewCond(&s.mu)
	return s
}

// start creates the consumer and the iterator, so that configuration errors
// surface from Subscribe, then starts the goroutines.
func (s *subscription) start(ctx context.Context) error {
	iter, err := s.open(ctx)
	if err != nil {
		return err
	}
	// Handlers and background work outlive a cancelled ctx long enough to
	// finish cleanly; see the package doc.
	bg := context.WithoutCancel(ctx)
	go s.fetch(bg, iter)
	for range s.opts.Parallelism {
		s.workers.Go(func() { s.work(bg) })
	}
	s.background.Go(s.heartbeat)
	if s.opts.Metrics != nil {
		s.background.Go(func() { s.pollLag(bg) })
	}
	if s.opts.AckAfter != nil {
		s.background.Go(func() { s.ackAfterLoop(bg) })
	}
	s.stopCtx = context.AfterFunc(ctx, s.Stop)
	return nil
}

// open creates or updates the durable consumer, resets an ordered one when
// messages from an earlier run are still pending, and starts pulling. No
// message may be held when it is called.
func (s *subscription) open(ctx context.Context) (jetstream.MessagesContext, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       s.consumerName,
		Description:   "axon group " + s.group + " on " + s.topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.opts.MaxPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if s.opts.StartAtNew {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if fs := s.log.names.filters(s.topic, s.opts.Partitions, s.opts.Partition); len(fs) == 1 {
		cfg.FilterSubject = fs[0]
	} else {
		cfg.FilterSubjects = fs
	}
	cons, err := s.upsertConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	info := cons.CachedInfo()
	lastDelivery := info.Delivered.Consumer
	if s.opts.Ordered && info.NumAckPending > 0 {
		if err := s.reset(ctx, info); err == nil {
			lastDelivery = 0
		} else if s.opts.AckAfter != nil {
			// Messages handled but not acked may rest on lost writes:
			// handling later ones of their keys first would build on the
			// loss. Refused rather than carried on.
			return nil, fmt.Errorf("AckAfter needs the group rewound: %w", err)
		} else {
			// Carry on: the pending messages come back after AckWait, late
			// for their keys' order but not lost.
			s.logger.Error("rewinding the group failed; order per key may break for the messages pending", "err", err)
		}
	}
	iter, err := cons.Messages(
		jetstream.PullMaxMessages(s.opts.MaxBatch),
		// A pull request lost around a reconnect is noticed by its missing
		// heartbeats (every Expiry/2); the default 30s expiry would stall
		// the group for up to a minute.
		jetstream.PullExpiry(pullExpiry),
		// A missed heartbeat makes the iterator re-pull by itself; we do not
		// need to hear about it.
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", s.consumerName, err)
	}
	if h, ok := openHooks.Load(s); ok {
		h.(func())()
	}
	s.mu.Lock()
	s.cons, s.iter, s.lastDelivery = cons, iter, lastDelivery
	// A rewind asked for while this iterator was being opened drained the
	// one before it, which ended already: this one must end as well, or
	// the request would hold the group for ever.
	again := s.rewindWanted
	s.mu.Unlock()
	if again {
		iter.Drain()
	}
	return iter, nil
}

// reset rewinds an ordered consumer to its ack floor. The server numbers
// deliveries from 1 again afterwards.
//
// Messages still pending on the consumer (held by a run that crashed, sent
// to a pull request nobody reads any more, released by a nak) are
// redelivered only when their ack deadline passes, while later messages of
// the same keys would be delivered at once: that would break the order per
// key. Rewinding makes the server deliver again everything after the ack
// floor, in stream order. The price is that messages acked above the floor
// come again too; handlers are idempotent.
func (s *subscription) reset(ctx context.Context, info *jetstream.ConsumerInfo) error {
	s.logger.Info("rewinding the group to its ack floor",
		"ack_floor", info.AckFloor.Stream, "delivered", info.Delivered.Stream, "pending", info.NumAckPending)
	// The response's consumer info is not used: now and then (nats-server
	// 2.15.2) it still shows the delivery sequence from before the reset.
	if _, err := s.log.js.ResetConsumer(ctx, s.stream, s.consumerName); err != nil {
		// NATS before 2.14 has no reset: pending messages come back after
		// AckWait and may overtake later ones of their key.
		return fmt.Errorf("reset consumer %s (needs nats-server 2.14+): %w", s.consumerName, err)
	}
	s.mu.Lock()
	s.redeliveredUpTo = max(s.redeliveredUpTo, info.Delivered.Stream)
	s.lastReset = time.Now()
	s.mu.Unlock()
	return nil
}

// upsertConsumer creates the durable consumer, or updates the settings that
// may change on an existing one. The start position of an existing group is
// kept: the server refuses to change it, and the group's position is the
// point of being durable.
func (s *subscription) upsertConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for range 3 {
		existing, err := s.log.js.Consumer(ctx, s.stream, cfg.Durable)
		switch {
		case err == nil:
			cur := existing.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = cur.DeliverPolicy, cur.OptStartSeq, cur.OptStartTime
			cons, err := s.log.js.UpdateConsumer(ctx, s.stream, cfg)
			if err != nil {
				return nil, fmt.Errorf("update consumer %s: %w", cfg.Durable, err)
			}
			return cons, nil
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			cons, err := s.log.js.CreateConsumer(ctx, s.stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // another process created it meanwhile: update it
			}
			if err != nil {
				return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
			}
			return cons, nil
		default:
			return nil, fmt.Errorf("look up consumer %s: %w", cfg.Durable, err)
		}
	}
	return nil, fmt.Errorf("create consumer %s: raced with its creation three times", cfg.Durable)
}

// fetch pulls messages and dispatches them until Stop. When the iterator
// breaks (consumer deleted, connection closed) or deliveries went missing, it
// opens a new one; in ordered mode it resyncs first.
func (s *subscription) fetch(ctx context.Context, iter jetstream.MessagesContext) {
	defer close(s.fetchDone)
	failures := 0 // consecutive failed pulls and reopens
	rewinds := 0  // consecutive rewinds soon after the previous one
	for {
		m, err := iter.Next()
		if err == nil {
			failures = 0
			if s.dispatch(m) {
				continue
			}
			// A gap: the message stays un-acked and comes back after the
			// rewind, in order. A gap right after a rewind is normal once
			// (the old pull subscription may still have been registered
			// when the server started over); more mean that another
			// process pulls from this group, and rewinding at full speed
			// would only make both thrash.
			if rewinds = s.countRewind(rewinds); rewinds >= 3 {
				s.logger.Warn("rewinding again and again: is this ordered group shared by several processes? Use Partitions", "rewinds", rewinds)
			}
			closeIterator(iter)
		} else if s.isStopping() {
			iter.Stop()
			return
		} else if s.rewindRequested() {
			// AckAfter failed, or a handler asked, and drained the
			// iterator: not a pull failure.
			rewinds = s.countRewind(rewinds)
			iter.Stop()
		} else {
			failures++
			s.logger.Warn("pulling messages failed; reopening the consumer", "err", err)
			iter.Stop()
		}
		for {
			if n := failures + max(rewinds-1, 0); n > 0 {
				select {
				case <-s.stopFetch:
					return
				case <-time.After(backoff(n)):
				}
			}
			next, err := s.reopen(ctx)
			if err == nil {
				iter = next
				break
			}
			if errors.Is(err, errStopping) {
				return
			}
			failures++
			s.logger.Warn("reopening the consumer failed", "err", err)
		}
	}
}

// countRewind returns the count of rewinds in quick succession after one
// more: rewinds back off (the fetch loop's backoff) only when they follow
// each other within AckWait.
func (s *subscription) countRewind(rewinds int) int {
	s.mu.Lock()
	recent := time.Since(s.lastReset) < s.opts.AckWait
	s.mu.Unlock()
	if !recent {
		return 0
	}
	return rewinds + 1
}

var errStopping = errors.New("subscription stopping")

// closeIterator closes iter and waits until the server has forgotten its
// subscription. Stop alone unsubscribes in the background: a rewind could
// then hand the redelivered messages to the old pull request, whose replies
// nobody reads any more, and they would sit out AckWait. Draining
// unsubscribes and waits for a round trip to the server. Whatever still
// arrives is dropped: the rewind delivers it again.
func closeIterator(iter jetstream.MessagesContext) {
	iter.Drain()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, err := iter.Next(jetstream.NextMaxWait(time.Second))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			return
		}
	}
}

// reopen replaces the iterator. In ordered mode it first waits for the
// running handlers and forgets every held message, so that open can rewind
// the consumer and the server delivers them again in order.
func (s *subscription) reopen(ctx context.Context) (jetstream.MessagesContext, error) {
	if s.opts.Ordered {
		if !s.pauseAndDrop() {
			return nil, errStopping
		}
		defer s.resume()
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	next, err := s.open(octx)
	if err != nil {
		return nil, err
	}
	if s.isStopping() {
		// Stop may have missed this iterator.
		next.Stop()
		return nil, errStopping
	}
	return next, nil
}

// pauseAndDrop stops workers from starting handlers, waits for the running
// ones, and forgets all held messages (without acking or releasing them).
// It returns false if the subscription is stopping.
func (s *subscription) pauseAndDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	for s.running > 0 && !s.stopping {
		s.idle.Wait()
	}
	if s.stopping {
		return false
	}
	for _, ln := range s.lanes {
		ln.dead = true
		if ln.timer != nil {
			ln.timer.Stop()
		}
	}
	s.lanes = map[string]*lane{}
	s.ready = nil
	s.held = map[uint64]*held{}
	// The rewind that follows delivers the messages awaiting AckAfter again,
	// and serves any rewind a failed AckAfter call asked for.
	s.awaiting = nil
	s.rewindWanted = false
	return true
}

func (s *subscription) resume() {
	s.mu.Lock()
	s.paused = s.rewindWanted // a rewind asked for meanwhile holds on
	s.cond.Broadcast()
	s.mu.Unlock()
}

// rewindRequested reports whether a failed AckAfter call asked for a rewind
// that has not happened yet.
func (s *subscription) rewindRequested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rewindWanted
}

func (s *subscription) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// pollLag refreshes the lag gauge.
func (s *subscription) pollLag(ctx context.Context) {
	t := time.NewTicker(s.opts.LagInterval)
	defer t.Stop()
	gauge := s.opts.Metrics.lag.WithLabelValues(s.topic, s.group, s.partition)
	for {
		s.mu.Lock()
		cons := s.cons
		s.mu.Unlock()
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			gauge.Set(float64(info.NumPending) + float64(info.NumAckPending))
		} else {
			s.logger.Debug("consumer info failed", "err", err)
		}
		select {
		case <-s.stopBg:
			return
		case <-t.C:
		}
	}
}

// Stop implements Subscription.
func (s *subscription) Stop() {
	s.stopOnce.Do(s.shutdown)
	<-s.stopped
}

func (s *subscription) shutdown() {
	defer close(s.stopped)
	if s.stopCtx != nil {
		s.stopCtx()
	}
	s.mu.Lock()
	s.stopping = true
	iter := s.iter
	for _, ln := range s.lanes {
		if ln.timer != nil {
			ln.timer.Stop()
		}
	}
	s.cond.Broadcast()
	s.idle.Broadcast()
	s.mu.Unlock()
	close(s.stopFetch)

	// Drain hands over what is buffered (dispatch holds it for the nak
	// below) and ends the fetch loop.
	iter.Drain()
	<-s.fetchDone
	s.workers.Wait()
	close(s.stopBg)
	s.background.Wait()
	s.ackAfterOnStop()

	s.mu.Lock()
	rest := make([]*held, 0, len(s.held))
	for _, h := range s.held {
		rest = append(rest, h)
	}
	s.held = map[uint64]*held{}
	s.mu.Unlock()
	// A nak with a delay, unlike a plain one, is written to the consumer's
	// stored state (as an expired ack deadline), so the messages come back
	// at once even when the server restarts too; the server redelivers
	// expired messages in stream order.
	slices.SortFunc(rest, func(a, b *held) int { return cmp.Compare(a.raw.Seq, b.raw.Seq) })
	for _, h := range rest {
		if err := h.msg.NakWithDelay(time.Millisecond); err != nil {
			s.logger.Debug("nak on stop failed; redelivered after the ack wait", "seq", h.raw.Seq, "err", err)
			break
		}
	}
	if err := s.log.nc.FlushTimeout(5 * time.Second); err != nil {
		s.logger.Debug("flush on stop failed", "err", err)
	}
	s.log.forget(s)
}
