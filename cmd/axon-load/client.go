package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// client is a minimal Client-Server API client: plain HTTP and JSON, so
// the tool measures the server rather than a client library.
type client struct {
	// base is put before every request path: the whole base URL for
	// http, only its path for pool.
	base string
	// pool serves http:// servers, the setup the tool is built for; it
	// costs the shared machine far less CPU per request than http.Client.
	pool *connPool
	// http serves any other base URL (https, where HTTP/2 may be
	// negotiated as before).
	http *http.Client
}

// newClient connects to base; conns is how many requests may run at once.
func newClient(base string, conns int) (*client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("homeserver URL %q: %w", base, err)
	}
	const timeout = 2 * time.Minute
	if u.Scheme == "http" && u.User == nil && u.RawQuery == "" && u.Fragment == "" && u.Host != "" {
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
		return &client{base: u.EscapedPath(), pool: newConnPool(addr, u.Host, conns*2, timeout)}, nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns * 2
	t.MaxIdleConnsPerHost = conns * 2
	return &client{base: base, http: &http.Client{Transport: t, Timeout: timeout}}, nil
}

// close closes the idle connections.
func (c *client) close() {
	if c.pool != nil {
		c.pool.closeIdle()
	} else {
		c.http.CloseIdleConnections()
	}
}

// matrixError is a non-2xx answer.
type matrixError struct {
	Status       int
	Code         string `json:"errcode"`
	Msg          string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms"`
	// Body is the whole answer: a 401 of user-interactive auth carries
	// the session there.
	Body []byte `json:"-"`
}

func (e *matrixError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Msg)
}

// unsupported reports whether err says the server has no such endpoint.
func unsupported(err error) bool {
	var me *matrixError
	return errors.As(err, &me) && (me.Status == http.StatusNotFound || me.Status == http.StatusMethodNotAllowed) &&
		(me.Code == "M_UNRECOGNIZED" || me.Code == "")
}

// do sends a request with an optional JSON body and decodes a 2xx answer
// into out (if not nil). A 429 is retried after the server's retry_after_ms;
// retried counts those retries.
func (c *client) do(ctx context.Context, method, path, token string, body, out any) (retried int, err error) {
	var data []byte
	if body != nil {
		if data, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	return c.retry(ctx, method, path, token, data, out)
}

// doRaw is do with the body already encoded and the answer ignored.
func (c *client) doRaw(ctx context.Context, method, path, token string, data []byte) (retried int, err error) {
	return c.retry(ctx, method, path, token, data, nil)
}

// retry sends an encoded request until it is answered with anything but
// 429, waiting retry_after_ms between tries.
func (c *client) retry(ctx context.Context, method, path, token string, data []byte, out any) (retried int, err error) {
	for {
		err = c.once(ctx, method, path, token, data, out)
		var me *matrixError
		if !errors.As(err, &me) || me.Status != http.StatusTooManyRequests {
			return retried, err
		}
		retried++
		wait := time.Duration(max(me.RetryAfterMS, 10)) * time.Millisecond
		select {
		case <-ctx.Done():
			return retried, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// bodies are answer buffers, reused: a /sync answer is read whole before
// it is decoded.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *client) once(ctx context.Context, method, path, token string, data []byte, out any) error {
	body := bodies.Get().(*bytes.Buffer)
	defer bodies.Put(body)
	var status int
	var err error
	if c.pool != nil {
		status, err = c.pool.roundTrip(ctx, method, c.base+path, token, data, body)
	} else {
		status, err = c.viaHTTP(ctx, method, path, token, data, body)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	raw := body.Bytes()
	if status/100 != 2 {
		me := &matrixError{Status: status, Body: bytes.Clone(raw)}
		_ = json.Unmarshal(raw, me)
		return fmt.Errorf("%s %s: %w", method, path, me)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// viaHTTP is one request through net/http; the answer's body is read
// whole into body.
func (c *client) viaHTTP(ctx context.Context, method, path, token string, data []byte, body *bytes.Buffer) (int, error) {
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	// Read to the end and closed, so the connection is reused.
	defer res.Body.Close()
	body.Reset()
	if _, err := body.ReadFrom(res.Body); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return res.StatusCode, nil
}

// user is a registered account with one device.
type user struct {
	ID    string `json:"user_id"`
	Token string `json:"access_token"`
}

// register creates the account localpart, with the shared-secret admin API
// when secret is set, else through user-interactive auth with m.login.dummy.
func (c *client) register(ctx context.Context, localpart, password, secret string) (user, error) {
	var u user
	if secret != "" {
		var n struct {
			Nonce string `json:"nonce"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/_synapse/admin/v1/register", "", nil, &n); err != nil {
			return u, fmt.Errorf("register %s: %w", localpart, err)
		}
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(n.Nonce + "\x00" + localpart + "\x00" + password + "\x00notadmin"))
		body := map[string]any{"nonce": n.Nonce, "username": localpart, "password": password,
			"admin": false, "mac": hex.EncodeToString(mac.Sum(nil))}
		if _, err := c.do(ctx, http.MethodPost, "/_synapse/admin/v1/register", "", body, &u); err != nil {
			return u, fmt.Errorf("register %s: %w", localpart, err)
		}
		return u, nil
	}
	// The first request only opens a user-interactive auth session.
	body := map[string]any{"username": localpart, "password": password}
	_, err := c.do(ctx, http.MethodPost, "/_matrix/client/v3/register", "", body, &u)
	var me *matrixError
	if err == nil {
		return u, nil
	} else if !errors.As(err, &me) || me.Status != http.StatusUnauthorized {
		return u, fmt.Errorf("register %s: %w", localpart, err)
	}
	var flows struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal(me.Body, &flows); err != nil {
		return u, fmt.Errorf("register %s: decode auth flows: %w", localpart, err)
	}
	body["auth"] = map[string]string{"type": "m.login.dummy", "session": flows.Session}
	if _, err := c.do(ctx, http.MethodPost, "/_matrix/client/v3/register", "", body, &u); err != nil {
		return u, fmt.Errorf("register %s: %w", localpart, err)
	}
	return u, nil
}

// createRoom creates a public room and returns its id.
func (c *client) createRoom(ctx context.Context, u user, name string) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	body := map[string]any{"preset": "public_chat", "name": name}
	if _, err := c.do(ctx, http.MethodPost, "/_matrix/client/v3/createRoom", u.Token, body, &out); err != nil {
		return "", fmt.Errorf("create room: %w", err)
	}
	return out.RoomID, nil
}

// join joins roomID through POST /rooms/{roomId}/join, or POST
// /join/{roomIdOrAlias} when the server lacks the first.
func (c *client) join(ctx context.Context, u user, roomID string) error {
	_, err := c.do(ctx, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join", u.Token, struct{}{}, nil)
	if unsupported(err) {
		_, err = c.do(ctx, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(roomID), u.Token, struct{}{}, nil)
	}
	if err != nil {
		return fmt.Errorf("join %s as %s: %w", roomID, u.ID, err)
	}
	return nil
}

// loadMark is the content field that identifies the tool's messages.
const loadMark = "org.axon.load"

type loadTag struct {
	Run string `json:"run"`
	Seq int    `json:"seq"`
}

// send sends message seq of this run into roomID.
func (c *client) send(ctx context.Context, u user, roomID, run string, seq int) (retried int, err error) {
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/" + run + "-" + strconv.Itoa(seq)
	return c.doRaw(ctx, http.MethodPut, path, u.Token, messageBody(make([]byte, 0, 128), run, seq))
}

// messageBody appends the content of message seq to dst: the bytes
// json.Marshal gives for the map {"msgtype": "m.text", "body": ...,
// "org.axon.load": {run, seq}}, without reflection. Run ids are [a-z0-9]
// (randomRunID), so they need no escaping.
func messageBody(dst []byte, run string, seq int) []byte {
	dst = append(dst, `{"body":"axon-load `...)
	dst = append(dst, run...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, `","msgtype":"m.text","`+loadMark+`":{"run":"`...)
	dst = append(dst, run...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	return append(dst, "}}"...)
}

// syncEvent is the part of a timeline event the tool reads.
type syncEvent struct {
	Content struct {
		Tag *loadTag `json:"org.axon.load"`
	} `json:"content"`
}

type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events  []syncEvent `json:"events"`
				Limited bool        `json:"limited"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// loadFilter asks for the longest timeline the spec lets a server cap, so
// a long-poll that wakes late still carries every new event.
const loadFilter = `{"room":{"timeline":{"limit":100}}}`

// sync is GET /sync; since "" is an initial sync, filter "" the default.
func (c *client) sync(ctx context.Context, u user, since, filter string, timeout time.Duration) (syncResponse, error) {
	// The query is written out rather than through url.Values: the
	// long-poll sends one per message.
	path := "/_matrix/client/v3/sync?"
	if filter != "" {
		path += "filter=" + url.QueryEscape(filter) + "&"
	}
	if since != "" {
		path += "since=" + url.QueryEscape(since) + "&"
	}
	path += "timeout=" + strconv.FormatInt(timeout.Milliseconds(), 10)
	var out syncResponse
	_, err := c.do(ctx, http.MethodGet, path, u.Token, nil, &out)
	return out, err
}

type messagesResponse struct {
	Chunk []syncEvent `json:"chunk"`
	End   string      `json:"end"`
}

// messages is one backward page of GET /rooms/{roomId}/messages.
func (c *client) messages(ctx context.Context, u user, roomID, from string, limit int) (messagesResponse, error) {
	q := url.Values{"dir": {"b"}, "limit": {strconv.Itoa(limit)}}
	if from != "" {
		q.Set("from", from)
	}
	var out messagesResponse
	_, err := c.do(ctx, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?"+q.Encode(), u.Token, nil, &out)
	return out, err
}
