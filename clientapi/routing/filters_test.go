package routing

import (
	"encoding/json"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
)

func TestCheckFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		code   string // "" when valid
	}{
		{`{}`, ""},
		{`{"room":{"timeline":{"limit":10,"types":["m.room.message"]},"lazy_load_members":true}}`, ""},
		{`{"event_format":"federation","event_fields":["content.body"]}`, ""},
		{`{"room":{"timeline":{"limit":"10"}}}`, apierr.CodeBadJSON},
		{`{"room":{"state":{"limit":0}}}`, apierr.CodeBadJSON},
		{`{"presence":{"senders":"@a:b"}}`, apierr.CodeBadJSON},
		{`{"event_format":"xml"}`, apierr.CodeBadJSON},
		{`{"room":[]}`, apierr.CodeBadJSON},
	} {
		err := checkFilter(json.RawMessage(tc.filter))
		if tc.code == "" {
			if err != nil {
				t.Errorf("checkFilter(%s) = %v, want valid", tc.filter, err)
			}
			continue
		}
		if e, ok := apierr.As(err); !ok || e.Code != tc.code {
			t.Errorf("checkFilter(%s) = %v, want %s", tc.filter, err, tc.code)
		}
	}
}

// FuzzCheckFilter checks that no input makes the filter validation panic
// or fail with anything but a Matrix error.
func FuzzCheckFilter(f *testing.F) {
	for _, s := range []string{`{}`, `{"room":{"timeline":{"limit":1}}}`, `{"event_format":"client"}`, `{"room":{"rooms":["!a:b"]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		if err := checkFilter(json.RawMessage(s)); err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("checkFilter(%q) = %v, not a Matrix error", s, err)
			}
		}
	})
}
