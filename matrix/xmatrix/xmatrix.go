// Package xmatrix implements the X-Matrix Authorization header that
// authenticates every server-server request (server-server API, "Request
// Authentication"): signing a request as its origin server, parsing the
// header a peer sent, and verifying it against the peer's public key.
//
// The signed object is {"method", "uri", "origin", "destination",
// "content"?}, signed with the JSON signing algorithm of the appendices. The
// server names are those before delegation: a request to example.org that
// resolves to matrix.example.org is still signed for example.org.
//
// Parsing follows RFC 9110 section 11.4 as the spec summarises it; every
// error wraps ErrMalformed so a server can answer 401 M_UNAUTHORIZED for any
// of them. Nothing here panics on input from the network.
package xmatrix

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

// Errors a caller can act on. Verify's signature failures wrap
// signing.ErrBadSignature.
var (
	// ErrMalformed is wrapped by every ParseHeader error.
	ErrMalformed = errors.New("malformed X-Matrix authorization")
	// ErrWrongDestination means the header names a destination other than
	// the receiving server; the spec requires a 401 for it.
	ErrWrongDestination = errors.New("X-Matrix destination is not this server")
	// ErrWrongOrigin means the header's origin differs from the origin the
	// caller expected.
	ErrWrongOrigin = errors.New("X-Matrix origin does not match")
)

// Scheme is the authorization scheme, sent in this spelling and matched
// case-insensitively.
const Scheme = "X-Matrix"

// Request is what a request signature covers.
type Request struct {
	// Method is the HTTP method, e.g. "PUT".
	Method string
	// URI is the request target as sent on the wire: the path from
	// "/_matrix/..." with "?" and the query if present, without scheme or
	// host. A receiver must use the raw target (http.Request.RequestURI),
	// not a re-encoded URL, or escaped characters will not match.
	URI string
	// Origin and Destination are the sending and receiving server names,
	// before any delegation.
	Origin, Destination matrix.ServerName
	// Content is the JSON request body, nil (or empty) if there is none.
	Content json.RawMessage
}

// Header is a parsed X-Matrix authorization.
type Header struct {
	Origin matrix.ServerName
	// Destination is empty when a server older than spec v1.3 left it out.
	Destination matrix.ServerName
	KeyID       signing.KeyID
	// Sig is the unpadded base64 signature as sent.
	Sig string
}

// String formats h as an Authorization header value in the form the spec
// asks senders to use: one space after the scheme, lower-case names, every
// value quoted, no whitespace around the commas.
func (h Header) String() string {
	var b strings.Builder
	b.WriteString(Scheme)
	b.WriteString(" origin=")
	writeQuoted(&b, string(h.Origin))
	if h.Destination != "" {
		b.WriteString(",destination=")
		writeQuoted(&b, string(h.Destination))
	}
	b.WriteString(",key=")
	writeQuoted(&b, string(h.KeyID))
	b.WriteString(",sig=")
	writeQuoted(&b, h.Sig)
	return b.String()
}

// writeQuoted writes v as an RFC 9110 quoted-string. Server names, key IDs
// and base64 never need escapes; they are only here so that String cannot
// produce a header that parses differently.
func writeQuoted(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

// Sign signs r as r.Origin with key and returns the Authorization header
// value. The spec says a sender MUST always include the destination, so an
// empty Destination is an error.
func Sign(r Request, key signing.Key) (string, error) {
	if _, err := matrix.ParseServerName(string(r.Origin)); err != nil {
		return "", fmt.Errorf("sign request %s %s: origin: %w", r.Method, r.URI, err)
	}
	if _, err := matrix.ParseServerName(string(r.Destination)); err != nil {
		return "", fmt.Errorf("sign request %s %s: destination: %w", r.Method, r.URI, err)
	}
	if _, err := signing.ParseKeyID(string(key.ID)); err != nil {
		return "", fmt.Errorf("sign request %s %s: %w", r.Method, r.URI, err)
	}
	obj, err := signedObject(r, r.Origin, r.Destination)
	if err != nil {
		return "", fmt.Errorf("sign request to %s: %w", r.Destination, err)
	}
	sig, err := signing.SignCanonical(obj, key)
	if err != nil {
		return "", fmt.Errorf("sign request %s %s to %s: %w", r.Method, r.URI, r.Destination, err)
	}
	h := Header{Origin: r.Origin, Destination: r.Destination, KeyID: key.ID, Sig: signing.EncodeBase64(sig)}
	return h.String(), nil
}

// Verify checks that h is a valid signature by pub over the request r.
//
// r.Destination is the receiving server's own name. If the header names a
// destination it must equal r.Destination (ErrWrongDestination); if it names
// none, as servers before v1.3 do, r.Destination is what the sender is taken
// to have signed. A server answering to several names checks h.Destination
// against its names itself and passes the matching one. The origin signed is
// h.Origin; r.Origin may be left empty,
// and if set must equal it (ErrWrongOrigin). Finding pub for h.Origin and
// h.KeyID is the caller's job.
func Verify(r Request, h Header, pub ed25519.PublicKey) error {
	if h.Destination != "" && h.Destination != r.Destination {
		return fmt.Errorf("verify request from %s: %w: header names %q, we are %q",
			h.Origin, ErrWrongDestination, h.Destination, r.Destination)
	}
	if r.Origin != "" && r.Origin != h.Origin {
		return fmt.Errorf("verify request from %s: %w: expected %q", h.Origin, ErrWrongOrigin, r.Origin)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify request from %s with %s: public key is %d bytes", h.Origin, h.KeyID, len(pub))
	}
	sig, err := signing.DecodeBase64(h.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("verify request from %s with %s: %w: signature is not 64 bytes of base64",
			h.Origin, h.KeyID, signing.ErrBadSignature)
	}
	obj, err := signedObject(r, h.Origin, r.Destination)
	if err != nil {
		return fmt.Errorf("verify request from %s: %w", h.Origin, err)
	}
	if !ed25519.Verify(pub, obj, sig) {
		return fmt.Errorf("verify request %s %s from %s with %s: %w",
			r.Method, r.URI, h.Origin, h.KeyID, signing.ErrBadSignature)
	}
	return nil
}

// signedObject builds the canonical JSON of "Request Authentication" step 1
// without signatures. The members are written directly, already in
// canonical (code point) order: content, destination, method, origin, uri.
func signedObject(r Request, origin, destination matrix.ServerName) ([]byte, error) {
	if r.Method == "" {
		return nil, errors.New("empty method")
	}
	if !strings.HasPrefix(r.URI, "/") {
		return nil, fmt.Errorf("request target %q does not start with /", truncate(r.URI))
	}
	// Canonical JSON is UTF-8; silently replacing bad bytes would sign
	// something other than what was sent.
	if !utf8.ValidString(r.Method) || !utf8.ValidString(r.URI) {
		return nil, errors.New("method or request target is not valid UTF-8")
	}
	obj := make([]byte, 0, 96+len(r.URI)+len(origin)+len(destination)+len(r.Content))
	obj = append(obj, '{')
	if len(r.Content) > 0 {
		var err error
		obj = append(obj, `"content":`...)
		obj, err = canonicaljson.AppendCanonical(obj, r.Content, false)
		if err != nil {
			return nil, fmt.Errorf("request content: %w", err)
		}
		obj = append(obj, ',')
	}
	obj = append(obj, `"destination":`...)
	obj = canonicaljson.AppendString(obj, string(destination))
	obj = append(obj, `,"method":`...)
	obj = canonicaljson.AppendString(obj, r.Method)
	obj = append(obj, `,"origin":`...)
	obj = canonicaljson.AppendString(obj, string(origin))
	obj = append(obj, `,"uri":`...)
	obj = canonicaljson.AppendString(obj, r.URI)
	return append(obj, '}'), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
