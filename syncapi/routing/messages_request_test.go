package routing

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

func TestParseMessagesRequest(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		errcode string
		check   func(r MessagesRequest) bool
	}{
		{name: "backward default", query: "dir=b", check: func(r MessagesRequest) bool {
			return !r.Forward && r.From == nil && r.To == nil && r.Limit == DefaultMessagesLimit
		}},
		{name: "forward with tokens", query: "dir=f&from=s5_1&to=s9&limit=3", check: func(r MessagesRequest) bool {
			return r.Forward && r.From.Get(streams.PDU) == 5 && r.FromText == "s5_1" && r.To.Get(streams.PDU) == 9 && r.Limit == 3
		}},
		{name: "empty from is none", query: "dir=b&from=", check: func(r MessagesRequest) bool { return r.From == nil }},
		{name: "limit capped", query: "dir=b&limit=999999999999999999999999", check: func(r MessagesRequest) bool { return r.Limit == MaxMessagesLimit }},
		{name: "limit zero", query: "dir=b&limit=0", check: func(r MessagesRequest) bool { return r.Limit == 0 }},
		{name: "filter", query: `dir=b&filter={"types":["m.room.message"],"lazy_load_members":true,"contains_url":true}`, check: func(r MessagesRequest) bool {
			return r.Filter.LazyLoadMembers && r.Filter.Types != nil && *r.Filter.ContainsURL &&
				r.Filter.Allows(storage.Event{Type: "m.room.message", JSON: []byte(`{"content":{"url":"mxc://x/y"}}`)}) &&
				!r.Filter.Allows(storage.Event{Type: "m.room.message", JSON: []byte(`{"content":{}}`)})
		}},
		{name: "filter id", query: "dir=b&filter=66696p746572", check: func(r MessagesRequest) bool { return r.FilterID == "66696p746572" }},
		{name: "no dir", query: "", errcode: apierr.CodeInvalidParam},
		{name: "bad dir", query: "dir=backwards", errcode: apierr.CodeInvalidParam},
		{name: "bad from", query: "dir=b&from=t12", errcode: apierr.CodeInvalidParam},
		{name: "bad to", query: "dir=b&to=s1_x", errcode: apierr.CodeInvalidParam},
		{name: "signed limit", query: "dir=b&limit=%2B3", errcode: apierr.CodeInvalidParam},
		{name: "empty limit", query: "dir=b&limit=", errcode: apierr.CodeInvalidParam},
		{name: "filter not JSON", query: "dir=b&filter={", errcode: apierr.CodeNotJSON},
		{name: "filter wrong shape", query: `dir=b&filter={"not_senders":"x"}`, errcode: apierr.CodeBadJSON},
		{name: "filter limit zero", query: `dir=b&filter={"limit":0}`, errcode: apierr.CodeBadJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseMessagesRequest(q)
			if tc.errcode != "" {
				if !apierr.HasCode(err, tc.errcode) {
					t.Fatalf("ParseMessagesRequest(%q) = %+v, %v; want %s", tc.query, r, err, tc.errcode)
				}
				return
			}
			if err != nil || !tc.check(r) {
				t.Fatalf("ParseMessagesRequest(%q) = %+v, %v", tc.query, r, err)
			}
		})
	}
}

// FuzzParseMessagesRequest checks that any query parses or fails with a
// Matrix error, and that what parses is within bounds.
func FuzzParseMessagesRequest(f *testing.F) {
	for _, s := range []string{"dir=b", "dir=f&from=s1_2&to=s3&limit=5", "dir=x", "dir=b&limit=-1", `dir=b&filter={"types":["*"]}`,
		"dir=b&filter=abc", `dir=f&filter={"limit":3,"senders":null}`, "dir=b&from=s99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseMessagesRequest(q)
		if err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("ParseMessagesRequest(%q) = %v, not a Matrix error", raw, err)
			}
			return
		}
		if r.Limit < 0 || r.Limit > MaxMessagesLimit {
			t.Fatalf("ParseMessagesRequest(%q): limit %d out of bounds", raw, r.Limit)
		}
		if r.Filter.Limit != nil && *r.Filter.Limit <= 0 {
			t.Fatalf("ParseMessagesRequest(%q): filter limit %d accepted", raw, *r.Filter.Limit)
		}
		for _, tok := range []*streams.Token{r.From, r.To} {
			if tok != nil && tok.Get(streams.PDU) < 0 {
				t.Fatalf("ParseMessagesRequest(%q): negative position", raw)
			}
		}
	})
}

// FuzzParseTimestampRequest: any query parses or fails with
// M_INVALID_PARAM.
func FuzzParseTimestampRequest(f *testing.F) {
	for _, s := range []string{"ts=1&dir=f", "ts=-5&dir=b", "ts=x&dir=f", "dir=f", "ts=1", "ts=%2B1&dir=f", "ts=99999999999999999999&dir=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if _, _, err := parseTimestampRequest(q); err != nil && !apierr.HasCode(err, apierr.CodeInvalidParam) {
			t.Fatalf("parseTimestampRequest(%q) = %v", raw, err)
		}
	})
}

// TestHiddenRun checks hiddenRun against visible() position by position:
// a run it reports hidden holds no visible message, and its bounds are
// the neighbouring changes.
func TestHiddenRun(t *testing.T) {
	values := []string{worldReadable, shared, invited, joined}
	memberships := []string{join, invite, leave, ban}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		v := &visibility{userID: "@me:x"}
		used := map[streams.Position]bool{}
		var pos streams.Position
		for range rng.IntN(5) {
			pos += streams.Position(1 + rng.IntN(6))
			v.history = append(v.history, change{pos, values[rng.IntN(len(values))]})
			used[pos] = true
		}
		pos = 0
		for range rng.IntN(5) {
			pos += streams.Position(1 + rng.IntN(6))
			for used[pos] { // one change per position, as one event makes it
				pos++
			}
			v.membership = append(v.membership, change{pos, memberships[rng.IntN(len(memberships))]})
		}
		for p := streams.Position(1); p < 40; p++ {
			lo, hi, hidden := v.hiddenRun(p)
			if !hidden {
				continue
			}
			if lo >= p || hi <= p {
				t.Fatalf("%+v: run (%d, %d) around %d", v, lo, hi, p)
			}
			for q := lo + 1; q < hi && q < 60; q++ {
				if v.visible(storage.Event{Position: q, Type: "m.room.message"}) {
					t.Fatalf("%+v: run (%d, %d) around %d hides visible %d", v, lo, hi, p, q)
				}
			}
		}
	}
}

func TestWithRoomID(t *testing.T) {
	got := withRoomID(json.RawMessage(`{"content":{},"type":"m.x"}`), `!a"b:x`)
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil || m["room_id"] != `!a"b:x` || m["type"] != "m.x" {
		t.Fatalf("withRoomID = %s, %v", got, err)
	}
}

func TestRedactedBecause(t *testing.T) {
	in := `{"type":"m.room.redaction","sender":"@a:x","content":{"reason":"r"},"redacts":"$t","event_id":"$r",` +
		`"room_id":"!r:x","origin_server_ts":5,"hashes":{"sha256":"x"},"signatures":{},"auth_events":[],"prev_events":[],"depth":3}`
	var got map[string]any
	if err := json.Unmarshal(redactedBecause(json.RawMessage(in)), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"hashes", "signatures", "auth_events", "prev_events", "depth"} {
		if _, ok := got[k]; ok {
			t.Fatalf("redacted_because keeps %s: %v", k, got)
		}
	}
	if got["event_id"] != "$r" || got["redacts"] != "$t" || got["room_id"] != "!r:x" || got["sender"] != "@a:x" {
		t.Fatalf("redacted_because = %v", got)
	}
	if s := string(redactedBecause(json.RawMessage(`"x"`))); s != `"x"` {
		t.Fatalf("non-object = %s", s)
	}
}

func TestParseIgnoredUsers(t *testing.T) {
	if got := parseIgnoredUsers([]byte(`{"ignored_users":{"@a:x":{},"@b:x":{}}}`)); !got["@a:x"] || !got["@b:x"] || len(got) != 2 {
		t.Fatalf("parseIgnoredUsers = %v", got)
	}
	for _, in := range []string{``, `{}`, `{"ignored_users":[]}`, `nope`} {
		if got := parseIgnoredUsers([]byte(in)); len(got) != 0 {
			t.Fatalf("parseIgnoredUsers(%s) = %v", in, got)
		}
	}
}
