package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const (
	// defaultHealthAddr is the client API listener of the container image.
	defaultHealthAddr = "127.0.0.1:8008"
	// healthTimeout bounds one check. Docker runs the check every second
	// (HEALTHCHECK --interval=1s), so a slower answer is as good as none.
	healthTimeout = time.Second
)

// runHealthcheck implements `axon healthcheck [-addr host:port]`: it asks
// the running server for /_matrix/client/versions and exits 0 on 200 OK, 1
// otherwise. It exists because the container image is built FROM scratch,
// with no shell or curl for Docker's HEALTHCHECK to run. The address
// defaults to $AXON_HTTP_ADDR, then to 127.0.0.1:8008.
func runHealthcheck(args []string) int {
	return healthcheckTo(context.Background(), args, os.Stderr)
}

func healthcheckTo(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := defaultHealthAddr
	if env := os.Getenv("AXON_HTTP_ADDR"); env != "" {
		addr = env
	}
	fs.StringVar(&addr, "addr", addr, "client API address, host:port or an http:// URL (default from $AXON_HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthcheck: unexpected arguments %q\n", fs.Args())
		return 1
	}
	if err := probeVersions(ctx, addr); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// probeVersions returns nil if GET /_matrix/client/versions at addr answers
// 200 within healthTimeout.
func probeVersions(ctx context.Context, addr string) error {
	base := strings.TrimSuffix(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	url := base + "/_matrix/client/versions"
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", url, err)
	}
	// A proxy from the environment must not stand between the check and
	// the server it checks; nor must a connection be kept for a process
	// that exits right away.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	// Reading the body lets the server finish its write without a reset
	// showing up in its logs every second.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	return nil
}
