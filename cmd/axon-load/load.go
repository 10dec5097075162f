package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	HS                     string
	Users, Rooms, Messages int
	Senders, Syncers       int
	SharedSecret           string
	PID                    int
	DBDSN                  string // the server's PostgreSQL, whose backends' CPU is measured
	IdleMax, DrainMax      time.Duration
	CPUProfile             string // the tool's own CPU profile, if set
}

func (c Config) validate() error {
	switch {
	case c.HS == "":
		return errors.New("-hs is required")
	case c.Users < 1 || c.Rooms < 1 || c.Messages < 1 || c.Senders < 1 || c.Syncers < 1:
		return errors.New("-users, -rooms, -messages, -senders and -syncers must be at least 1")
	case c.DBDSN != "" && !isPostgresURL(c.DBDSN):
		return errors.New("-db-dsn must be a postgres:// or postgresql:// URL")
	}
	return nil
}

// Result is what one run measured. Durations of phases that could not be
// measured are left zero and their *Known or *Supported flag false.
type Result struct {
	Config Config
	RunID  string
	// Joined is true when every user joined every room; false when the
	// server has no join endpoint and each room holds only its creator.
	Joined     bool
	Members    int // members per room
	SyncUsers  int // users whose /sync measured delivery
	PID        int
	ProcErr    string
	Setup      time.Duration
	Sent       int // messages the server accepted
	SendErrors int
	FirstError string
	Retried429 int
	SendWall   time.Duration // first send to last answer
	Send       Summary
	LoadCPU    time.Duration // server CPU during the sends
	// ToolCPU is this process's CPU during the sends: on a shared machine
	// it is CPU the server did not have.
	ToolCPU time.Duration
	// DBCPU is the CPU of the -db-dsn database's backends during the sends,
	// known if DBKnown (else DBErr says why). Backends that exited during
	// the sends are lost: DBGone counts them.
	DBKnown            bool
	DBCPU              time.Duration
	DBBackends, DBGone int
	DBErr              string

	Delivery                                 Summary // send start to seen in a syncer's /sync
	Expected, Delivered, Duplicates, Missing int
	LimitedTimelines                         int

	IdleReached bool
	IdleAfter   time.Duration // last send answered to the start of the first quiet second
	IdleCPU     time.Duration // server CPU in that time

	InitialSync, IncrementalSync, CatchUpSync Summary

	MessagesSupported                          bool
	MessagesPage                               Summary
	MessagesRoom                               Summary // whole backward pagination of one room
	MessagesSeen, MessagesMissing, MessagesDup int

	MemKnown                    bool
	MemStart, MemLoaded, MemEnd Memory
}

// Throughput is accepted messages per second of the send phase.
func (r *Result) Throughput() float64 {
	if r.SendWall <= 0 {
		return 0
	}
	return float64(r.Sent) / r.SendWall.Seconds()
}

// Run performs the whole run against cfg.HS; progress goes to logw.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c, err := newClient(strings.TrimRight(cfg.HS, "/"), cfg.Senders+cfg.Syncers+4)
	if err != nil {
		return nil, err
	}
	defer c.close()
	r := &Result{Config: cfg, RunID: randomRunID()}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "axon-load: "+format+"\n", args...) }

	r.PID = cfg.PID
	if r.PID == 0 {
		pid, err := pidByURL(cfg.HS)
		if err != nil {
			r.ProcErr = err.Error()
			logf("no CPU or memory figures: %v", err)
		}
		r.PID = pid
	}
	if r.PID != 0 {
		m, err := memory(r.PID)
		if err != nil {
			r.ProcErr = err.Error()
			r.PID = 0
		} else {
			r.MemKnown, r.MemStart = true, m
		}
	}

	start := time.Now()
	users, rooms, err := r.setup(ctx, c, logf)
	if err != nil {
		return nil, err
	}
	r.Setup = time.Since(start)
	logf("set up %d users and %d rooms (%d members each) in %s", len(users), len(rooms), r.Members, r.Setup.Round(time.Millisecond))

	// A token from before the load, to time the catch-up sync of a client
	// that was offline during it.
	pre, err := c.sync(ctx, users[0], "", "", 0)
	if err != nil {
		return nil, fmt.Errorf("initial sync before the load: %w", err)
	}

	sy := newSyncers(r, users, rooms)
	r.SyncUsers = len(sy.subs)
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	if err := sy.start(ctx, syncCtx, c); err != nil {
		return nil, err
	}

	logf("sending %d messages from %d senders", cfg.Messages, cfg.Senders)
	var db *dbProbe
	var db0 map[int]time.Duration
	if cfg.DBDSN != "" {
		db, db0 = r.dbStart(ctx)
	}
	cpu0, tool0 := r.cpu(), ownCPU()
	t0 := r.sendAll(ctx, c, users, rooms, sy)
	r.LoadCPU, r.ToolCPU = r.cpu()-cpu0, ownCPU()-tool0
	r.dbEnd(ctx, db, db0)
	if r.DBErr != "" {
		logf("no database CPU figure: %s", r.DBErr)
	}
	if r.MemKnown {
		r.MemLoaded, _ = memory(r.PID)
	}
	logf("sent %d in %s (%.0f/s), %d errors", r.Sent, r.SendWall.Round(time.Millisecond), r.Throughput(), r.SendErrors)

	// The server's own time to idle and the delivery of what is still in
	// flight are measured together: both start when the last send answers.
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		if r.PID != 0 {
			r.IdleAfter, r.IdleCPU, r.IdleReached = waitIdle(ctx, r.PID, t0, cfg.IdleMax)
		}
	}()
	sy.drain(ctx, cfg.DrainMax)
	stopSync()
	sy.wait()
	sy.report(r)
	logf("delivered %d of %d (%d duplicates, %d missing)", r.Delivered, r.Expected, r.Duplicates, r.Missing)
	<-idleDone
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	if err := r.measureSync(ctx, c, users[0], pre.NextBatch); err != nil {
		return nil, err
	}
	if err := r.measureMessages(ctx, c, users, rooms, sy.okRoom); err != nil {
		return nil, err
	}
	if r.MemKnown {
		r.MemEnd, _ = memory(r.PID)
	}
	return r, nil
}

func (r *Result) cpu() time.Duration {
	if r.PID == 0 {
		return 0
	}
	d, _ := cpuTime(r.PID)
	return d
}

// room is a created room and the indexes of its members in users.
type room struct {
	id      string
	members []int
}

// setup registers the users, creates the rooms and joins every user to
// every room, or, if the server cannot join, leaves each room to its creator.
func (r *Result) setup(ctx context.Context, c *client, logf func(string, ...any)) ([]user, []room, error) {
	cfg := r.Config
	users := make([]user, cfg.Users)
	err := forEach(ctx, cfg.Users, cfg.Senders, func(ctx context.Context, i int) error {
		var err error
		users[i], err = c.register(ctx, fmt.Sprintf("load%su%d", r.RunID, i), "load-"+r.RunID, cfg.SharedSecret)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	rooms := make([]room, cfg.Rooms)
	err = forEach(ctx, cfg.Rooms, cfg.Senders, func(ctx context.Context, i int) error {
		creator := i % len(users)
		id, err := c.createRoom(ctx, users[creator], fmt.Sprintf("axon-load %s %d", r.RunID, i))
		rooms[i] = room{id: id, members: []int{creator}}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	r.Joined, r.Members = true, len(users)
	if len(users) > 1 {
		// Probe once: a server without join is measured with creators only.
		if err := c.join(ctx, users[1], rooms[0].id); unsupported(err) {
			logf("the server has no join endpoint (%v): each room holds only its creator", err)
			r.Joined, r.Members = false, 1
			return users, rooms, nil
		} else if err != nil {
			return nil, nil, err
		}
	}
	type pair struct{ u, room int }
	var joins []pair
	for ri := range rooms {
		for u := range users {
			if u != rooms[ri].members[0] && !(ri == 0 && u == 1) {
				joins = append(joins, pair{u, ri})
			}
		}
	}
	err = forEach(ctx, len(joins), cfg.Senders, func(ctx context.Context, i int) error {
		return c.join(ctx, users[joins[i].u], rooms[joins[i].room].id)
	})
	if err != nil {
		return nil, nil, err
	}
	for ri := range rooms {
		rooms[ri].members = rooms[ri].members[:0]
		for u := range users {
			rooms[ri].members = append(rooms[ri].members, u)
		}
	}
	return users, rooms, nil
}

// sendAll sends the messages from cfg.Senders goroutines: message i goes to
// room i mod rooms, from its members in turn. It returns when the last send
// has answered.
func (r *Result) sendAll(ctx context.Context, c *client, users []user, rooms []room, sy *syncers) time.Time {
	cfg := r.Config
	var next atomic.Int64
	var lat recorder
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range cfg.Senders {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Messages {
					return
				}
				rm := rooms[i%len(rooms)]
				u := users[rm.members[(i/len(rooms))%len(rm.members)]]
				t := time.Now()
				sy.sendStart[i].Store(t.UnixNano())
				retried, err := c.send(ctx, u, rm.id, r.RunID, i)
				d := time.Since(t)
				mu.Lock()
				r.Retried429 += retried
				if err != nil {
					r.SendErrors++
					if r.FirstError == "" {
						r.FirstError = err.Error()
					}
				} else {
					r.Sent++
					sy.ok[i].Store(true)
				}
				mu.Unlock()
				if err == nil {
					lat.add(d)
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	r.SendWall = end.Sub(start)
	r.Send = lat.summary()
	return end
}

// waitIdle samples the CPU time of pid every 100 ms from t0 until a whole
// second passes with less than 50 ms of CPU (5% of one core) or max
// elapses. It returns when that quiet second began, relative to t0, and the
// CPU spent until then.
func waitIdle(ctx context.Context, pid int, t0 time.Time, limit time.Duration) (after, cpu time.Duration, reached bool) {
	type sample struct {
		t   time.Time
		cpu time.Duration
	}
	base, err := cpuTime(pid)
	if err != nil {
		return 0, 0, false
	}
	samples := []sample{{t0, base}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, 0, false
		case now := <-tick.C:
			c, err := cpuTime(pid)
			if err != nil {
				return 0, 0, false
			}
			samples = append(samples, sample{now, c})
			// The oldest sample at most a second old opens the window.
			w := 0
			for w < len(samples)-1 && now.Sub(samples[w+1].t) >= time.Second {
				w++
			}
			samples = samples[w:]
			if now.Sub(samples[0].t) >= time.Second && c-samples[0].cpu < 50*time.Millisecond {
				return max(samples[0].t.Sub(t0), 0), samples[0].cpu - base, true
			}
			if now.Sub(t0) > limit {
				return now.Sub(t0), c - base, false
			}
		}
	}
}

// measureSync times initial syncs, empty incremental syncs and the
// catch-up sync of a client whose token predates the load.
func (r *Result) measureSync(ctx context.Context, c *client, u user, preLoad string) error {
	var initial, incr, catchUp []time.Duration
	var since string
	for range 5 {
		t := time.Now()
		s, err := c.sync(ctx, u, "", "", 0)
		if err != nil {
			return fmt.Errorf("initial sync: %w", err)
		}
		initial = append(initial, time.Since(t))
		since = s.NextBatch
	}
	for range 5 {
		t := time.Now()
		if _, err := c.sync(ctx, u, since, "", 0); err != nil {
			return fmt.Errorf("incremental sync: %w", err)
		}
		incr = append(incr, time.Since(t))
	}
	for range 3 {
		t := time.Now()
		if _, err := c.sync(ctx, u, preLoad, "", 0); err != nil {
			return fmt.Errorf("catch-up sync: %w", err)
		}
		catchUp = append(catchUp, time.Since(t))
	}
	r.InitialSync, r.IncrementalSync, r.CatchUpSync = summarize(initial), summarize(incr), summarize(catchUp)
	return nil
}

// measureMessages pages every room backwards from the present with
// /messages (limit 100), timing each page and checking that each accepted
// message appears exactly once.
func (r *Result) measureMessages(ctx context.Context, c *client, users []user, rooms []room, okRoom func(room int) map[int]bool) error {
	var pages, whole []time.Duration
	for ri, rm := range rooms {
		u := users[rm.members[0]]
		s, err := c.sync(ctx, u, "", loadFilter, 0)
		if err != nil {
			return fmt.Errorf("sync before /messages: %w", err)
		}
		want := okRoom(ri)
		seen := map[int]int{}
		from := s.NextBatch
		roomStart := time.Now()
		maxPages := len(want)/100*3 + 20
		for p := 0; p < maxPages; p++ {
			t := time.Now()
			page, err := c.messages(ctx, u, rm.id, from, 100)
			if unsupported(err) {
				return nil
			} else if err != nil {
				return fmt.Errorf("/messages in %s: %w", rm.id, err)
			}
			pages = append(pages, time.Since(t))
			for _, e := range page.Chunk {
				if e.Content.Tag != nil && e.Content.Tag.Run == r.RunID {
					seen[e.Content.Tag.Seq]++
				}
			}
			if len(page.Chunk) == 0 || page.End == "" || page.End == from {
				break
			}
			from = page.End
		}
		whole = append(whole, time.Since(roomStart))
		for _, n := range seen {
			r.MessagesSeen++
			r.MessagesDup += n - 1
		}
		for seq := range want {
			if seen[seq] == 0 {
				r.MessagesMissing++
			}
		}
	}
	r.MessagesSupported = true
	r.MessagesPage, r.MessagesRoom = summarize(pages), summarize(whole)
	return nil
}

// forEach calls f for 0..n-1 from up to workers goroutines and returns the
// first error, after which no new calls start.
func forEach(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func randomRunID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
