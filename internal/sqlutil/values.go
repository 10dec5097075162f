package sqlutil

import (
	"strconv"
	"strings"
)

// AppendRows writes rows copies of tuple, comma-separated, for a multi-row
// VALUES list: each '?' in tuple becomes the next numbered parameter, $next
// on, across the rows; the rest, such as parameters every row shares ($1),
// is copied as it is. Both engines read $n parameters.
func AppendRows(b *strings.Builder, tuple string, rows, next int) {
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		for j := 0; j < len(tuple); j++ {
			if tuple[j] != '?' {
				b.WriteByte(tuple[j])
				continue
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(next))
			next++
		}
	}
}
