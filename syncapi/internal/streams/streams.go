// Package streams names the syncapi's streams and the tokens that carry a
// position in each of them: the next_batch, since and prev_batch strings of
// /sync.
//
// Every kind of data /sync serves (room events, account data, receipts,
// typing, presence, notification counts; to-device and device lists
// later) is its own
// stream with its own monotonically increasing position. A Token holds one
// position per stream, so a feature that adds a stream appends a Kind and
// nothing that reads tokens changes.
//
// The text form is "s" followed by the positions in Kind order, separated by
// "_" (e.g. "s42_0_7"). Clients treat it as opaque.
package streams

import (
	"errors"
	"strconv"
	"strings"
)

// Position is a point in one stream: the position of the last item a token
// has seen. Positions start at 1; 0 is "before anything".
type Position int64

// Kind names a stream.
type Kind int

// The streams. New kinds are appended, never inserted, so that tokens
// already handed to clients keep their meaning.
const (
	// PDU is the stream of room events from the roomserver output.
	PDU Kind = iota
	// AccountData is the stream of account data changes (userapi topic).
	AccountData
	// Receipt is the stream of read receipts.
	Receipt
	// Typing is the stream of typing notification changes.
	Typing
	// Presence is the stream of presence changes.
	Presence
	// Notification is the stream of unread notification count changes
	// (userapi topic).
	Notification
	numKinds
)

// Kinds lists every stream in token order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// String is the stream's name; storage uses it as the counter key.
func (k Kind) String() string {
	switch k {
	case PDU:
		return "pdu"
	case AccountData:
		return "account_data"
	case Receipt:
		return "receipt"
	case Typing:
		return "typing"
	case Presence:
		return "presence"
	case Notification:
		return "notification"
	}
	return "kind" + strconv.Itoa(int(k))
}

// Token is a position in every stream. The zero Token is "before anything".
type Token struct {
	pos [numKinds]Position
}

// Get returns the position of stream k.
func (t Token) Get(k Kind) Position { return t.pos[k] }

// With returns t with stream k at p.
func (t Token) With(k Kind, p Position) Token {
	t.pos[k] = p
	return t
}

// After reports whether any stream of t is past the same stream of o.
func (t Token) After(o Token) bool {
	for i := range t.pos {
		if t.pos[i] > o.pos[i] {
			return true
		}
	}
	return false
}

// Min returns, per stream, the lower position of t and o.
func (t Token) Min(o Token) Token {
	for i := range t.pos {
		t.pos[i] = min(t.pos[i], o.pos[i])
	}
	return t
}

// String is the token's text form.
func (t Token) String() string {
	var b strings.Builder
	b.WriteByte('s')
	for i, p := range t.pos {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(strconv.FormatInt(int64(p), 10))
	}
	return b.String()
}

// maxFields bounds how many positions a token may carry, so a hostile
// token cannot make parsing expensive.
const maxFields = 32

// maxDigits keeps every position within int64.
const maxDigits = 18

// ErrInvalidToken is returned by ParseToken for text that is not a token.
var ErrInvalidToken = errors.New("invalid stream token")

// ParseToken parses a token's text form. A token with fewer positions than
// there are kinds (made before a stream was added) reads the missing ones as
// 0. A token with more (made by a newer version before a rollback) has the
// extra positions checked and ignored, rather than failing every client's
// next /sync.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) < 2 || s[0] != 's' {
		return t, ErrInvalidToken
	}
	fields := strings.Split(s[1:], "_")
	if len(fields) > maxFields {
		return t, ErrInvalidToken
	}
	for i, f := range fields {
		p, ok := parsePosition(f)
		if !ok {
			return t, ErrInvalidToken
		}
		if i < len(t.pos) {
			t.pos[i] = p
		}
	}
	return t, nil
}

// parsePosition accepts decimal digits only: strconv would also take a sign.
func parsePosition(s string) (Position, bool) {
	if s == "" || len(s) > maxDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return Position(n), true
}
