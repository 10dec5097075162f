package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// connPool runs HTTP/1.1 requests on keep-alive connections in the calling
// goroutine. net/http's Transport hands every request to two goroutines of
// its own (a writer and a reader per connection) and back, and the tool
// shares its machine with the server it measures: those hand-offs, the
// thread wake-ups they cause and the per-request contexts were most of the
// tool's CPU. The wire format is unchanged: the same request line and
// headers the Transport sends, and net/http parses the answers.
type connPool struct {
	addr, host string // dial address, Host header
	timeout    time.Duration
	maxIdle    int
	dial       func(ctx context.Context) (net.Conn, error)

	mu   sync.Mutex
	idle []*conn // most recently used last
}

// conn is one connection, used by one request at a time.
type conn struct {
	nc   net.Conn
	r    countingReader
	br   *bufio.Reader
	bw   *bufio.Writer
	used bool // has carried a request: the server may have closed it since
}

// countingReader counts the bytes read, so a failure can tell whether the
// server answered anything at all.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func newConnPool(addr, host string, maxIdle int, timeout time.Duration) *connPool {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &connPool{addr: addr, host: host, maxIdle: maxIdle, timeout: timeout,
		dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
}

func (p *connPool) get(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.addr, err)
	}
	c := &conn{nc: nc}
	c.r.r = nc
	c.br = bufio.NewReaderSize(&c.r, 16<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	return c, nil
}

func (p *connPool) put(c *conn) {
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// closeIdle closes the idle connections.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// roundTrip sends one request and reads the whole answer's body into body.
// A request that finds its kept-alive connection closed by the server (not
// a byte of answer) is sent again on another connection. Unlike net/http
// this includes POSTs: the server closes idle connections, never one it
// is answering, and the tool's POSTs are set-up steps that fail loudly if
// repeated (register) or do no harm (join, an extra room).
func (p *connPool) roundTrip(ctx context.Context, method, path, token string, data []byte, body *bytes.Buffer) (int, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		c, err := p.get(ctx)
		if err != nil {
			return 0, err
		}
		used, read := c.used, c.r.n
		status, keep, err := p.exchange(ctx, c, method, path, token, data, body)
		if err == nil && keep {
			c.used = true
			p.put(c)
			return status, nil
		}
		c.nc.Close()
		if err == nil {
			return status, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, ctxErr
		}
		if used && c.r.n == read {
			continue
		}
		return 0, err
	}
}

// exchange writes the request on c and reads the answer; keep says whether
// c can carry another request.
func (p *connPool) exchange(ctx context.Context, c *conn, method, path, token string, data []byte, body *bytes.Buffer) (status int, keep bool, err error) {
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, false, fmt.Errorf("set deadline: %w", err)
	}
	// Cancelling ctx ends a long-poll at once: the blocked read fails. If
	// the cancellation raced the answer, c is not reused: the deadline it
	// sets may land after the next request's.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			keep = false
		}
	}()

	writeRequest(c.bw, method, p.host, path, token, data)
	if err := c.bw.Flush(); err != nil {
		return 0, false, fmt.Errorf("write request: %w", err)
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, fmt.Errorf("read answer: %w", err)
	}
	defer res.Body.Close()
	var rd io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			return 0, false, fmt.Errorf("read gzip answer: %w", err)
		}
		rd = zr
	}
	body.Reset()
	if _, err := body.ReadFrom(rd); err != nil {
		return 0, false, fmt.Errorf("read body: %w", err)
	}
	// The body is read to its end, so the next answer starts in c.br.
	return res.StatusCode, !res.Close, nil
}

// writeRequest writes the request line and the headers net/http's
// Transport would send (it also asks for gzip), then the body.
func writeRequest(w *bufio.Writer, method, host, path, token string, data []byte) {
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\nUser-Agent: Go-http-client/1.1\r\n")
	if data != nil || method == http.MethodPost || method == http.MethodPut {
		var n [20]byte
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(n[:0], int64(len(data)), 10))
		w.WriteString("\r\n")
	}
	if token != "" {
		w.WriteString("Authorization: Bearer ")
		w.WriteString(token)
		w.WriteString("\r\n")
	}
	if data != nil {
		w.WriteString("Content-Type: application/json\r\n")
	}
	w.WriteString("Accept-Encoding: gzip\r\n\r\n")
	w.Write(data)
}
