package routing

import (
	"net/url"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

func TestParseSearchRequest(t *testing.T) {
	tests := []struct {
		body    string
		errcode string
	}{
		{body: `{"search_categories":{}}`},
		{body: `{"search_categories":{"room_events":{"search_term":"a","keys":["content.body","content.topic"],"order_by":"recent",` +
			`"filter":{"rooms":["!a:x"],"limit":3},"event_context":{"before_limit":0,"include_profile":true},` +
			`"groupings":{"group_by":[{"key":"sender"}]},"include_state":true}}}`},
		{body: ``, errcode: apierr.CodeNotJSON},
		{body: `{`, errcode: apierr.CodeNotJSON},
		{body: `[]`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{}}}`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{"search_term":"a","keys":["content.x"]}}}`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{"search_term":"a","order_by":"x"}}}`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{"search_term":"a","filter":{"limit":0}}}}`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{"search_term":"a","event_context":{"after_limit":-1}}}}`, errcode: apierr.CodeBadJSON},
		{body: `{"search_categories":{"room_events":{"search_term":"a","groupings":{"group_by":[{"key":"type"}]}}}}`, errcode: apierr.CodeBadJSON},
	}
	for _, tc := range tests {
		_, err := ParseSearchRequest([]byte(tc.body))
		if tc.errcode == "" {
			if err != nil {
				t.Errorf("ParseSearchRequest(%s) = %v", tc.body, err)
			}
			continue
		}
		if ae, ok := apierr.As(err); !ok || ae.Code != tc.errcode {
			t.Errorf("ParseSearchRequest(%s) = %v, want %s", tc.body, err, tc.errcode)
		}
	}
}

func TestSearchToken(t *testing.T) {
	for _, tok := range []searchToken{{upTo: 5, byRank: true, next: 20}, {upTo: 99, next: 7}} {
		got, err := parseSearchToken(tok.String())
		if err != nil || got != tok {
			t.Errorf("round trip %v = %v, %v", tok, got, err)
		}
	}
	for _, bad := range []string{"", "r", "x1_2", "r1", "r-1_2", "t1_-2", "r1_2_3", "tA_1"} {
		if _, err := parseSearchToken(bad); err == nil {
			t.Errorf("parseSearchToken(%q) accepted", bad)
		}
	}
}

// FuzzParseSearchRequest checks that any body parses or fails with a
// Matrix error, and that what parses is within the spec's enums.
func FuzzParseSearchRequest(f *testing.F) {
	for _, s := range []string{
		`{"search_categories":{}}`,
		`{"search_categories":{"room_events":{"search_term":"martians and men","keys":["content.body"],"order_by":"recent","groupings":{"group_by":[{"key":"room_id"}]}}}}`,
		`{"search_categories":{"room_events":{"search_term":"x","filter":{"limit":-5,"types":null}}}}`,
		`{"search_categories":{"room_events":{"search_term":"x","event_context":{"before_limit":3,"after_limit":1e99}}}}`,
		`{"search_categories":null}`, `null`, `"x"`, `{"search_categories":{"room_events":{"search_term":null}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseSearchRequest(body)
		if err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("ParseSearchRequest(%q) = %v, not a Matrix error", body, err)
			}
			return
		}
		c := r.SearchCategories.RoomEvents
		if c == nil {
			return
		}
		if c.SearchTerm == nil {
			t.Fatalf("ParseSearchRequest(%q): no search_term accepted", body)
		}
		for _, k := range c.Keys {
			if _, ok := storage.SearchKeys[k]; !ok {
				t.Fatalf("ParseSearchRequest(%q): key %q accepted", body, k)
			}
		}
		if c.OrderBy != "" && c.OrderBy != "rank" && c.OrderBy != "recent" {
			t.Fatalf("ParseSearchRequest(%q): order_by %q accepted", body, c.OrderBy)
		}
		if c.Filter != nil && c.Filter.Limit != nil && *c.Filter.Limit <= 0 {
			t.Fatalf("ParseSearchRequest(%q): filter limit %d accepted", body, *c.Filter.Limit)
		}
		// The words reach the engines as plain words only.
		for _, w := range storage.SearchTerms(*c.SearchTerm) {
			if w == "" {
				t.Fatalf("empty search word from %q", *c.SearchTerm)
			}
		}
	})
}

// FuzzParseRelationsRequest: any query parses or fails with a Matrix error,
// within bounds.
func FuzzParseRelationsRequest(f *testing.F) {
	for _, s := range []string{"", "dir=f&from=s3&to=s1&limit=5&recurse=true", "dir=x", "limit=-1", "recurse=1", "from=zz", "limit=999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseRelationsRequest(q)
		if err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("ParseRelationsRequest(%q) = %v, not a Matrix error", raw, err)
			}
			return
		}
		if r.Limit <= 0 || r.Limit > maxRelationsLimit {
			t.Fatalf("ParseRelationsRequest(%q): limit %d out of bounds", raw, r.Limit)
		}
		for _, tok := range []*streams.Token{r.From, r.To} {
			if tok != nil && tok.Get(streams.PDU) < 0 {
				t.Fatalf("ParseRelationsRequest(%q): negative position", raw)
			}
		}
	})
}
