package xmatrix

import (
	"fmt"
	"strings"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/signing"
)

// maxHeaderLen bounds the header value we parse. A real X-Matrix header is
// about 200 bytes; the limit only stops a peer from making us scan megabytes.
const maxHeaderLen = 4096

// ParseHeader parses an Authorization header value of the X-Matrix scheme.
//
// The grammar is RFC 9110 section 11.4 as "Request Authentication" states
// it: the scheme (any case), one or more spaces, then comma-separated
// name=value parameters with optional spaces and tabs around commas and
// "=". Names are case-insensitive and may come in any order. A value is a
// token or a quoted-string whose backslash escapes are undone. Unknown
// parameters are ignored; a known one given twice is an error. The
// signature parameter is "sig" as in the spec's example and every server;
// "signature", the name the spec's parameter list uses, is accepted too.
//
// origin, key and sig are required; destination is optional for servers
// before v1.3. origin and destination must be server names and key an
// ed25519 key ID. Every error wraps ErrMalformed.
func ParseHeader(value string) (Header, error) {
	if len(value) > maxHeaderLen {
		return Header{}, fmt.Errorf("%w: header is %d bytes, limit %d", ErrMalformed, len(value), maxHeaderLen)
	}
	p := parser{s: value}
	p.skipOWS()
	if scheme := p.token(false); !strings.EqualFold(scheme, Scheme) {
		return Header{}, fmt.Errorf("%w: scheme %q is not %s", ErrMalformed, truncate(scheme), Scheme)
	}
	// RFC 9110: auth-scheme [ 1*SP ( token68 / #auth-param ) ]. A tab is
	// accepted as well, as everywhere else whitespace may appear.
	if p.skipOWS() == 0 {
		if p.eof() {
			return Header{}, fmt.Errorf("%w: no parameters", ErrMalformed)
		}
		return Header{}, fmt.Errorf("%w: expected a space after %s", ErrMalformed, Scheme)
	}

	var h Header
	var origin, destination, key, sig string
	var seen [4]bool
	for {
		p.skipOWS()
		if p.eof() {
			break
		}
		// RFC 9110 section 5.6.1: recipients accept empty list elements.
		if p.peek() == ',' {
			p.pos++
			continue
		}
		start := p.pos
		name := p.token(false)
		if name == "" {
			return Header{}, fmt.Errorf("%w: expected a parameter name at offset %d", ErrMalformed, p.pos)
		}
		p.skipOWS()
		if p.eof() || p.peek() != '=' {
			return Header{}, fmt.Errorf("%w: parameter %q has no '=' (offset %d)", ErrMalformed, truncate(name), start)
		}
		p.pos++
		p.skipOWS()
		val, err := p.value()
		if err != nil {
			return Header{}, fmt.Errorf("%w: parameter %q: %v", ErrMalformed, truncate(name), err)
		}
		p.skipOWS()
		if !p.eof() && p.peek() != ',' {
			return Header{}, fmt.Errorf("%w: unexpected %q after parameter %q (offset %d)", ErrMalformed, p.peek(), truncate(name), p.pos)
		}

		var slot int
		switch strings.ToLower(name) {
		case "origin":
			slot, origin = 0, val
		case "destination":
			slot, destination = 1, val
		case "key":
			slot, key = 2, val
		case "sig", "signature":
			slot, sig = 3, val
		default:
			continue // "Unknown parameters are ignored."
		}
		if seen[slot] {
			return Header{}, fmt.Errorf("%w: parameter %q given twice", ErrMalformed, strings.ToLower(name))
		}
		seen[slot] = true
	}

	if !seen[0] {
		return Header{}, fmt.Errorf("%w: no origin", ErrMalformed)
	}
	if !seen[2] {
		return Header{}, fmt.Errorf("%w: no key", ErrMalformed)
	}
	if !seen[3] || sig == "" {
		return Header{}, fmt.Errorf("%w: no sig", ErrMalformed)
	}
	o, err := matrix.ParseServerName(origin)
	if err != nil {
		return Header{}, fmt.Errorf("%w: origin: %v", ErrMalformed, err)
	}
	h.Origin = o
	if seen[1] {
		d, err := matrix.ParseServerName(destination)
		if err != nil {
			return Header{}, fmt.Errorf("%w: destination: %v", ErrMalformed, err)
		}
		h.Destination = d
	}
	k, err := signing.ParseKeyID(key)
	if err != nil {
		return Header{}, fmt.Errorf("%w: key: %v", ErrMalformed, err)
	}
	h.KeyID = k
	h.Sig = sig
	return h, nil
}

// parser is a cursor over the header value.
type parser struct {
	s   string
	pos int
}

func (p *parser) eof() bool  { return p.pos >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.pos] }

// skipOWS skips spaces and tabs and returns how many it skipped.
func (p *parser) skipOWS() int {
	start := p.pos
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
	return p.pos - start
}

// token reads a run of RFC 9110 tchars; inValue widens the set for
// unquoted values (see isValueChar).
func (p *parser) token(inValue bool) string {
	start := p.pos
	for !p.eof() && (isTchar(p.peek()) || inValue && isValueChar(p.peek())) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// value reads a token or a quoted-string and returns it unescaped.
func (p *parser) value() (string, error) {
	if p.eof() {
		return "", fmt.Errorf("missing value")
	}
	if p.peek() != '"' {
		v := p.token(true)
		if v == "" {
			return "", fmt.Errorf("invalid character %q at offset %d", p.peek(), p.pos)
		}
		return v, nil
	}
	p.pos++ // opening quote
	var b []byte
	start := p.pos
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '"':
			p.pos++
			if b == nil {
				return p.s[start : p.pos-1], nil
			}
			return string(b), nil
		case c == '\\':
			// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
			if b == nil {
				b = []byte(p.s[start:p.pos])
			}
			p.pos++
			if p.eof() {
				return "", fmt.Errorf("unterminated escape")
			}
			if e := p.peek(); !isQdtext(e) && e != '"' && e != '\\' {
				return "", fmt.Errorf("invalid escaped character %q at offset %d", e, p.pos)
			}
			b = append(b, p.peek())
			p.pos++
		case isQdtext(c):
			if b != nil {
				b = append(b, c)
			}
			p.pos++
		default:
			return "", fmt.Errorf("invalid character %q in quoted value at offset %d", c, p.pos)
		}
	}
	return "", fmt.Errorf("unterminated quoted value")
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isValueChar lists the characters an unquoted value may hold beyond
// tchars. The spec asks recipients to allow ":" (server names with ports).
// NOTSPEC: "/" and "=" (base64 signatures) and "[" "]" (IPv6 server names)
// are accepted too, since older parsers took anything up to the comma and
// these values are checked by their own grammars afterwards.
func isValueChar(c byte) bool {
	return c == ':' || c == '/' || c == '=' || c == '[' || c == ']'
}

// isQdtext reports whether c may appear unescaped in a quoted-string:
// HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80
}
