package routing

import (
	"net/url"
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		errcode string
		check   func(r Request) bool
	}{
		{name: "empty", query: "", check: func(r Request) bool {
			return r.Since == nil && r.Timeout == 0 && !r.FullState && r.Filter.TimelineLimit() == DefaultTimelineLimit
		}},
		{name: "since", query: "since=s12", check: func(r Request) bool { return r.Since != nil && r.Since.Get(streams.PDU) == 12 }},
		{name: "empty since is initial", query: "since=", check: func(r Request) bool { return r.Since == nil }},
		{name: "timeout", query: "timeout=30000", check: func(r Request) bool { return r.Timeout == 30*time.Second }},
		{name: "timeout capped", query: "timeout=99999999999999999999999", check: func(r Request) bool { return r.Timeout == MaxTimeout }},
		{name: "zero timeout", query: "timeout=0", check: func(r Request) bool { return r.Timeout == 0 }},
		{name: "full state", query: "full_state=true&use_state_after=true", check: func(r Request) bool { return r.FullState && r.UseStateAfter }},
		{name: "set presence", query: "set_presence=offline", check: func(r Request) bool { return r.SetPresence == "offline" }},
		{name: "inline filter", query: `filter={"room":{"timeline":{"limit":5},"include_leave":true,"rooms":["!a:x"]},"event_format":"federation"}`,
			check: func(r Request) bool {
				return r.Filter.TimelineLimit() == 5 && r.Filter.Room.IncludeLeave && r.Filter.EventFormat == "federation" &&
					r.Filter.IncludesRoom("!a:x") && !r.Filter.IncludesRoom("!b:x")
			}},
		{name: "filter limit capped", query: `filter={"room":{"timeline":{"limit":100000}}}`, check: func(r Request) bool { return r.Filter.TimelineLimit() == MaxTimelineLimit }},
		{name: "not_rooms wins", query: `filter={"room":{"rooms":["!a:x"],"not_rooms":["!a:x"]}}`, check: func(r Request) bool { return !r.Filter.IncludesRoom("!a:x") }},
		{name: "filter id", query: "filter=66696p746572", check: func(r Request) bool {
			return r.FilterID == "66696p746572" && r.Filter.TimelineLimit() == DefaultTimelineLimit
		}},
		{name: "bad since", query: "since=garbage", errcode: apierr.CodeInvalidParam},
		{name: "negative since", query: "since=s-1", errcode: apierr.CodeInvalidParam},
		{name: "negative timeout", query: "timeout=-1", errcode: apierr.CodeInvalidParam},
		{name: "non-numeric timeout", query: "timeout=soon", errcode: apierr.CodeInvalidParam},
		{name: "empty timeout", query: "timeout=", errcode: apierr.CodeInvalidParam},
		{name: "fractional timeout", query: "timeout=1.5", errcode: apierr.CodeInvalidParam},
		{name: "bad full_state", query: "full_state=yes", errcode: apierr.CodeInvalidParam},
		{name: "bad set_presence", query: "set_presence=busy", errcode: apierr.CodeInvalidParam},
		{name: "filter not json", query: "filter={nope", errcode: apierr.CodeNotJSON},
		{name: "filter wrong shape", query: `filter={"room":{"timeline":{"limit":"five"}}}`, errcode: apierr.CodeBadJSON},
		{name: "filter zero limit", query: `filter={"room":{"timeline":{"limit":0}}}`, errcode: apierr.CodeBadJSON},
		{name: "filter bad format", query: `filter={"event_format":"xml"}`, errcode: apierr.CodeBadJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseRequest(q)
			if tc.errcode != "" {
				if !apierr.HasCode(err, tc.errcode) {
					t.Fatalf("ParseRequest(%q) = %+v, %v; want %s", tc.query, r, err, tc.errcode)
				}
				return
			}
			if err != nil || !tc.check(r) {
				t.Fatalf("ParseRequest(%q) = %+v, %v", tc.query, r, err)
			}
		})
	}
}

// FuzzParseRequest checks that any query parses or fails with a Matrix
// error, and that what parses is within bounds.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"", "since=s1&timeout=100", "timeout=-1", "full_state=true", `filter={"room":{"timeline":{"limit":3}}}`,
		"filter=abc", "since=s1_2_3&set_presence=online", `filter={"room":{"rooms":null}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseRequest(q)
		if err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("ParseRequest(%q) = %v, not a Matrix error", raw, err)
			}
			return
		}
		if r.Timeout < 0 || r.Timeout > MaxTimeout {
			t.Fatalf("ParseRequest(%q): timeout %v out of bounds", raw, r.Timeout)
		}
		if l := r.Filter.TimelineLimit(); l <= 0 || l > MaxTimelineLimit {
			t.Fatalf("ParseRequest(%q): timeline limit %d out of bounds", raw, l)
		}
		if r.Since != nil && r.Since.Get(streams.PDU) < 0 {
			t.Fatalf("ParseRequest(%q): negative since", raw)
		}
	})
}
