// Package canonicaljson implements the Matrix canonical JSON encoding
// (appendices, "Signing JSON" / "Canonical JSON"): UTF-8, no insignificant
// whitespace, object keys sorted by Unicode code point, the shortest escape
// for every character, integers without exponent, fraction or "-0".
//
// The encoder is a hand-written single-pass scanner over the input bytes: it
// never builds a generic tree of Go values, so canonicalizing an event costs
// one copy of it plus a sort of each object's members.
//
// Two levels of strictness exist because room versions 1 to 5 do not enforce
// the number rules (rooms/fragments/v1-canonical-json.md) while version 6 and
// later must (v6-canonical-json.md):
//
//   - Canonicalize normalises numbers where it can and keeps the others
//     as written, so old events still hash as their senders hashed them.
//   - CanonicalizeStrict rejects fractions, exponents and integers outside
//     [-(2^53)+1, (2^53)-1].
//
// Both reject what no room version allows: invalid UTF-8, lone UTF-16
// surrogate escapes, duplicate object keys, and JSON syntax errors.
package canonicaljson

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Errors returned (wrapped, with the offset) by the canonicalizers. They let
// callers and tests tell our stricter-than-encoding/json rules apart from
// plain syntax errors.
var (
	ErrSyntax       = errors.New("invalid JSON")
	ErrDuplicateKey = errors.New("duplicate object key")
	ErrInvalidUTF8  = errors.New("invalid UTF-8")
	ErrSurrogate    = errors.New("lone UTF-16 surrogate escape")
	ErrTooDeep      = errors.New("JSON nested too deeply")
	ErrFloat        = errors.New("number has a fraction or exponent")
	ErrIntRange     = errors.New("integer outside [-(2^53)+1, (2^53)-1]")
)

// MaxDepth bounds the nesting of arrays and objects, so hostile input cannot
// exhaust the stack. Events are at most 64 KiB; real ones nest a handful of
// levels.
const MaxDepth = 512

// Marshal encodes v with encoding/json and then canonicalizes the result.
// Go's encoder escapes "<", ">", "&", U+2028 and U+2029 and orders struct
// fields by declaration; the second pass undoes both.
func Marshal(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON marshal: %w", err)
	}
	return Canonicalize(raw)
}

// MarshalStrict is Marshal followed by the room version 6 number rules.
func MarshalStrict(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON marshal: %w", err)
	}
	return CanonicalizeStrict(raw)
}

// Canonicalize returns the canonical encoding of the JSON text raw.
//
// Integers are kept exactly, whatever their size ("-0" becomes "0"). A
// number with a fraction or exponent whose value is an integer of magnitude
// at most 2^53 is written as that integer, as the spec's example
// {"a": -0, "b": 1e10} → {"a":0,"b":10000000000} requires. Any other number
// is kept as written: NOTSPEC: the spec defines no encoding for those, and
// they only occur in room versions 1 to 5, which must not be enforced
// strictly.
func Canonicalize(raw []byte) ([]byte, error) {
	return canonicalize(raw, false, make([]byte, 0, len(raw)))
}

// CanonicalizeStrict is Canonicalize with the number rules of the
// appendix enforced: fractions and exponents are rejected (ErrFloat) and so
// are integers outside [-(2^53)+1, (2^53)-1] (ErrIntRange). "-0" is still
// accepted and written as "0", matching the spec's example.
func CanonicalizeStrict(raw []byte) ([]byte, error) {
	return canonicalize(raw, true, make([]byte, 0, len(raw)))
}

// AppendCanonical appends the canonical encoding of raw to dst, which lets
// hot paths reuse a buffer.
func AppendCanonical(dst, raw []byte, strict bool) ([]byte, error) {
	return canonicalize(raw, strict, dst)
}

// Valid reports whether raw is JSON that Canonicalize accepts: well-formed,
// valid UTF-8, no lone surrogates, no duplicate keys, nesting within MaxDepth.
func Valid(raw []byte) error {
	_, err := canonicalize(raw, false, nil)
	return err
}

// ValidStrict reports whether raw is JSON that CanonicalizeStrict accepts.
// Room version 6 and later events must pass it.
func ValidStrict(raw []byte) error {
	_, err := canonicalize(raw, true, nil)
	return err
}

// IsCanonical reports whether raw is already in canonical form. Stored events
// are, so this is the cheap check before trusting bytes from the database.
func IsCanonical(raw []byte) bool {
	out, err := canonicalize(raw, false, make([]byte, 0, len(raw)))
	return err == nil && string(out) == string(raw)
}

// scanners keeps the scratch slices (member stack, key arena, reorder
// buffer) between calls, so canonicalizing allocates only its output.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

// maxPooledScratch keeps one huge input from pinning its scratch memory.
const maxPooledScratch = 1 << 16

func canonicalize(raw []byte, strict bool, dst []byte) ([]byte, error) {
	s := scanners.Get().(*scanner)
	s.in, s.pos, s.out, s.strict, s.depth = raw, 0, dst, strict, 0
	out, err := s.run()
	s.in, s.out = nil, nil
	if cap(s.tmp) <= maxPooledScratch && cap(s.arena) <= maxPooledScratch && cap(s.members) <= maxPooledScratch/32 {
		s.members, s.arena, s.tmp = s.members[:0], s.arena[:0], s.tmp[:0]
		scanners.Put(s)
	}
	return out, err
}

func (s *scanner) run() ([]byte, error) {
	s.skipSpace()
	if err := s.value(); err != nil {
		return nil, err
	}
	s.skipSpace()
	if s.pos != len(s.in) {
		return nil, s.errorf(ErrSyntax, "data after top-level value")
	}
	return s.out, nil
}
