package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echo is what the test server saw of a request.
type echo struct {
	Method, Path, Query, Auth, ContentType, Body string
	ContentLength                                int64
}

// testServer answers with what it received, except /big with a chunked
// answer, /gzip compressed, /close with Connection: close, /error with a
// Matrix error and /wait only when the request is cancelled.
func testServer(t *testing.T, tlsServer bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/prefix/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(echo{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"), Body: string(b), ContentLength: r.ContentLength})
	})
	mux.HandleFunc("/prefix/big", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, `%c"part%d":%q`, "{,,"[i], i, strings.Repeat("x", 40<<10))
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		_, _ = w.Write([]byte("}"))
	})
	mux.HandleFunc("/prefix/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write([]byte(`{"next_batch":"zipped"}`))
		_ = zw.Close()
	})
	mux.HandleFunc("/prefix/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte(`{"next_batch":"closed"}`))
	})
	mux.HandleFunc("/prefix/error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1}`))
	})
	mux.HandleFunc("/prefix/wait", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

// clients returns the client for plain HTTP (own connections) and for TLS
// (net/http), each against its own test server.
func clients(t *testing.T) map[string]*client {
	t.Helper()
	out := map[string]*client{}
	for _, name := range []string{"http", "https"} {
		srv, _ := testServer(t, name == "https")
		c, err := newClient(srv.URL+"/prefix", 2)
		if err != nil {
			t.Fatal(err)
		}
		if name == "https" {
			if c.pool != nil {
				t.Fatalf("newClient(%s) uses its own connections, want net/http for TLS", srv.URL)
			}
			c.http = srv.Client()
		} else if c.pool == nil {
			t.Fatalf("newClient(%s) uses net/http, want its own connections", srv.URL)
		}
		t.Cleanup(c.close)
		out[name] = c
	}
	return out
}

func TestClientRequests(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			tests := []struct {
				name                string
				method, path, token string
				body                any
				want                echo
			}{
				{"get", http.MethodGet, "/echo?a=b%20c", "tok",
					nil, echo{Method: "GET", Path: "/prefix/echo", Query: "a=b%20c", Auth: "Bearer tok"}},
				{"put json", http.MethodPut, "/echo", "tok", map[string]int{"x": 1},
					echo{Method: "PUT", Path: "/prefix/echo", Auth: "Bearer tok", ContentType: "application/json", Body: `{"x":1}`, ContentLength: 7}},
				{"post without a token", http.MethodPost, "/echo", "", struct{}{},
					echo{Method: "POST", Path: "/prefix/echo", ContentType: "application/json", Body: `{}`, ContentLength: 2}},
				{"escaped path", http.MethodGet, "/rooms/%21a%3Ax%2Fy/send", "", nil,
					echo{Method: "GET", Path: "/prefix/rooms/%21a%3Ax%2Fy/send"}},
			}
			for _, tc := range tests {
				var got echo
				_, err := c.do(ctx, tc.method, tc.path, tc.token, tc.body, &got)
				if err != nil || got != tc.want {
					t.Errorf("%s: do(%s %s) = %+v, %v; want %+v", tc.name, tc.method, tc.path, got, err, tc.want)
				}
			}

			var big map[string]string
			if _, err := c.do(ctx, http.MethodGet, "/big", "", nil, &big); err != nil || len(big["part2"]) != 40<<10 {
				t.Errorf("chunked answer: %d bytes of part2, %v; want %d", len(big["part2"]), err, 40<<10)
			}
			for _, path := range []string{"/gzip", "/close", "/echo"} {
				var s syncResponse
				if _, err := c.do(ctx, http.MethodGet, path, "", nil, &s); err != nil {
					t.Errorf("do(GET %s) = %v", path, err)
				}
				if want := map[string]string{"/gzip": "zipped", "/close": "closed", "/echo": ""}[path]; s.NextBatch != want {
					t.Errorf("do(GET %s) next_batch = %q, want %q", path, s.NextBatch, want)
				}
			}

			retryCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			retried, err := c.do(retryCtx, http.MethodGet, "/error", "", nil, nil)
			var me *matrixError
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &me) && me.Code == "M_LIMIT_EXCEEDED") {
				t.Errorf("do(GET /error) = %v, want a 429 retried until the context ends", err)
			}
			if retried == 0 {
				t.Errorf("do(GET /error) retried %d times, want some", retried)
			}
		})
	}
}

// TestClientCancel checks that cancelling a request blocked on the server
// (a /sync long-poll) ends it, and that the pool still works after.
func TestClientCancel(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := c.do(ctx, http.MethodGet, "/wait", "", nil, nil)
				done <- err
			}()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled do = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancelled request did not return")
			}
			var e echo
			if _, err := c.do(t.Context(), http.MethodGet, "/echo", "", nil, &e); err != nil || e.Method != "GET" {
				t.Errorf("do after a cancel = %+v, %v; want a GET echoed", e, err)
			}
		})
	}
}

// TestPoolReusesConnections checks that answers read to the end leave the
// connection for the next request, and that a kept-alive connection the
// server closed is replaced without an error.
func TestPoolReusesConnections(t *testing.T) {
	srv, conns := testServer(t, false)
	c, err := newClient(srv.URL+"/prefix", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := range 12 {
		path := []string{"/echo", "/big", "/gzip"}[i%3]
		if _, err := c.do(t.Context(), http.MethodPut, path, "", struct{}{}, nil); err != nil {
			t.Fatalf("do(PUT %s) = %v", path, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1", n)
	}
	srv.CloseClientConnections()
	if _, err := c.do(t.Context(), http.MethodGet, "/echo", "", nil, nil); err != nil {
		t.Errorf("do after the server closed the idle connection = %v, want it sent again", err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one replaced)", n)
	}
	if _, err := c.do(t.Context(), http.MethodGet, "/close", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(c.pool.idle); n != 0 {
		t.Errorf("%d idle connections after Connection: close, want 0", n)
	}
	if _, err := c.do(t.Context(), http.MethodGet, "/echo", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (Connection: close honoured)", n)
	}
}

// TestMessageBody checks that the hand-written message content is byte
// for byte what json.Marshal made of the content map before.
func TestMessageBody(t *testing.T) {
	run := randomRunID()
	for _, seq := range []int{0, 7, 4999, 1 << 40} {
		want, err := json.Marshal(map[string]any{"msgtype": "m.text", "body": "axon-load " + run + " " + fmt.Sprint(seq),
			loadMark: loadTag{Run: run, Seq: seq}})
		if err != nil {
			t.Fatal(err)
		}
		if got := messageBody(nil, run, seq); !bytes.Equal(got, want) {
			t.Errorf("messageBody(%q, %d) = %s, want %s", run, seq, got, want)
		}
	}
}

// TestSyncQuery checks the query the /sync long-poll sends.
func TestSyncQuery(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Query())
		_, _ = w.Write([]byte(`{"next_batch":"s2","rooms":{"join":{"!a:x":{"timeline":{"limited":true,"events":[
			{"type":"m.room.message","content":{"org.axon.load":{"run":"r","seq":3}}},{"content":{"body":"other"}}]}}}}}`))
	}))
	defer srv.Close()
	c, err := newClient(srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	s, err := c.sync(t.Context(), user{Token: "t"}, "s1 +&", loadFilter, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	q := got.Load().(url.Values)
	if q["since"][0] != "s1 +&" || q["filter"][0] != loadFilter || q["timeout"][0] != "30000" || len(q) != 3 {
		t.Errorf("sync query = %v, want since, filter and timeout", q)
	}
	jr := s.Rooms.Join["!a:x"]
	if s.NextBatch != "s2" || !jr.Timeline.Limited || len(jr.Timeline.Events) != 2 ||
		*jr.Timeline.Events[0].Content.Tag != (loadTag{Run: "r", Seq: 3}) || jr.Timeline.Events[1].Content.Tag != nil {
		t.Errorf("sync answer = %+v", s)
	}
}

// FuzzPoolAnswer feeds arbitrary bytes to the pool as the server's answer:
// it must return an error or a status, never hang or panic, and a 2xx
// body must be what a net/http client reads.
func FuzzPoolAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 5\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\n{\"a\":1}"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		p := newConnPool("pipe", "pipe", 1, 5*time.Second)
		p.dial = func(context.Context) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
					return
				}
				_, _ = server.Write(answer)
			}()
			return client, nil
		}
		defer p.closeIdle()
		var body bytes.Buffer
		status, err := p.roundTrip(t.Context(), http.MethodGet, "/x", "tok", nil, &body)
		res, refErr := http.ReadResponse(bufio.NewReader(bytes.NewReader(answer)), nil)
		if refErr != nil || res.Header.Get("Content-Encoding") != "" {
			return
		}
		want, refErr := io.ReadAll(res.Body)
		if refErr == nil && (err != nil || status != res.StatusCode || !bytes.Equal(body.Bytes(), want)) {
			t.Errorf("roundTrip = %d %q, %v; net/http reads %d %q", status, body.Bytes(), err, res.StatusCode, want)
		}
	})
}
