package eventlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
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
	inFlight int // running: msgs[:inFlight] are with the handler
	// solo counts messages still to be handled one per call because a
	// batch holding them failed: the one at fault must be found.
	solo     int
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
	defer s.wakeLingering() // before the unlock
	if s.rewindWanted {
		// What the drained iterator still hands over comes again after
		// the rewind.
		return true
	}
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
	switch ln.state {
	case laneRunning:
		lo = ln.inFlight // being handled
	case laneBackoff:
		lo = 1 // msgs[0] is retried
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

// wakeLingering ends a worker's linger early once a whole batch is ready.
// s.mu is held.
func (s *subscription) wakeLingering() {
	if s.lingering == 0 {
		return
	}
	if n, _ := s.readyCount(); n >= s.opts.HandlerBatch {
		select {
		case s.lingerWake <- struct{}{}:
		default: // a wake is pending already
		}
	}
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
		if s.shouldLinger() {
			// Unlocked: dispatch keeps adding to the ready lanes meanwhile,
			// and wakes us once a whole batch is there.
			s.lingering++
			s.mu.Unlock()
			t := time.NewTimer(s.opts.Linger)
			select {
			case <-t.C:
			case <-s.lingerWake:
				t.Stop()
			case <-s.stopFetch: // Stop need not wait out the linger
				t.Stop()
			}
			s.mu.Lock()
			s.lingering--
			if s.stopping || s.paused || len(s.ready) == 0 {
				s.mu.Unlock()
				continue // the loop's checks decide
			}
		}
		lanes := s.take()
		first := lanes[0].msgs[0]
		var raws []RawMsg
		for _, ln := range lanes {
			for _, h := range ln.msgs[:ln.inFlight] {
				raw := h.raw
				raw.Redelivered = raw.Redelivered || ln.failures > 0 || ln.solo > 0
				raws = append(raws, raw)
			}
		}
		s.running++
		s.mu.Unlock()

		err := s.call(ctx, raws)
		if len(raws) == 1 {
			s.finish(lanes[0], first, err)
		} else {
			s.finishBatch(lanes, len(raws), err)
		}

		s.mu.Lock()
		s.running--
		s.lastCall = time.Now()
		if s.running == 0 && s.paused {
			s.idle.Broadcast()
		}
		s.mu.Unlock()
	}
}

// shouldLinger reports whether a worker of a batch handler should wait
// for more messages before taking a batch: Linger is set, the handler was
// busy within the last Linger, and fewer than HandlerBatch messages are
// ready. s.mu is held.
func (s *subscription) shouldLinger() bool {
	if s.opts.Linger <= 0 || s.opts.HandlerBatch <= 1 || time.Since(s.lastCall) >= s.opts.Linger {
		return false
	}
	// Not while retrying a failed batch's messages one by one.
	n, solo := s.readyCount()
	return !solo && n < s.opts.HandlerBatch
}

// readyCount counts the messages on the ready lanes and tells whether one
// of them is retrying a failed batch's messages alone. s.mu is held.
func (s *subscription) readyCount() (n int, solo bool) {
	for _, ln := range s.ready {
		n += len(ln.msgs)
		solo = solo || ln.solo > 0
	}
	return n, solo
}

// take removes the first ready lane from the queue and, for a batch handler,
// every other ready lane too, up to HandlerBatch messages in all: each
// lane's whole FIFO (in order), or what fits. A lane retrying messages of a
// failed batch goes alone, one message at a time. s.mu is held.
func (s *subscription) take() []*lane {
	first := s.ready[0]
	s.ready[0] = nil
	s.ready = s.ready[1:]
	limit := s.opts.HandlerBatch
	if first.solo > 0 {
		limit = 1
	}
	n := s.claim(first, limit)
	lanes := []*lane{first}
	if n >= limit {
		return lanes
	}
	rest := s.ready[:0]
	for _, ln := range s.ready {
		if n < limit && ln.solo == 0 {
			n += s.claim(ln, limit-n)
			lanes = append(lanes, ln)
		} else {
			rest = append(rest, ln)
		}
	}
	clear(s.ready[len(rest):])
	s.ready = rest
	return lanes
}

// claim marks up to room messages at the head of ln as being handled.
func (s *subscription) claim(ln *lane, room int) int {
	ln.state = laneRunning
	ln.inFlight = min(len(ln.msgs), room)
	return ln.inFlight
}

// call runs the handler, turning a panic into an error so that one bad
// message cannot take the process down.
func (s *subscription) call(ctx context.Context, raws []RawMsg) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
		if s.opts.Metrics != nil {
			s.opts.Metrics.latency.WithLabelValues(s.topic, s.group).Observe(time.Since(start).Seconds())
		}
	}()
	return s.handler(ctx, raws)
}

// finish acks (or, with AckAfter, queues for the ack), retries or drops h,
// the head of ln, after its handler returned err.
func (s *subscription) finish(ln *lane, h *held, err error) {
	seq := h.raw.Seq
	switch {
	case err == nil:
		s.count(resultOK)
	case IsRewind(err) && s.opts.Ordered:
		s.rewindAfter(1, err)
		return
	case IsPermanent(err):
		s.count(resultPermanent)
		s.logger.Warn("dropping message after permanent error", "seq", seq, "key", h.raw.Key, "err", err)
	default:
		s.count(resultError)
		s.retry(ln, h, err)
		return
	}
	deferred := err == nil && s.opts.AckAfter != nil
	s.mu.Lock()
	if deferred {
		s.awaitAck(h)
	} else {
		delete(s.held, seq)
	}
	m := h.msg
	ln.msgs[0] = nil
	ln.msgs = ln.msgs[1:]
	ln.inFlight = 0
	ln.failures = 0
	if ln.solo > 0 {
		ln.solo--
	}
	if len(ln.msgs) > 0 {
		s.push(ln)
	} else if s.opts.Ordered {
		delete(s.lanes, ln.key)
	}
	stopping := s.stopping
	s.mu.Unlock()
	if deferred {
		return
	}
	if err := ack(m, stopping); err != nil {
		// The server will redeliver it; handlers are idempotent.
		s.logger.Warn("ack failed", "seq", seq, "err", err)
	}
}

// ack acks m. While stopping it waits for the server to confirm: Stop
// returns after the running handlers' acks, and the group's next
// subscriber must not get those messages again.
func ack(m jetstream.Msg, stopping bool) error {
	if !stopping {
		return m.Ack()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.DoubleAck(ctx)
}

// finishBatch acks the n messages of a batch (or, with AckAfter, queues
// them for the ack) after the handler returned nil, or makes their lanes
// retry them one at a time after an error: the handler applied none of
// them, and handling them alone finds the one at fault, which then backs
// off or is dropped as a single message would be.
func (s *subscription) finishBatch(lanes []*lane, n int, err error) {
	if IsRewind(err) && s.opts.Ordered {
		s.rewindAfter(n, err)
		return
	}
	if err != nil {
		for range n {
			s.count(resultError)
		}
		s.logger.Warn("batch handler failed; retrying its messages one at a time", "messages", n, "err", err)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ln := range lanes {
			ln.solo = max(ln.solo, ln.inFlight)
			ln.inFlight = 0
			if s.stopping {
				ln.state = laneBackoff // nak'ed by Stop
				continue
			}
			s.push(ln)
		}
		return
	}
	for range n {
		s.count(resultOK)
	}
	acks := make([]*held, 0, n)
	s.mu.Lock()
	for _, ln := range lanes {
		for _, h := range ln.msgs[:ln.inFlight] {
			if s.opts.AckAfter != nil {
				s.awaitAck(h)
				continue
			}
			delete(s.held, h.raw.Seq)
			acks = append(acks, h)
		}
		clear(ln.msgs[:ln.inFlight])
		ln.msgs = ln.msgs[ln.inFlight:]
		ln.inFlight = 0
		ln.failures = 0
		if len(ln.msgs) > 0 {
			s.push(ln)
		} else if s.opts.Ordered {
			delete(s.lanes, ln.key)
		}
	}
	// Read under s.mu: a redelivery merged meanwhile replaced h.msg.
	ms := make([]jetstream.Msg, len(acks))
	for i, h := range acks {
		ms[i] = h.msg
	}
	stopping := s.stopping
	s.mu.Unlock()
	for i, m := range ms {
		if err := ack(m, stopping); err != nil {
			// The server will redeliver it; handlers are idempotent.
			s.logger.Warn("ack failed", "seq", acks[i].raw.Seq, "err", err)
		}
	}
}

// awaitAck queues h, whose handler succeeded, for the next AckAfter call.
// It stays in s.held meanwhile, so the heartbeat keeps its deadline. s.mu
// is held.
func (s *subscription) awaitAck(h *held) {
	s.awaiting = append(s.awaiting, h)
	select {
	case s.ackWake <- struct{}{}:
	default: // a wake is pending already
	}
}

// ackAfterTimeout bounds an AckAfter call: one stuck on a half-open
// connection would hold every message waiting, and Stop, for as long as the
// kernel takes to give up on it. A call that times out failed.
const ackAfterTimeout = 30 * time.Second

// ackAfterStopTimeout bounds the AckAfter call Stop makes.
const ackAfterStopTimeout = 10 * time.Second

// ackAfterLoop acks the messages waiting for AckAfter, calling it once for
// all that are waiting when it starts, until the workers have finished;
// Stop then makes the last call.
func (s *subscription) ackAfterLoop(ctx context.Context) {
	for {
		// Checked first: once the workers are done, the messages still
		// waiting are Stop's.
		select {
		case <-s.stopBg:
			return
		default:
		}
		select {
		case <-s.stopBg:
			return
		case <-s.ackWake:
		}
		batch := s.takeAwaiting()
		if len(batch) == 0 {
			continue // taken by the previous call, or a rewind is coming
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, ackAfterTimeout)
		err := s.ackDurable(cctx, batch)
		cancel()
		if err != nil {
			s.ackAfterFailed(batch, err)
		}
		// Paced: what is handled meanwhile shares the next call.
		if wait := s.opts.AckAfterEvery - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-s.stopBg:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// takeAwaiting takes the messages waiting for AckAfter, none while a
// rewind asked for by a failed call is pending: until the rewind drops
// them, what was handled after that call began may rest on the same lost
// writes, and a later call (which need not know) must not ack it.
func (s *subscription) takeAwaiting() []*held {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rewindWanted {
		return nil
	}
	batch := s.awaiting
	s.awaiting = nil
	return batch
}

// ackDurable calls AckAfter and, if it returns nil, acks the messages of
// batch that are still held. A rewind that happened meanwhile dropped the
// others: they were delivered again and are someone else's to ack.
func (s *subscription) ackDurable(ctx context.Context, batch []*held) error {
	if err := s.callAckAfter(ctx); err != nil {
		return err
	}
	ms := make([]jetstream.Msg, 0, len(batch))
	seqs := make([]uint64, 0, len(batch))
	s.mu.Lock()
	for _, h := range batch {
		if s.held[h.raw.Seq] != h {
			continue
		}
		delete(s.held, h.raw.Seq)
		// Read under s.mu: a redelivery merged meanwhile replaced h.msg.
		ms = append(ms, h.msg)
		seqs = append(seqs, h.raw.Seq)
	}
	stopping := s.stopping
	s.mu.Unlock()
	for i, m := range ms {
		if err := ack(m, stopping); err != nil {
			// The server will redeliver it; handlers are idempotent.
			s.logger.Warn("ack failed", "seq", seqs[i], "err", err)
		}
	}
	return nil
}

// callAckAfter runs opts.AckAfter, turning a panic into an error as call
// does for handlers.
func (s *subscription) callAckAfter(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("AckAfter panic: %v\n%s", r, debug.Stack())
		}
	}()
	return s.opts.AckAfter(ctx)
}

// ackAfterFailed handles the messages of batch after AckAfter failed:
// their effects may be lost, so they must be handled again. An ordered
// group rewinds to its ack floor, as after a delivery gap: draining the
// iterator ends the fetch loop's Next, and the loop then reopens, which
// drops every held message and resets the consumer. An unordered group
// forgets them, and the server redelivers them after AckWait.
func (s *subscription) ackAfterFailed(batch []*held, err error) {
	s.mu.Lock()
	if s.stopping {
		// Still held: Stop releases them, and acks nothing else waiting.
		s.rewindWanted = true
		s.mu.Unlock()
		s.logger.Warn("AckAfter failed; releasing the messages on stop", "messages", len(batch), "err", err)
		return
	}
	if !s.opts.Ordered {
		for _, h := range batch {
			if s.held[h.raw.Seq] == h {
				delete(s.held, h.raw.Seq)
			}
		}
		s.mu.Unlock()
		s.logger.Warn("AckAfter failed; the messages are redelivered after the ack wait", "messages", len(batch), "err", err)
		return
	}
	// Even when a rewind since the batch was taken dropped its messages:
	// what was handled after that rewind may rest on the same lost writes.
	iter := s.requestRewindLocked()
	s.mu.Unlock()
	s.logger.Warn("AckAfter failed; rewinding the group", "messages", len(batch), "err", err)
	if iter != nil {
		iter.Drain()
	}
}

// requestRewindLocked makes the fetch loop rewind an ordered group to its
// ack floor, and holds the workers until then: nothing more is handled,
// and nothing waiting for AckAfter is acked, before everything not acked
// is delivered again. It returns the iterator to drain once s.mu is
// released (draining ends the fetch loop's Next), or nil when a rewind is
// pending already. s.mu is held.
func (s *subscription) requestRewindLocked() jetstream.MessagesContext {
	if s.rewindWanted {
		return nil
	}
	s.rewindWanted, s.paused = true, true
	return s.iter
}

// rewindAfter handles a handler's Rewind error in an ordered group: the
// messages stay held (the rewind drops them, and delivers them again in
// order).
func (s *subscription) rewindAfter(n int, err error) {
	for range n {
		s.count(resultError)
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return // Stop releases them
	}
	iter := s.requestRewindLocked()
	s.mu.Unlock()
	s.logger.Warn("handler asked for a rewind; rewinding the group", "messages", n, "err", err)
	if iter != nil {
		iter.Drain()
	}
}

// ackAfterOnStop makes Stop's AckAfter call for the messages still waiting,
// once the workers and ackAfterLoop have finished. On success it acks them,
// waiting for the server's confirmation; otherwise they stay held, and Stop
// releases them.
func (s *subscription) ackAfterOnStop() {
	batch := s.takeAwaiting()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackAfterStopTimeout)
	defer cancel()
	if err := s.ackDurable(ctx, batch); err != nil {
		s.logger.Warn("AckAfter failed; releasing the messages on stop", "messages", len(batch), "err", err)
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
