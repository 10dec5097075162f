package sqlutil

import (
	"strings"
	"testing"
)

func TestAppendRows(t *testing.T) {
	for _, c := range []struct {
		tuple      string
		rows, next int
		want       string
	}{
		{"(?, ?)", 3, 1, "($1, $2), ($3, $4), ($5, $6)"},
		{"($1, $2, ?, ?)", 2, 3, "($1, $2, $3, $4), ($1, $2, $5, $6)"},
		{"(?, to_tsvector('simple', ?))", 2, 1, "($1, to_tsvector('simple', $2)), ($3, to_tsvector('simple', $4))"},
		{"(?)", 0, 1, ""},
	} {
		var b strings.Builder
		AppendRows(&b, c.tuple, c.rows, c.next)
		if got := b.String(); got != c.want {
			t.Errorf("AppendRows(%q, %d, %d) = %q, want %q", c.tuple, c.rows, c.next, got, c.want)
		}
	}
}
