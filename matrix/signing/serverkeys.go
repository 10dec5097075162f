package signing

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
)

// Base64Bytes is binary data carried in JSON as unpadded base64 (appendices,
// "Binary data"). Decoding accepts every base64 variant DecodeBase64 does.
type Base64Bytes []byte

// MarshalJSON encodes b as unpadded standard base64.
func (b Base64Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(EncodeBase64(b))
}

// UnmarshalJSON decodes a base64 string.
func (b *Base64Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("base64 field: %w", err)
	}
	dec, err := DecodeBase64(s)
	if err != nil {
		return err
	}
	*b = dec
	return nil
}

// VerifyKey is a current key in a server key document.
type VerifyKey struct {
	Key Base64Bytes `json:"key"`
}

// OldVerifyKey is a retired key, valid for events older than ExpiredTS.
type OldVerifyKey struct {
	Key       Base64Bytes `json:"key"`
	ExpiredTS int64       `json:"expired_ts"`
}

// ServerKeys is the document a server publishes at /_matrix/key/v2/server
// (server-server API, "Publishing Keys"; data/api/server-server keys schema).
type ServerKeys struct {
	ServerName    string                      `json:"server_name"`
	VerifyKeys    map[KeyID]VerifyKey         `json:"verify_keys"`
	OldVerifyKeys map[KeyID]OldVerifyKey      `json:"old_verify_keys,omitempty"`
	ValidUntilTS  int64                       `json:"valid_until_ts"`
	Signatures    map[string]map[KeyID]string `json:"signatures,omitempty"`
	Raw           []byte                      `json:"-"`
}

// ParseServerKeys parses and validates a server key document: the server
// name must be valid, every ed25519 key 32 bytes, and the document must be
// signed by the server with each of its ed25519 verify_keys ("Digital
// signatures for this object signed using the verify_keys"). Keys of other
// algorithms are kept but not checked: "Checking for a Signature" step 2 says
// to ignore algorithms we do not understand. Notary signatures (from other
// signers) are kept in Signatures and Raw; check them with VerifyJSON.
func ParseServerKeys(raw []byte) (ServerKeys, error) {
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return ServerKeys{}, fmt.Errorf("parse server keys: %w", err)
	}
	var sk ServerKeys
	if err := json.Unmarshal(obj, &sk); err != nil {
		return ServerKeys{}, fmt.Errorf("parse server keys: %w", err)
	}
	sk.Raw = obj
	if _, err := matrix.ParseServerName(sk.ServerName); err != nil {
		return ServerKeys{}, fmt.Errorf("parse server keys: %w", err)
	}
	checked := 0
	for id, vk := range sk.VerifyKeys {
		if id.Algorithm() != "ed25519" {
			continue
		}
		if len(vk.Key) != ed25519.PublicKeySize {
			return ServerKeys{}, fmt.Errorf("server keys of %s: key %s is %d bytes", sk.ServerName, id, len(vk.Key))
		}
		if err := VerifyCanonical(obj, sk.ServerName, id, ed25519.PublicKey(vk.Key)); err != nil {
			return ServerKeys{}, fmt.Errorf("server keys of %s: self-signature: %w", sk.ServerName, err)
		}
		checked++
	}
	if checked == 0 {
		return ServerKeys{}, fmt.Errorf("server keys of %s: no ed25519 verify_keys", sk.ServerName)
	}
	for id, ok := range sk.OldVerifyKeys {
		if id.Algorithm() == "ed25519" && len(ok.Key) != ed25519.PublicKeySize {
			return ServerKeys{}, fmt.Errorf("server keys of %s: old key %s is %d bytes", sk.ServerName, id, len(ok.Key))
		}
	}
	return sk, nil
}

// PublicKey returns the public key with the given ID from this document and
// the time until which it may be used: valid_until_ts for a current key, expired_ts for an old one.
// Callers apply the room version's validity rules (rooms/v5
// "Signing key validity period") to the returned time.
func (sk ServerKeys) PublicKey(id KeyID) (pub ed25519.PublicKey, validUntilTS int64, ok bool) {
	if vk, found := sk.VerifyKeys[id]; found && len(vk.Key) == ed25519.PublicKeySize {
		return ed25519.PublicKey(vk.Key), sk.ValidUntilTS, true
	}
	if old, found := sk.OldVerifyKeys[id]; found && len(old.Key) == ed25519.PublicKeySize {
		return ed25519.PublicKey(old.Key), old.ExpiredTS, true
	}
	return nil, 0, false
}

// SignServerKeys builds and self-signs the key document of serverName with
// key k (and any additional old keys), ready to serve.
func SignServerKeys(serverName matrix.ServerName, k Key, validUntilTS int64, old map[KeyID]OldVerifyKey) ([]byte, error) {
	doc := ServerKeys{
		ServerName:    string(serverName),
		VerifyKeys:    map[KeyID]VerifyKey{k.ID: {Key: Base64Bytes(k.Public())}},
		OldVerifyKeys: old,
		ValidUntilTS:  validUntilTS,
	}
	if doc.OldVerifyKeys == nil {
		doc.OldVerifyKeys = map[KeyID]OldVerifyKey{}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("sign server keys of %s: %w", serverName, err)
	}
	return SignJSON(raw, string(serverName), k)
}
