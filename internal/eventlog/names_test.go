package eventlog

import (
	"slices"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct {
		prefix, topic, key string
		wantStream         string
		wantSubjectPrefix  string
		wantToken          string
	}{
		{"", "roomserver.output", "!abc:example.org", "roomserver_output", "roomserver.output.", "IWFiYzpleGFtcGxlLm9yZw"},
		{"axon1", "roomserver.input", "", "axon1_roomserver_input", "axon1.roomserver.input.", "_"},
		{"t.x", "typing", "@u:h", "t_x_typing", "t.x.typing.", "QHU6aA"},
		{"", "t", "a.b *>\x00", "t", "t.", "YS5iICo-AA"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix+"/"+tc.topic, func(t *testing.T) {
			n := names{prefix: tc.prefix}
			if got := n.stream(tc.topic); got != tc.wantStream {
				t.Errorf("stream(%q) = %q, want %q", tc.topic, got, tc.wantStream)
			}
			subj := n.subject(tc.topic, tc.key)
			if !strings.HasPrefix(subj, tc.wantSubjectPrefix) || !strings.HasSuffix(subj, "."+tc.wantToken) {
				t.Errorf("subject(%q, %q) = %q, want %s<bucket>.%s", tc.topic, tc.key, subj, tc.wantSubjectPrefix, tc.wantToken)
			}
			key, err := n.keyFromSubject(tc.topic, subj)
			if err != nil || key != tc.key {
				t.Errorf("keyFromSubject(%q) = %q, %v, want %q", subj, key, err, tc.key)
			}
		})
	}
}

func TestKeyFromSubjectErrors(t *testing.T) {
	n := names{prefix: "p"}
	good := n.subject("t", "k")
	tests := []struct{ name, subject string }{
		{"other topic", "p.u.1.aw"},
		{"no prefix", "t.1.aw"},
		{"no key token", "p.t.1"},
		{"bad base64", "p.t.1.a"},
		{"padding", "p.t.1.aw=="},
		{"wrong bucket", strings.Replace(good, ".t.", ".t.99", 1)},
		{"extra token", good + ".x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if key, err := n.keyFromSubject("t", tc.subject); err == nil {
				t.Errorf("keyFromSubject(%q) = %q, want an error", tc.subject, key)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"roomserver.output", true},
		{"a_b-c.D9", true},
		{"", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"a b", false},
		{"a.*", false},
		{"a.>", false},
		{"ä", false},
	}
	for _, tc := range tests {
		if err := checkName("topic", tc.name); (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestPartitionFilters(t *testing.T) {
	n := names{}
	if got, want := n.filters("t", 0, 0), []string{"t.>"}; !slices.Equal(got, want) {
		t.Errorf("filters(unpartitioned) = %v, want %v", got, want)
	}
	// Every bucket belongs to exactly one partition.
	for _, parts := range []int{2, 3, 7, 64} {
		seen := map[string]int{}
		for p := range parts {
			for _, f := range n.filters("t", parts, p) {
				seen[f]++
			}
		}
		if len(seen) != buckets {
			t.Errorf("%d partitions cover %d buckets, want %d", parts, len(seen), buckets)
		}
		for f, c := range seen {
			if c != 1 {
				t.Errorf("%d partitions: filter %s used %d times", parts, f, c)
			}
		}
	}
}

func TestConsumerName(t *testing.T) {
	tests := []struct {
		group       string
		parts, part int
		want        string
	}{
		{"syncapi", 0, 0, "syncapi"},
		{"syncapi.roomserver", 0, 0, "syncapi_roomserver"},
		{"a b/c", 0, 0, "a_b_c"},
		{"roomserver", 4, 2, "roomserver_p2of4"},
	}
	for _, tc := range tests {
		if got := consumerName(tc.group, tc.parts, tc.part); got != tc.want {
			t.Errorf("consumerName(%q, %d, %d) = %q, want %q", tc.group, tc.parts, tc.part, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 100; n++ {
		d := backoff(n)
		lo := min(retryMax, retryMin<<min(n-1, 20))
		if d < lo*8/10 || d > retryMax*12/10 {
			t.Errorf("backoff(%d) = %v, want within 20%% of %v", n, d, lo)
		}
	}
}

// FuzzKeySubject: any key survives the trip through a subject, and the
// subject is a valid literal NATS subject (no wildcards, no empty tokens,
// no whitespace).
func FuzzKeySubject(f *testing.F) {
	for _, k := range []string{"", "!room:example.org", "@user:host", "a.b", "*", ">", " \t\r\n", "\x00\xff"} {
		f.Add(k)
	}
	n := names{prefix: "p"}
	f.Fuzz(func(t *testing.T, key string) {
		subj := n.subject("topic.x", key)
		for tok := range strings.SplitSeq(subj, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
				t.Fatalf("subject(%q) = %q: bad token %q", key, subj, tok)
			}
		}
		got, err := n.keyFromSubject("topic.x", subj)
		if err != nil || got != key {
			t.Fatalf("keyFromSubject(subject(%q)) = %q, %v", key, got, err)
		}
	})
}

// FuzzKeyFromSubject: arbitrary subjects are rejected or decoded, never
// crash, and what decodes re-encodes to the same subject.
func FuzzKeyFromSubject(f *testing.F) {
	n := names{}
	f.Add("t.1.aw")
	f.Add(n.subject("t", "!a:b"))
	f.Add("t.0._")
	f.Fuzz(func(t *testing.T, subj string) {
		key, err := n.keyFromSubject("t", subj)
		if err == nil && n.subject("t", key) != subj {
			t.Fatalf("keyFromSubject(%q) = %q, which encodes to %q", subj, key, n.subject("t", key))
		}
	})
}
