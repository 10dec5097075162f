// Package rpc is the polylith transport for internal APIs: one generic
// HTTP/JSON client and server pair, so a component's api/http.go declares
// each method in one line instead of hand-writing request plumbing.
//
// Every method is POST /_axon/internal/<name> with the request as JSON. A
// success is 200 with the response as JSON; a failure is a non-200 status
// with {"errcode","error"} for *apierr.Error (so errors.As works on the
// caller's side exactly as in the monolith) or {"error"} for any other error.
package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
)

// PathPrefix is where internal API methods are served.
const PathPrefix = "/_axon/internal/"

// maxBody bounds request and response bodies; internal calls carry events and
// state, never media.
const maxBody = 64 << 20

// Method is one internal API method with request type Req and response Resp.
type Method[Req, Resp any] struct{ Name string }

// NewMethod declares a method. Names are "<component>.<Method>".
func NewMethod[Req, Resp any](name string) Method[Req, Resp] { return Method[Req, Resp]{Name: name} }

// Client calls the methods of one remote component.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the component listening at baseURL
// ("http://host:port").
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

type errorBody struct {
	Code       string `json:"errcode,omitempty"`
	Msg        string `json:"error"`
	Status     int    `json:"status,omitempty"`
	SoftLogout bool   `json:"soft_logout,omitempty"`
}

// Call invokes the method on the remote component.
func (m Method[Req, Resp]) Call(ctx context.Context, c *Client, req Req) (Resp, error) {
	var resp Resp
	body, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("rpc %s: encode request: %w", m.Name, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+PathPrefix+m.Name, bytes.NewReader(body))
	if err != nil {
		return resp, fmt.Errorf("rpc %s: %w", m.Name, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(hr)
	if err != nil {
		return resp, fmt.Errorf("rpc %s: %w", m.Name, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return resp, fmt.Errorf("rpc %s: read response: %w", m.Name, err)
	}
	if res.StatusCode != http.StatusOK {
		var eb errorBody
		if err := json.Unmarshal(data, &eb); err != nil {
			return resp, fmt.Errorf("rpc %s: status %d: %s", m.Name, res.StatusCode, truncate(data))
		}
		if eb.Code != "" {
			return resp, &apierr.Error{Code: eb.Code, Msg: eb.Msg, Status: eb.Status, SoftLogout: eb.SoftLogout}
		}
		return resp, fmt.Errorf("rpc %s: remote error: %s", m.Name, eb.Msg)
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return resp, fmt.Errorf("rpc %s: decode response: %w", m.Name, err)
	}
	return resp, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// Server serves methods on a mux and remembers their names, so a test can
// check that every method of an API interface is served.
type Server struct {
	mux   *http.ServeMux
	log   *slog.Logger
	mu    sync.Mutex
	names []string
}

// NewServer serves methods on mux.
func NewServer(mux *http.ServeMux, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{mux: mux, log: log}
}

// Names returns the names served so far, sorted.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.names...)
	sort.Strings(out)
	return out
}

// Handle serves the method with h.
func (m Method[Req, Resp]) Handle(s *Server, h func(context.Context, Req) (Resp, error)) {
	s.mu.Lock()
	s.names = append(s.names, m.Name)
	s.mu.Unlock()
	s.mux.HandleFunc("POST "+PathPrefix+m.Name, func(w http.ResponseWriter, r *http.Request) {
		var req Req
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Code: apierr.CodeBadJSON, Msg: "rpc " + m.Name + ": " + err.Error()})
			return
		}
		resp, err := h(r.Context(), req)
		if err != nil {
			if e, ok := apierr.As(err); ok {
				writeJSON(w, e.HTTPStatus(), errorBody{Code: e.Code, Msg: e.Msg, Status: e.Status, SoftLogout: e.SoftLogout})
				return
			}
			if !errors.Is(err, context.Canceled) {
				s.log.ErrorContext(r.Context(), "internal api call failed", "method", m.Name, "err", err)
			}
			writeJSON(w, http.StatusInternalServerError, errorBody{Msg: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
