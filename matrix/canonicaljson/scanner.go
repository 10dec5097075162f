package canonicaljson

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// scanner canonicalizes one JSON text in a single pass. Objects are written
// member by member as they are read; when an object's keys turn out to be out
// of order, its members are rearranged in place from a scratch copy.
type scanner struct {
	in     []byte
	pos    int
	out    []byte
	strict bool
	depth  int

	// members is a stack shared by all open objects: each object uses
	// members[base:] and truncates back when it closes.
	members []member
	// arena holds decoded keys that contained escapes (keys without escapes
	// are compared in place in the input).
	arena []byte
	// tmp is the scratch copy used to reorder one object's members.
	tmp []byte
}

// member locates one object member: its decoded key (in the input or in the
// arena) and the span of `"key":value` in the output.
type member struct {
	keyStart, keyEnd int
	inArena          bool
	start, end       int
}

func (s *scanner) errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", kind, s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value() error {
	if s.pos >= len(s.in) {
		return s.errorf(ErrSyntax, "unexpected end of input")
	}
	switch c := s.in[s.pos]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, _, _, err := s.str(false)
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return s.errorf(ErrSyntax, "unexpected character %q", c)
	}
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.in[s.pos:], []byte(lit)) {
		return s.errorf(ErrSyntax, "invalid literal")
	}
	s.pos += len(lit)
	s.out = append(s.out, lit...)
	return nil
}

func (s *scanner) array() error {
	if s.depth++; s.depth > MaxDepth {
		return s.errorf(ErrTooDeep, "more than %d levels", MaxDepth)
	}
	s.pos++
	s.out = append(s.out, '[')
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == ']' {
		s.pos++
		s.out = append(s.out, ']')
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.in) {
			return s.errorf(ErrSyntax, "unterminated array")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
			s.out = append(s.out, ',')
		case ']':
			s.pos++
			s.out = append(s.out, ']')
			s.depth--
			return nil
		default:
			return s.errorf(ErrSyntax, "expected ',' or ']' in array")
		}
	}
}

func (s *scanner) key(m member) []byte {
	if m.inArena {
		return s.arena[m.keyStart:m.keyEnd]
	}
	return s.in[m.keyStart:m.keyEnd]
}

func (s *scanner) object() error {
	if s.depth++; s.depth > MaxDepth {
		return s.errorf(ErrTooDeep, "more than %d levels", MaxDepth)
	}
	s.pos++
	objStart := len(s.out)
	s.out = append(s.out, '{')
	base, arenaBase := len(s.members), len(s.arena)
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == '}' {
		s.pos++
		s.out = append(s.out, '}')
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != '"' {
			return s.errorf(ErrSyntax, "expected string as object key")
		}
		mStart := len(s.out)
		ks, ke, inArena, err := s.str(true)
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != ':' {
			return s.errorf(ErrSyntax, "expected ':' after object key")
		}
		s.pos++
		s.out = append(s.out, ':')
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.members = append(s.members, member{keyStart: ks, keyEnd: ke, inArena: inArena, start: mStart, end: len(s.out)})
		s.skipSpace()
		if s.pos >= len(s.in) {
			return s.errorf(ErrSyntax, "unterminated object")
		}
		if s.in[s.pos] == ',' {
			s.pos++
			s.out = append(s.out, ',')
			continue
		}
		if s.in[s.pos] == '}' {
			s.pos++
			break
		}
		return s.errorf(ErrSyntax, "expected ',' or '}' in object")
	}

	// Keys are sorted by code point, which for UTF-8 is plain byte order of
	// the decoded keys (appendices, "Canonical JSON").
	ms := s.members[base:]
	sorted := true
	for i := 1; i < len(ms); i++ {
		c := bytes.Compare(s.key(ms[i-1]), s.key(ms[i]))
		if c == 0 {
			return s.errorf(ErrDuplicateKey, "key %q", s.key(ms[i]))
		}
		if c > 0 {
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(s.key(a), s.key(b)) })
		for i := 1; i < len(ms); i++ {
			if bytes.Equal(s.key(ms[i-1]), s.key(ms[i])) {
				return s.errorf(ErrDuplicateKey, "key %q", s.key(ms[i]))
			}
		}
		// Offsets in ms are relative to the output; shift them into tmp.
		shift := objStart + 1
		s.tmp = append(s.tmp[:0], s.out[shift:]...)
		s.out = s.out[:shift]
		for i, m := range ms {
			if i > 0 {
				s.out = append(s.out, ',')
			}
			s.out = append(s.out, s.tmp[m.start-shift:m.end-shift]...)
		}
	}
	s.out = append(s.out, '}')
	s.members = s.members[:base]
	s.arena = s.arena[:arenaBase]
	s.depth--
	return nil
}

// Character classes for string scanning.
const (
	cPlain = iota
	cQuote
	cBackslash
	cControl
	cMulti
)

var strClass = func() (t [256]uint8) {
	for i := range 0x20 {
		t[i] = cControl
	}
	t['"'] = cQuote
	t['\\'] = cBackslash
	for i := 0x80; i < 256; i++ {
		t[i] = cMulti
	}
	return t
}()

// str copies a string in canonical form. For keys it reports where the
// decoded key lives: in the input when it had no escapes, else in the arena.
func (s *scanner) str(isKey bool) (ks, ke int, inArena bool, err error) {
	in := s.in
	s.pos++ // opening quote
	start := s.pos
	i, runStart := start, start
	escaped := false
	arenaStart := len(s.arena)
	s.out = append(s.out, '"')
	for {
		// Tight loop over the common case: printable ASCII.
		for i < len(in) && strClass[in[i]] == cPlain {
			i++
		}
		if i >= len(in) {
			s.pos = i
			return 0, 0, false, s.errorf(ErrSyntax, "unterminated string")
		}
		switch strClass[in[i]] {
		case cMulti:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size <= 1 {
				s.pos = i
				return 0, 0, false, s.errorf(ErrInvalidUTF8, "in string")
			}
			i += size
		case cControl:
			s.pos = i
			return 0, 0, false, s.errorf(ErrSyntax, "unescaped control character in string")
		case cQuote:
			s.out = append(s.out, in[runStart:i]...)
			s.out = append(s.out, '"')
			s.pos = i + 1
			if escaped {
				s.arena = append(s.arena, in[runStart:i]...)
				return arenaStart, len(s.arena), true, nil
			}
			return start, i, false, nil
		case cBackslash:
			s.out = append(s.out, in[runStart:i]...)
			if isKey {
				if escaped {
					s.arena = append(s.arena, in[runStart:i]...)
				} else {
					s.arena = append(s.arena, in[start:i]...)
				}
			}
			escaped = escaped || isKey
			s.pos = i
			r, n, err := decodeEscape(in[i:])
			if err != nil {
				return 0, 0, false, s.errorf(err, "in string escape")
			}
			i += n
			s.out = appendRune(s.out, r)
			if isKey {
				s.arena = utf8.AppendRune(s.arena, r)
			}
			runStart = i
		}
	}
}

// decodeEscape decodes the escape sequence at the start of b (b[0] == '\\')
// and returns the rune and the number of bytes consumed. Surrogate pairs are
// combined; a lone surrogate is an error because it cannot be UTF-8 encoded.
func decodeEscape(b []byte) (rune, int, error) {
	if len(b) < 2 {
		return 0, 0, ErrSyntax
	}
	switch b[1] {
	case '"':
		return '"', 2, nil
	case '\\':
		return '\\', 2, nil
	case '/':
		return '/', 2, nil
	case 'b':
		return '\b', 2, nil
	case 'f':
		return '\f', 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0, ErrSyntax
		}
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return 0, 0, ErrSurrogate
		case r >= 0xd800 && r <= 0xdbff:
			if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
				return 0, 0, ErrSurrogate
			}
			lo, ok := hex4(b[8:])
			if !ok {
				return 0, 0, ErrSyntax
			}
			if lo < 0xdc00 || lo > 0xdfff {
				return 0, 0, ErrSurrogate
			}
			return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 12, nil
		}
		return r, 6, nil
	}
	return 0, 0, ErrSyntax
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendRune writes r with the grammar's shortest escape: the two-character
// escapes where they exist, \u00xx (lowercase) for other control characters,
// raw UTF-8 for everything else (including U+007F, U+2028 and "/").
func appendRune(dst []byte, r rune) []byte {
	switch r {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r < 0x20 {
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	}
	return utf8.AppendRune(dst, r)
}

// maxSafe is 2^53-1 written out, the largest canonical integer.
const maxSafe = "9007199254740991"

func (s *scanner) number() error {
	in := s.in
	start := s.pos
	i := start
	if in[i] == '-' {
		i++
	}
	digitsStart := i
	if i >= len(in) {
		return s.errorf(ErrSyntax, "incomplete number")
	}
	switch c := in[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
	default:
		return s.errorf(ErrSyntax, "invalid number")
	}
	digitsEnd := i
	isFloat := false
	if i < len(in) && in[i] == '.' {
		i++
		d := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == d {
			s.pos = i
			return s.errorf(ErrSyntax, "missing digits after decimal point")
		}
		isFloat = true
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		d := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == d {
			s.pos = i
			return s.errorf(ErrSyntax, "missing digits in exponent")
		}
		isFloat = true
	}
	text := in[start:i]
	if !isFloat {
		digits := in[digitsStart:digitsEnd]
		if len(digits) == 1 && digits[0] == '0' {
			s.pos = i
			s.out = append(s.out, '0') // "-0" MUST NOT appear
			return nil
		}
		if s.strict && (len(digits) > len(maxSafe) || (len(digits) == len(maxSafe) && string(digits) > maxSafe)) {
			return s.errorf(ErrIntRange, "%s", text)
		}
		s.pos = i
		s.out = append(s.out, text...)
		return nil
	}
	if s.strict {
		return s.errorf(ErrFloat, "%s", text)
	}
	s.pos = i
	f, err := strconv.ParseFloat(string(text), 64)
	if err == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		s.out = strconv.AppendInt(s.out, int64(f), 10)
		return nil
	}
	s.out = append(s.out, text...)
	return nil
}
