// Command axon-load drives any Matrix homeserver over the Client-Server API
// only and prints what it measured: send throughput and latency, send-to-sync
// delivery through a long-polling /sync, how long the server keeps working
// after the load stops, sync and /messages times, the server's memory, and
// its own CPU during the sends (it shares the machine with the server).
//
//	axon-load -hs http://127.0.0.1:8008 -shared-secret s3cret \
//	    -users 20 -rooms 10 -messages 5000 -senders 8
//
// Users are registered with the shared-secret admin API when -shared-secret
// is given, else with m.login.dummy. Rooms are public and every user joins
// every room; a server without a join endpoint is measured with the room's
// creator as its only member (the table says so). CPU and memory figures need
// the server's process on this machine: -pid, or found by the port it listens
// on. -db-dsn adds the CPU of its PostgreSQL backends, if on this machine too.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"time"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The tool's heap is a few MB of short-lived answers; collecting it
		// less often leaves the shared cores to the server.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintln(stderr, "axon-load:", err)
			return 1
		}
		defer stop(stderr)
	}
	res, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "axon-load:", err)
		return 1
	}
	res.Print(stdout)
	return 0
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("axon-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	fs.StringVar(&c.HS, "hs", "http://127.0.0.1:8008", "homeserver client API base `URL`")
	fs.IntVar(&c.Users, "users", 20, "users to register")
	fs.IntVar(&c.Rooms, "rooms", 10, "rooms to create")
	fs.IntVar(&c.Messages, "messages", 5000, "messages to send in total")
	fs.IntVar(&c.Senders, "senders", 8, "concurrent senders")
	fs.IntVar(&c.Syncers, "syncers", 1, "users whose long-polling /sync measures delivery")
	fs.StringVar(&c.SharedSecret, "shared-secret", "", "registration shared secret (else m.login.dummy)")
	fs.IntVar(&c.PID, "pid", 0, "server process id (default: found by the listening port)")
	fs.StringVar(&c.DBDSN, "db-dsn", "", "the server's PostgreSQL `URL`, to measure its backends' CPU during the load")
	fs.DurationVar(&c.IdleMax, "idle-max", 2*time.Minute, "how long to wait for the server to go idle after the load")
	fs.DurationVar(&c.DrainMax, "drain-max", 30*time.Second, "how long to wait for undelivered messages after the load")
	// Profiling the tool itself is for its developers; -h leaves it out.
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the tool's own CPU profile to `file`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage of axon-load:")
		visible := flag.NewFlagSet("axon-load", flag.ContinueOnError)
		visible.SetOutput(stderr)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != "cpuprofile" {
				visible.Var(f.Value, f.Name, f.Usage)
				visible.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		visible.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "axon-load:", err)
		return c, err
	}
	return c, nil
}

// startCPUProfile profiles the tool into path until the returned func runs.
func startCPUProfile(path string) (stop func(io.Writer), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func(w io.Writer) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(w, "axon-load: cpu profile:", err)
		}
	}, nil
}
