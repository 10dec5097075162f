package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// syncers are the users whose long-polling /sync measures delivery: each
// records, per message, how often it arrived and how long after its send
// began the first copy did.
type syncers struct {
	runID     string
	rooms     int
	sendStart []atomic.Int64 // unix ns a message's send began
	ok        []atomic.Bool  // the server accepted the message
	subs      []*subscriber
	latency   recorder
	wg        sync.WaitGroup
}

type subscriber struct {
	u       user
	inRoom  []bool // by room index
	seen    []atomic.Int32
	limited atomic.Int32
	err     atomic.Value // first sync error (string)
}

// newSyncers picks the syncing users: the first cfg.Syncers users when
// everyone is in every room, else each room's creator, so every room is
// watched by one member.
func newSyncers(r *Result, users []user, rooms []room) *syncers {
	n := r.Config.Messages
	s := &syncers{runID: r.RunID, rooms: len(rooms), sendStart: make([]atomic.Int64, n), ok: make([]atomic.Bool, n)}
	byUser := map[int]*subscriber{}
	for ri, rm := range rooms {
		for _, u := range rm.members {
			if r.Joined && u >= r.Config.Syncers {
				continue
			}
			sub := byUser[u]
			if sub == nil {
				sub = &subscriber{u: users[u], inRoom: make([]bool, len(rooms)), seen: make([]atomic.Int32, n)}
				byUser[u] = sub
				s.subs = append(s.subs, sub)
			}
			sub.inRoom[ri] = true
		}
	}
	return s
}

// start takes each syncer's initial position (with ctx), then long-polls
// until runCtx ends.
func (s *syncers) start(ctx, runCtx context.Context, c *client) error {
	for _, sub := range s.subs {
		first, err := c.sync(ctx, sub.u, "", loadFilter, 0)
		if err != nil {
			return fmt.Errorf("initial sync of %s: %w", sub.u.ID, err)
		}
		s.wg.Go(func() { s.poll(runCtx, c, sub, first.NextBatch) })
	}
	return nil
}

func (s *syncers) poll(ctx context.Context, c *client, sub *subscriber, since string) {
	for ctx.Err() == nil {
		res, err := c.sync(ctx, sub.u, since, loadFilter, 30*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				sub.err.CompareAndSwap(nil, err.Error())
				// A failing server is retried, not hammered.
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			continue
		}
		now := time.Now()
		for _, jr := range res.Rooms.Join {
			if jr.Timeline.Limited {
				sub.limited.Add(1)
			}
			for _, e := range jr.Timeline.Events {
				t := e.Content.Tag
				if t == nil || t.Run != s.runID || t.Seq < 0 || t.Seq >= len(sub.seen) {
					continue
				}
				if sub.seen[t.Seq].Add(1) == 1 {
					if st := s.sendStart[t.Seq].Load(); st != 0 {
						s.latency.add(now.Sub(time.Unix(0, st)))
					}
				}
			}
		}
		since = res.NextBatch
	}
}

// missing counts accepted messages not yet seen by some syncer of their room.
func (s *syncers) missing() (expected, missing int) {
	for _, sub := range s.subs {
		for i := range sub.seen {
			if !s.ok[i].Load() || !sub.inRoom[i%s.rooms] {
				continue
			}
			expected++
			if sub.seen[i].Load() == 0 {
				missing++
			}
		}
	}
	return expected, missing
}

// drain waits until every accepted message has been delivered or until
// limit passes without one more arriving.
func (s *syncers) drain(ctx context.Context, limit time.Duration) {
	_, last := s.missing()
	progress := time.Now()
	for ctx.Err() == nil {
		_, m := s.missing()
		if m == 0 {
			return
		}
		if m < last {
			last, progress = m, time.Now()
		} else if time.Since(progress) > limit {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *syncers) wait() { s.wg.Wait() }

// report fills the delivery figures of r.
func (s *syncers) report(r *Result) {
	r.Expected, r.Missing = s.missing()
	r.Delivered = r.Expected - r.Missing
	for _, sub := range s.subs {
		for i := range sub.seen {
			if n := sub.seen[i].Load(); n > 1 {
				r.Duplicates += int(n - 1)
			}
		}
		r.LimitedTimelines += int(sub.limited.Load())
		if e, ok := sub.err.Load().(string); ok && r.FirstError == "" {
			r.FirstError = "sync: " + e
		}
	}
	r.Delivery = s.latency.summary()
}

// okRoom returns the accepted messages of room ri.
func (s *syncers) okRoom(ri int) map[int]bool {
	out := map[int]bool{}
	for i := ri; i < len(s.ok); i += s.rooms {
		if s.ok[i].Load() {
			out[i] = true
		}
	}
	return out
}
