package eventlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Retry backoff: retryMin doubled per failed attempt up to retryMax, ±20%.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 30 * time.Second
)

// backoff is the delay before attempt n+1 after n failures (n >= 1).
func backoff(n int) time.Duration {
	d := retryMax
	if n < 20 {
		d = min(retryMax, retryMin<<(n-1))
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// held is a message delivered to us and not yet acked or nak'ed.
type held struct {
	msg     jetstream.Msg // latest delivery: a redelivery replaces it
	raw     RawMsg
	touched time.Time // last time its ack deadline was reset
}

// lane is the FIFO of one key (ordered mode) or a single message (unordered
// mode). A lane is on the ready queue, running on a worker, in backoff, or
// (empty) gone.
type lane struct {
	key      string
	msgs     []*held // msgs[0] is the next to handle
	state    laneState
	failures int // consecutive failures of msgs[0]
	timer    *time.Timer
	dead     bool // dropped by a resync: its timer must not bring it back
}

type laneState int

const (
	laneReady   laneState = iota // on s.ready
	laneRunning                  // msgs[0] is with a worker
	laneBackoff                  // msgs[0] failed; timer puts it back on s.ready
)

// subscription is one group consuming one topic from JetStream.
type subscription struct {
	log          *jsLog
	stream       string // stream name
	topic        string
	group        string
	consumerName string
	partition    string // lag label: "" or "i/n"
	opts         ConsumeOptions
	handler      func(ctx context.Context, m RawMsg) error
	logger       *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond // workers: s.ready, s.paused or s.stopping changed
	idle     *sync.Cond // pauseAndDrop: s.running reached 0, or s.stopping
	held     map[uint64]*held
	lanes    map[string]*lane // ordered mode: key → lane
	ready    []*lane          // FIFO of lanes to run
	stopping bool
	paused   bool // a resync is waiting for running handlers
	running  int  // handlers in progress
	cons     jetstream.Consumer
	iter     jetstream.MessagesContext
	// lastDelivery is the consumer sequence of the last delivery seen
	// (ordered mode): deliveries are numbered 1, 2, 3... by the server, so
	// a jump means some were lost on the way and will come back late.
	lastDelivery uint64
	// redeliveredUpTo: messages up to this stream sequence may have been
	// handed out before the last reset (which forgets delivery counts).
	redeliveredUpTo uint64
	lastReset       time.Time

	stopOnce   sync.Once
	stopCtx    func() bool   // releases the context.AfterFunc
	stopFetch  chan struct{} // closed when stopping: no new iterators
	fetchDone  chan struct{} // closed when the fetch goroutine returned
	workers    sync.WaitGroup
	background sync.WaitGroup // heartbeat and lag
	stopBg     chan struct{}  // closed after the workers finished
	stopped    chan struct{}  // closed when Stop completed
}

func newSubscription(l *jsLog, stream, topic, group string, opts ConsumeOptions, handler func(context.Context, RawMsg) error) *subscription {
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
		if d, err := s.reset(ctx, info); err == nil {
			lastDelivery = d
		} else {
			// Carry on: the pending messages come back after AckWait, late
			// for their keys' order but not lost.
			s.logger.Error("rewinding the group failed; order per key may break for the messages pending", "err", err)
		}
	}
	iter, err := cons.Messages(
		jetstream.PullMaxMessages(s.opts.MaxBatch),
		// A missed heartbeat makes the iterator re-pull by itself; we do not
		// need to hear about it.
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", s.consumerName, err)
	}
	s.mu.Lock()
	s.cons, s.iter, s.lastDelivery = cons, iter, lastDelivery
	s.mu.Unlock()
	return iter, nil
}

// reset rewinds an ordered consumer to its ack floor and returns the new
// last delivery sequence.
//
// Messages still pending on the consumer (held by a run that crashed, sent
// to a pull request nobody reads any more, released by a nak) are
// redelivered only when their ack deadline passes, while later messages of
// the same keys would be delivered at once: that would break the order per
// key. Rewinding makes the server deliver again everything after the ack
// floor, in stream order. The price is that messages acked above the floor
// come again too; handlers are idempotent.
func (s *subscription) reset(ctx context.Context, info *jetstream.ConsumerInfo) (uint64, error) {
	s.logger.Info("rewinding the group to its ack floor",
		"ack_floor", info.AckFloor.Stream, "delivered", info.Delivered.Stream, "pending", info.NumAckPending)
	resp, err := s.log.js.ResetConsumer(ctx, s.stream, s.consumerName)
	if err != nil {
		// NATS before 2.14 has no reset: pending messages come back after
		// AckWait and may overtake later ones of their key.
		return 0, fmt.Errorf("reset consumer %s (needs nats-server 2.14+): %w", s.consumerName, err)
	}
	s.mu.Lock()
	s.redeliveredUpTo = max(s.redeliveredUpTo, info.Delivered.Stream)
	s.lastReset = time.Now()
	s.mu.Unlock()
	if resp.ConsumerInfo == nil {
		return 0, nil
	}
	return resp.Delivered.Consumer, nil
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
			s.mu.Lock()
			recent := time.Since(s.lastReset) < s.opts.AckWait
			s.mu.Unlock()
			if !recent {
				rewinds = 0
			} else if rewinds++; rewinds >= 3 {
				s.logger.Warn("rewinding again and again: is this ordered group shared by several processes? Use Partitions", "rewinds", rewinds)
			}
		} else if s.isStopping() {
			iter.Stop()
			return
		} else {
			failures++
			s.logger.Warn("pulling messages failed; reopening the consumer", "err", err)
		}
		iter.Stop()
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

var errStopping = errors.New("subscription stopping")

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
	return true
}

func (s *subscription) resume() {
	s.mu.Lock()
	s.paused = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *subscription) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// dispatch queues a delivered message on its lane. It returns false, and
// drops the message, when deliveries before it went missing in ordered mode.
func (s *subscription) dispatch(m jetstream.Msg) bool {
	md, err := m.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to ack.
		s.logger.Error("dropping a message without metadata", "subject", m.Subject(), "err", err)
		return true
	}
	if s.opts.Ordered && !s.checkDelivery(md.Sequence.Consumer) {
		return false
	}
	key, err := s.log.names.keyFromSubject(s.topic, m.Subject())
	if err != nil {
		// Published around this package; no handler can make sense of it.
		s.logger.Error("dropping a message with a bad subject", "seq", md.Sequence.Stream, "err", err)
		s.count(resultPermanent)
		if err := m.Ack(); err != nil {
			s.logger.Warn("ack failed", "seq", md.Sequence.Stream, "err", err)
		}
		return true
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[md.Sequence.Stream]; ok {
		// The server redelivered a message we still hold (a heartbeat came
		// too late): keep one copy, with the newest delivery to answer.
		h.msg, h.touched = m, now
		return true
	}
	h := &held{
		msg: m,
		raw: RawMsg{
			Stream:      s.topic,
			Seq:         md.Sequence.Stream,
			Key:         key,
			Data:        m.Data(),
			Time:        md.Timestamp,
			Redelivered: md.NumDelivered > 1 || md.Sequence.Stream <= s.redeliveredUpTo,
		},
		touched: now,
	}
	s.held[h.raw.Seq] = h
	if s.stopping {
		return true // released by Stop
	}
	if !s.opts.Ordered {
		s.push(&lane{key: key, msgs: []*held{h}})
		return true
	}
	ln := s.lanes[key]
	if ln == nil {
		ln = &lane{key: key}
		s.lanes[key] = ln
		ln.msgs = append(ln.msgs, h)
		s.push(ln)
		return true
	}
	// Keep the lane in stream order. Deliveries come in order except for
	// redeliveries of messages another process of the group held, which
	// must still go before the later ones waiting here.
	lo := 0
	if ln.state != laneReady {
		lo = 1 // msgs[0] is being handled or retried
	}
	i := len(ln.msgs)
	for i > lo && ln.msgs[i-1].raw.Seq > h.raw.Seq {
		i--
	}
	ln.msgs = slices.Insert(ln.msgs, i, h)
	return true
}

// checkDelivery tracks consumer sequences and reports whether delivery seq
// follows the last one. A gap means deliveries were lost (a disconnect, a
// pull request that expired with messages in flight): they come back only
// after AckWait, too late for their keys' order, so the caller resyncs.
func (s *subscription) checkDelivery(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.lastDelivery
	s.lastDelivery = seq
	if seq == last+1 {
		return true
	}
	s.logger.Warn("deliveries missing; rewinding the group", "delivery", seq, "expected", last+1)
	return false
}

// push puts ln on the ready queue. s.mu is held.
func (s *subscription) push(ln *lane) {
	ln.state = laneReady
	s.ready = append(s.ready, ln)
	s.cond.Signal()
}

// work runs handlers until Stop.
func (s *subscription) work(ctx context.Context) {
	for {
		s.mu.Lock()
		for (len(s.ready) == 0 || s.paused) && !s.stopping {
			s.cond.Wait()
		}
		if s.stopping {
			s.mu.Unlock()
			return
		}
		ln := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		ln.state = laneRunning
		h := ln.msgs[0]
		raw := h.raw
		raw.Redelivered = raw.Redelivered || ln.failures > 0
		s.running++
		s.mu.Unlock()

		err := s.call(ctx, raw)
		s.finish(ln, h, err)

		s.mu.Lock()
		s.running--
		if s.running == 0 && s.paused {
			s.idle.Broadcast()
		}
		s.mu.Unlock()
	}
}

// call runs the handler, turning a panic into an error so that one bad
// message cannot take the process down.
func (s *subscription) call(ctx context.Context, raw RawMsg) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
		if s.opts.Metrics != nil {
			s.opts.Metrics.latency.WithLabelValues(s.topic, s.group).Observe(time.Since(start).Seconds())
		}
	}()
	return s.handler(ctx, raw)
}

// finish acks, retries or drops h, the head of ln, after its handler
// returned err.
func (s *subscription) finish(ln *lane, h *held, err error) {
	seq := h.raw.Seq
	switch {
	case err == nil:
		s.count(resultOK)
	case IsPermanent(err):
		s.count(resultPermanent)
		s.logger.Warn("dropping message after permanent error", "seq", seq, "key", h.raw.Key, "err", err)
	default:
		s.count(resultError)
		s.retry(ln, h, err)
		return
	}
	s.mu.Lock()
	delete(s.held, seq)
	m := h.msg
	ln.msgs[0] = nil
	ln.msgs = ln.msgs[1:]
	ln.failures = 0
	if len(ln.msgs) > 0 {
		s.push(ln)
	} else if s.opts.Ordered {
		delete(s.lanes, ln.key)
	}
	s.mu.Unlock()
	if err := m.Ack(); err != nil {
		// The server will redeliver it; handlers are idempotent.
		s.logger.Warn("ack failed", "seq", seq, "err", err)
	}
}

// retry schedules another attempt at h after a failure.
func (s *subscription) retry(ln *lane, h *held, err error) {
	seq := h.raw.Seq
	if !s.opts.Ordered {
		// Nothing waits behind it: let the server redeliver it later.
		s.mu.Lock()
		delete(s.held, seq)
		m := h.msg
		s.mu.Unlock()
		n := 1
		if md, mdErr := m.Metadata(); mdErr == nil {
			n = int(min(md.NumDelivered, 64))
		}
		d := backoff(n)
		s.logger.Warn("handler failed; retrying later", "seq", seq, "key", h.raw.Key, "attempt", n, "retry_in", d, "err", err)
		if err := m.NakWithDelay(d); err != nil {
			s.logger.Warn("nak failed", "seq", seq, "err", err)
		}
		return
	}
	// Ordered: the lane keeps the message and everything behind it; the
	// heartbeat keeps them from being redelivered meanwhile.
	s.mu.Lock()
	defer s.mu.Unlock()
	ln.failures++
	d := backoff(ln.failures)
	s.logger.Warn("handler failed; retrying later", "seq", seq, "key", h.raw.Key, "attempt", ln.failures, "retry_in", d, "err", err)
	if s.stopping {
		return
	}
	ln.state = laneBackoff
	ln.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.stopping && !ln.dead && ln.state == laneBackoff {
			s.push(ln)
		}
	})
}

func (s *subscription) count(result string) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.processed.WithLabelValues(s.topic, s.group, result).Inc()
	}
}

// heartbeat keeps the ack deadline of every held message from expiring: a
// message waiting behind a slow or failing one of its key must not be
// redelivered, or it could overtake it.
func (s *subscription) heartbeat() {
	// A held message is touched every one or two ticks, well within
	// AckWait even when this process, or the server, runs late.
	every := max(s.opts.AckWait/5, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var touch []jetstream.Msg
	for {
		select {
		case <-s.stopBg:
			return
		case now := <-t.C:
			touch = touch[:0]
			s.mu.Lock()
			for _, h := range s.held {
				if now.Sub(h.touched) >= every {
					h.touched = now
					touch = append(touch, h.msg)
				}
			}
			s.mu.Unlock()
			for _, m := range touch {
				err := m.InProgress()
				if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					continue // acked since the snapshot
				}
				if err != nil {
					s.logger.Warn("extending ack deadline failed", "err", err)
					break // the connection is down; the next tick tries again
				}
			}
		}
	}
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
