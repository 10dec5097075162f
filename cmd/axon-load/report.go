package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Print writes the result as a two-column table.
func (r *Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	cfg := r.Config
	members := fmt.Sprintf("%d members per room (every user joined every room)", r.Members)
	if !r.Joined {
		members = "1 member per room: the server has no join endpoint"
	}
	row("homeserver", "%s (run %s)", cfg.HS, r.RunID)
	row("load", "%d users, %d rooms, %d messages, %d senders, %d syncing users", cfg.Users, cfg.Rooms, cfg.Messages, cfg.Senders, r.SyncUsers)
	row("rooms", "%s", members)
	row("setup", "%s", ms(r.Setup))
	row("", "")
	row("sent", "%d accepted, %d failed, %d answered 429 and were retried", r.Sent, r.SendErrors, r.Retried429)
	if r.FirstError != "" {
		row("first error", "%s", r.FirstError)
	}
	row("send throughput", "%.0f messages/s (%s for all)", r.Throughput(), ms(r.SendWall))
	row("send latency", "%s", quantiles(r.Send))
	row("send-to-sync latency", "%s", quantiles(r.Delivery))
	row("delivered", "%d of %d (%d duplicates, %d missing, %d limited timelines)", r.Delivered, r.Expected, r.Duplicates, r.Missing, r.LimitedTimelines)
	row("", "")
	if r.PID != 0 {
		row("server CPU during load", "%s (%.0f%% of one core)", ms(r.LoadCPU), r.pctCore(r.LoadCPU))
	} else {
		row("server CPU", "n/a (%s)", r.ProcErr)
	}
	if cfg.DBDSN != "" {
		r.printDB(row)
	}
	if r.PID != 0 {
		if r.IdleReached {
			row("idle after load", "%s, using %s CPU", ms(r.IdleAfter), ms(r.IdleCPU))
		} else {
			row("idle after load", "not within %s (%s CPU so far)", ms(r.IdleAfter), ms(r.IdleCPU))
		}
	}
	row("load tool CPU", "%s during load (%.3fms per message, %.0f%% of one core)", ms(r.ToolCPU), r.perMsg(r.ToolCPU), r.pctCore(r.ToolCPU))
	row("initial sync", "%s", quantiles(r.InitialSync))
	row("incremental sync", "%s (nothing new)", quantiles(r.IncrementalSync))
	row("catch-up sync", "%s (since before the load)", quantiles(r.CatchUpSync))
	if r.MessagesSupported {
		row("/messages page (100)", "%s", quantiles(r.MessagesPage))
		row("/messages whole room", "%s", quantiles(r.MessagesRoom))
		row("/messages events", "%d seen, %d duplicates, %d missing", r.MessagesSeen, r.MessagesDup, r.MessagesMissing)
	} else {
		row("/messages", "n/a (the server has no /messages)")
	}
	if r.MemKnown {
		row("server memory (RSS)", "%s at start, %s after load, %s at end", mb(r.MemStart.RSS), mb(r.MemLoaded.RSS), mb(r.MemEnd.RSS))
		row("server peak (VmHWM)", "%s", mb(max(r.MemEnd.HWM, r.MemLoaded.HWM)))
	} else {
		row("server memory", "n/a")
	}
	tw.Flush()
}

// printDB writes the -db-dsn rows.
func (r *Result) printDB(row func(k, format string, args ...any)) {
	if !r.DBKnown {
		row("database CPU during load", "n/a (%s)", r.DBErr)
		row("server + database CPU", "n/a")
		return
	}
	row("database CPU during load", "%s (%.0f%% of one core, %.3fms per message; %d backends, %d more exited during the load and are not counted)",
		ms(r.DBCPU), r.pctCore(r.DBCPU), r.perMsg(r.DBCPU), r.DBBackends, r.DBGone)
	if r.PID != 0 {
		row("server + database CPU", "%.3fms per message", r.perMsg(r.LoadCPU+r.DBCPU))
	} else {
		row("server + database CPU", "n/a (no server CPU)")
	}
}

// perMsg is d in milliseconds per accepted message.
func (r *Result) perMsg(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(max(r.Sent, 1))
}

// pctCore is d as a share of one core over the sends, in percent.
func (r *Result) pctCore(d time.Duration) float64 {
	return 100 * d.Seconds() / max(r.SendWall.Seconds(), 1e-9)
}

func quantiles(s Summary) string {
	if s.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (n=%d)", ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), s.N)
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
