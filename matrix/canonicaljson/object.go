package canonicaljson

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The functions below work on JSON that is already canonical (the output of
// Canonicalize). Removing members from a canonical object keeps it canonical
// and inserting at the sorted position does too, so the event code can
// redact, hash and sign without re-encoding whole events. They return errors
// (never panic) on input that is not canonical enough to walk.

var errNotCanonical = errors.New("not canonical JSON")

// Member is one top-level member of a canonical JSON object.
type Member struct {
	// Key is the key as encoded, without quotes. It equals the decoded key
	// unless the key contains '"', '\\' or a control character.
	Key []byte
	// Value is the canonical encoding of the value.
	Value []byte
}

// Members returns the members of the canonical JSON object obj, in order.
// The slices point into obj.
func Members(obj []byte) ([]Member, error) {
	var ms []Member
	err := EachMember(obj, func(key, value []byte) error {
		ms = append(ms, Member{Key: key, Value: value})
		return nil
	})
	return ms, err
}

// EachMember calls fn with each member of the canonical JSON object obj, in
// order, and stops at the first error fn returns.
func EachMember(obj []byte, fn func(key, value []byte) error) error {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return fmt.Errorf("%w: not an object", errNotCanonical)
	}
	i := 1
	if obj[i] == '}' {
		if i+1 != len(obj) {
			return fmt.Errorf("%w: data after object", errNotCanonical)
		}
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return fmt.Errorf("%w: expected key at %d", errNotCanonical, i)
		}
		kEnd, err := skipString(obj, i)
		if err != nil {
			return err
		}
		if kEnd >= len(obj) || obj[kEnd] != ':' {
			return fmt.Errorf("%w: expected ':' at %d", errNotCanonical, kEnd)
		}
		vEnd, err := skipValue(obj, kEnd+1, 0)
		if err != nil {
			return err
		}
		if err := fn(obj[i+1:kEnd-1], obj[kEnd+1:vEnd]); err != nil {
			return err
		}
		if vEnd >= len(obj) {
			return fmt.Errorf("%w: unterminated object", errNotCanonical)
		}
		switch obj[vEnd] {
		case ',':
			i = vEnd + 1
		case '}':
			if vEnd+1 != len(obj) {
				return fmt.Errorf("%w: data after object", errNotCanonical)
			}
			return nil
		default:
			return fmt.Errorf("%w: expected ',' or '}' at %d", errNotCanonical, vEnd)
		}
	}
}

// EachElement calls fn with each element of the canonical JSON array arr, in
// order, and stops at the first error fn returns.
func EachElement(arr []byte, fn func(value []byte) error) error {
	if len(arr) < 2 || arr[0] != '[' || arr[len(arr)-1] != ']' {
		return fmt.Errorf("%w: not an array", errNotCanonical)
	}
	i := 1
	if arr[i] == ']' {
		if i+1 != len(arr) {
			return fmt.Errorf("%w: data after array", errNotCanonical)
		}
		return nil
	}
	for {
		end, err := skipValue(arr, i, 0)
		if err != nil {
			return err
		}
		if err := fn(arr[i:end]); err != nil {
			return err
		}
		if end >= len(arr) {
			return fmt.Errorf("%w: unterminated array", errNotCanonical)
		}
		switch arr[end] {
		case ',':
			i = end + 1
		case ']':
			if end+1 != len(arr) {
				return fmt.Errorf("%w: data after array", errNotCanonical)
			}
			return nil
		default:
			return fmt.Errorf("%w: expected ',' or ']' at %d", errNotCanonical, end)
		}
	}
}

// Lookup returns the value of key in the canonical JSON object obj.
func Lookup(obj []byte, key string) ([]byte, bool) {
	var found []byte
	ok := false
	_ = EachMember(obj, func(k, v []byte) error {
		if keyEquals(k, key) {
			found, ok = v, true
			return errStop
		}
		return nil
	})
	return found, ok
}

var errStop = errors.New("stop")

// Filter returns a copy of the canonical JSON object obj holding only the
// members for which keep returns true. keep receives the decoded key.
func Filter(obj []byte, keep func(key string) bool) ([]byte, error) {
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	n := 0
	err := EachMember(obj, func(k, v []byte) error {
		dk, err := decodeKey(k)
		if err != nil {
			return err
		}
		if !keep(dk) {
			return nil
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, '"', ':')
		out = append(out, v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// Set returns a copy of the canonical JSON object obj with key set to value,
// replacing any existing member of that name. value must be canonical JSON;
// it is not checked, so the result is canonical only if value is.
func Set(obj []byte, key string, value []byte) ([]byte, error) {
	out := make([]byte, 0, len(obj)+len(key)+len(value)+4)
	out = append(out, '{')
	n := 0
	done := false
	write := func(encKey []byte, v []byte) {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '"')
		out = append(out, encKey...)
		out = append(out, '"', ':')
		out = append(out, v...)
	}
	encKey := AppendString(nil, key)
	encKey = encKey[1 : len(encKey)-1]
	err := EachMember(obj, func(k, v []byte) error {
		dk, err := decodeKey(k)
		if err != nil {
			return err
		}
		if !done {
			switch c := strings.Compare(dk, key); {
			case c == 0:
				write(encKey, value)
				done = true
				return nil
			case c > 0:
				write(encKey, value)
				done = true
			}
		}
		write(k, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !done {
		write(encKey, value)
	}
	return append(out, '}'), nil
}

// AppendString appends the canonical encoding of the string s, quotes
// included. Invalid UTF-8 in s is replaced by U+FFFD, as Go strings may hold
// anything but canonical JSON must be UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	run := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[run:i]...)
			dst = appendRune(dst, rune(c))
			i++
			run = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[run:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
			run = i
			continue
		}
		i += size
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"')
}

// Unquote decodes a canonical (or any valid) JSON string value, quotes
// included, into a Go string.
func Unquote(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", fmt.Errorf("%w: not a string", ErrSyntax)
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if !utf8.Valid(inner) {
			return "", ErrInvalidUTF8
		}
		return string(inner), nil
	}
	return decodeKey(inner)
}

// keyEquals compares an encoded key with a plain Go string without
// allocating in the common case of a key without escapes.
func keyEquals(enc []byte, key string) bool {
	if bytes.IndexByte(enc, '\\') < 0 {
		return string(enc) == key
	}
	dk, err := decodeKey(enc)
	return err == nil && dk == key
}

// decodeKey decodes the inside of a JSON string (no quotes).
func decodeKey(enc []byte) (string, error) {
	if bytes.IndexByte(enc, '\\') < 0 {
		return string(enc), nil
	}
	out := make([]byte, 0, len(enc))
	for i := 0; i < len(enc); {
		if enc[i] != '\\' {
			out = append(out, enc[i])
			i++
			continue
		}
		r, n, err := decodeEscape(enc[i:])
		if err != nil {
			return "", fmt.Errorf("decode key: %w", err)
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return string(out), nil
}

// skipString returns the index just after the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	i++
	// Fast path: canonical strings rarely hold a backslash.
	if j := bytes.IndexByte(b[i:], '"'); j >= 0 && bytes.IndexByte(b[i:i+j], '\\') < 0 {
		return i + j + 1, nil
	}
	for i < len(b) {
		switch b[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return 0, fmt.Errorf("%w: unterminated string", errNotCanonical)
}

// skipValue returns the index just after the value starting at b[i]. It
// assumes canonical input (no whitespace) but stays memory safe on any input.
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, ErrTooDeep
	}
	if i >= len(b) {
		return 0, fmt.Errorf("%w: missing value", errNotCanonical)
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i++
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, fmt.Errorf("%w: expected key", errNotCanonical)
				}
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				if end >= len(b) || b[end] != ':' {
					return 0, fmt.Errorf("%w: expected ':'", errNotCanonical)
				}
				i = end + 1
			}
			end, err := skipValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			if end >= len(b) {
				return 0, fmt.Errorf("%w: unterminated container", errNotCanonical)
			}
			if b[end] == closer {
				return end + 1, nil
			}
			if b[end] != ',' {
				return 0, fmt.Errorf("%w: expected ','", errNotCanonical)
			}
			i = end + 1
		}
	default:
		// A number or literal: its characters are all in [0-9a-zA-Z.+-];
		// whatever follows must be a delimiter, which the caller checks.
		j := i
		for j < len(b) && isScalarChar(b[j]) {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("%w: empty value", errNotCanonical)
		}
		return j, nil
	}
}

func isScalarChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-'
}
