// Package signing implements ed25519 server signing keys and the signing of
// JSON objects (appendices, "Signing JSON", "Signing Details" and "Checking
// for a Signature"), the Synapse-compatible signing key file, and the server
// key documents served at /_matrix/key/v2/server (server-server API,
// "Retrieving server keys").
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/matrix/canonicaljson"
)

// Errors a caller can act on.
var (
	// ErrNoSignature means the object carries no signature from the signer
	// with the requested key.
	ErrNoSignature = errors.New("signature not found")
	// ErrBadSignature means a signature is present but does not verify.
	ErrBadSignature = errors.New("signature does not verify")
)

// KeyID identifies a signing key: "<algorithm>:<version>", e.g. "ed25519:a_AbCd".
type KeyID string

// Algorithm is the part before the colon.
func (id KeyID) Algorithm() string {
	a, _, _ := strings.Cut(string(id), ":")
	return a
}

// Version is the part after the colon.
func (id KeyID) Version() string {
	_, v, _ := strings.Cut(string(id), ":")
	return v
}

// ParseKeyID checks that id is "ed25519:<version>" with a version of
// [a-zA-Z0-9_] (server-server API, keys schema: "The version must have
// characters matching the regular expression [a-zA-Z0-9_]").
func ParseKeyID(id string) (KeyID, error) {
	alg, ver, ok := strings.Cut(id, ":")
	if !ok || alg != "ed25519" {
		return "", fmt.Errorf("key ID %q: algorithm must be ed25519", id)
	}
	if ver == "" {
		return "", fmt.Errorf("key ID %q: empty version", id)
	}
	for i := 0; i < len(ver); i++ {
		c := ver[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "", fmt.Errorf("key ID %q: version may only hold [a-zA-Z0-9_]", id)
		}
	}
	return KeyID(id), nil
}

// Key is a server's ed25519 signing key.
type Key struct {
	ID      KeyID
	Private ed25519.PrivateKey
}

// Public returns the verification key.
func (k Key) Public() ed25519.PublicKey {
	if len(k.Private) != ed25519.PrivateKeySize {
		return nil
	}
	return k.Private.Public().(ed25519.PublicKey)
}

// GenerateKey creates a random key with the given ID.
func GenerateKey(id KeyID) (Key, error) {
	if _, err := ParseKeyID(string(id)); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate key %s: %w", id, err)
	}
	return Key{ID: id, Private: priv}, nil
}

// NewKeyFromSeed builds a key from a 32-byte ed25519 seed.
func NewKeyFromSeed(id KeyID, seed []byte) (Key, error) {
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("key %s: seed is %d bytes, want %d", id, len(seed), ed25519.SeedSize)
	}
	return Key{ID: id, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewKeyID returns "ed25519:a_" followed by 4 random alphanumerics, the shape
// Synapse uses, so key IDs from different servers rarely collide in logs.
func NewKeyID() KeyID {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	out := []byte("ed25519:a_")
	for _, c := range b {
		out = append(out, alnum[int(c)%len(alnum)])
	}
	return KeyID(out)
}

// EncodeBase64 encodes b as unpadded standard base64 (appendices,
// "Unpadded Base64").
func EncodeBase64(b []byte) string {
	return base64.RawStdEncoding.EncodeToString(b)
}

// EncodeBase64URL encodes b as unpadded URL-safe base64.
func EncodeBase64URL(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeBase64 decodes standard or URL-safe base64, padded or not: the spec
// says decoders SHOULD accept input with or without padding.
func DecodeBase64(s string) ([]byte, error) {
	// encoding/base64 skips newlines; a key or signature never has any.
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("decode base64: line break in input")
	}
	trimmed := strings.TrimRight(s, "=")
	if len(s)-len(trimmed) > 2 {
		return nil, fmt.Errorf("decode base64: too much padding")
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(trimmed, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(trimmed)
	if err != nil {
		return nil, fmt.Errorf("decode base64: %w", err)
	}
	return b, nil
}

// SignJSON signs the JSON object raw as signer (a server name, usually) and
// returns it, canonicalized, with the signature merged into "signatures".
// As the spec's sign_json does, the signature covers the object without its
// "signatures" and "unsigned" members, and both are put back afterwards;
// other signatures already present are kept.
func SignJSON(raw []byte, signer string, k Key) ([]byte, error) {
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	sig, err := signCanonical(obj, k)
	if err != nil {
		return nil, err
	}
	return AddSignature(obj, signer, k.ID, sig)
}

// Sign returns the raw ed25519 signature of the canonical object obj, which
// must not hold "signatures" or "unsigned" (they are removed if it does).
func signCanonical(obj []byte, k Key) ([]byte, error) {
	if len(k.Private) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign JSON with %s: no private key", k.ID)
	}
	stripped, err := canonicaljson.Filter(obj, notSignedKey)
	if err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	return ed25519.Sign(k.Private, stripped), nil
}

// SignCanonical returns the signature of the canonical JSON object obj
// without its "signatures" and "unsigned" members. It is the building block
// for callers (event signing) that sign one form and attach to another.
func SignCanonical(obj []byte, k Key) ([]byte, error) {
	return signCanonical(obj, k)
}

func notSignedKey(k string) bool { return k != "signatures" && k != "unsigned" }

// AddSignature merges signatures[signer][keyID] = base64(sig) into the
// canonical JSON object obj.
func AddSignature(obj []byte, signer string, keyID KeyID, sig []byte) ([]byte, error) {
	sigs := map[string]map[string]string{}
	if existing, ok := canonicaljson.Lookup(obj, "signatures"); ok {
		if err := json.Unmarshal(existing, &sigs); err != nil {
			return nil, fmt.Errorf("add signature: existing signatures: %w", err)
		}
		if sigs == nil {
			sigs = map[string]map[string]string{}
		}
	}
	if sigs[signer] == nil {
		sigs[signer] = map[string]string{}
	}
	sigs[signer][string(keyID)] = EncodeBase64(sig)
	enc, err := canonicaljson.Marshal(sigs)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	out, err := canonicaljson.Set(obj, "signatures", enc)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	return out, nil
}

// Signatures returns the signatures on raw as signer → key ID → base64.
func Signatures(raw []byte) (map[string]map[KeyID]string, error) {
	var wrapper struct {
		Signatures map[string]map[KeyID]string `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &wrapper); err != nil {
		return nil, fmt.Errorf("read signatures: %w", err)
	}
	return wrapper.Signatures, nil
}

// VerifyJSON checks the signature by signer with keyID on the JSON object
// raw, following "Checking for a Signature": the signature must be present
// and valid base64, and verify over the canonical encoding of the object
// without "signatures" and "unsigned". It returns ErrNoSignature or
// ErrBadSignature (wrapped) on failure.
func VerifyJSON(raw []byte, signer string, keyID KeyID, pub ed25519.PublicKey) error {
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return fmt.Errorf("verify JSON: %w", err)
	}
	return VerifyCanonical(obj, signer, keyID, pub)
}

// VerifyCanonical is VerifyJSON for input that is already canonical.
func VerifyCanonical(obj []byte, signer string, keyID KeyID, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify %s signature %s: public key is %d bytes", signer, keyID, len(pub))
	}
	sigs, ok := canonicaljson.Lookup(obj, "signatures")
	if !ok {
		return fmt.Errorf("verify %s signature %s: %w: no signatures", signer, keyID, ErrNoSignature)
	}
	var all map[string]map[KeyID]json.RawMessage
	if err := json.Unmarshal(sigs, &all); err != nil {
		return fmt.Errorf("verify %s signature %s: malformed signatures: %w", signer, keyID, err)
	}
	raw, ok := all[signer][keyID]
	if !ok {
		return fmt.Errorf("verify %s signature %s: %w", signer, keyID, ErrNoSignature)
	}
	var b64 string
	if err := json.Unmarshal(raw, &b64); err != nil {
		return fmt.Errorf("verify %s signature %s: %w: not a string", signer, keyID, ErrBadSignature)
	}
	sig, err := DecodeBase64(b64)
	if err != nil {
		return fmt.Errorf("verify %s signature %s: %w: %v", signer, keyID, ErrBadSignature, err)
	}
	stripped, err := canonicaljson.Filter(obj, notSignedKey)
	if err != nil {
		return fmt.Errorf("verify %s signature %s: %w", signer, keyID, err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, stripped, sig) {
		return fmt.Errorf("verify %s signature %s: %w", signer, keyID, ErrBadSignature)
	}
	return nil
}
