package event

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

// ErrSignature is wrapped by every signature check failure. Events failing
// it are dropped (server-server API, "Checks performed on receipt of a PDU",
// step 2).
var ErrSignature = errors.New("event signature check failed")

// KeyLookup finds a server's public key. atTS is the event's
// origin_server_ts when the room version enforces key validity (v5+): the
// implementation must then return only a key valid at that time, using the
// lesser of valid_until_ts and 7 days ahead (rooms/fragments/
// v5-signing-requirements.md). atTS is 0 for room versions 1 to 4, where
// validity MUST be ignored. An error means "unknown or unusable key": such
// signatures are skipped.
type KeyLookup interface {
	VerifyKey(ctx context.Context, server matrix.ServerName, keyID signing.KeyID, atTS int64) (ed25519.PublicKey, error)
}

// KeyLookupFunc adapts a function to KeyLookup.
type KeyLookupFunc func(ctx context.Context, server matrix.ServerName, keyID signing.KeyID, atTS int64) (ed25519.PublicKey, error)

// VerifyKey calls f.
func (f KeyLookupFunc) VerifyKey(ctx context.Context, server matrix.ServerName, keyID signing.KeyID, atTS int64) (ed25519.PublicKey, error) {
	return f(ctx, server, keyID, atTS)
}

// RequiredSigners returns the servers whose signatures e needs (server-server
// API, "Validating hashes and signatures on received events"):
//
//   - the sender's server, unless e is a third-party invite (an invite
//     whose content has third_party_invite), which "the server which
//     actually sends the event may be a different server" from;
//   - in room versions 1 and 2, the server of the event ID if different;
//   - for a join with content.join_authorised_via_users_server in a version
//     with restricted rooms, that user's server (auth rule 5.2.1 of v8+:
//     "If the event is not validly signed by the homeserver of the user ID
//     denoted by the key, reject").
func RequiredSigners(e *PDU) ([]matrix.ServerName, error) {
	var out []matrix.ServerName
	add := func(s matrix.ServerName) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	membership := e.Membership()
	thirdPartyInvite := false
	if membership == "invite" {
		_, thirdPartyInvite = canonicaljson.Lookup(e.content, "third_party_invite")
	}
	if !thirdPartyInvite {
		add(e.sender.Server())
	}
	if e.v.EventIDInJSON() {
		if s, ok := e.eventID.Server(); ok {
			add(s)
		}
	}
	// The server-server API's signature list names joins only, but auth rule
	// 4.2 (v8+) rejects any membership event carrying the key unless that
	// user's server signed it, so the stricter reading is the one to check.
	if e.v.Restricted && e.typ == TypeMember {
		if val, ok := canonicaljson.Lookup(e.content, "join_authorised_via_users_server"); ok {
			s, err := parseString(val)
			if err != nil {
				return nil, fmt.Errorf("%w: join_authorised_via_users_server: %v", ErrSignature, err)
			}
			u, err := matrix.ParseUserID(s)
			if err != nil {
				return nil, fmt.Errorf("%w: join_authorised_via_users_server: %v", ErrSignature, err)
			}
			add(u.Server())
		}
	}
	return out, nil
}

// VerifySignatures checks the signatures of e. The redacted event, without
// signatures and unsigned, is what was signed, so the check passes for the
// full and the redacted copy alike. For each required server (see
// RequiredSigners) every ed25519 signature whose key the lookup knows must
// verify, and at least one must; signatures by unknown or expired keys are
// skipped, as are other servers' signatures. Errors wrap ErrSignature.
func VerifySignatures(ctx context.Context, e *PDU, keys KeyLookup) error {
	servers, err := RequiredSigners(e)
	if err != nil {
		return fmt.Errorf("verify signatures of %s: %w", e.eventID, err)
	}
	signed, err := redactCanonicalTo(e.raw, e.v, true)
	if err != nil {
		return fmt.Errorf("verify signatures of %s: %w", e.eventID, err)
	}
	var all map[string]map[string]json.RawMessage
	if sigs, ok := canonicaljson.Lookup(e.raw, "signatures"); ok {
		if err := json.Unmarshal(sigs, &all); err != nil {
			return fmt.Errorf("verify signatures of %s: %w: malformed signatures: %v", e.eventID, ErrSignature, err)
		}
	}
	atTS := int64(0)
	if e.v.EnforceKeyValidity {
		atTS = e.ts
	}
	for _, server := range servers {
		if err := verifyServer(ctx, e, signed, server, all[string(server)], keys, atTS); err != nil {
			return fmt.Errorf("verify signatures of %s: %w", e.eventID, err)
		}
	}
	return nil
}

func verifyServer(ctx context.Context, e *PDU, signed []byte, server matrix.ServerName, sigs map[string]json.RawMessage, keys KeyLookup, atTS int64) error {
	ids := make([]string, 0, len(sigs))
	for id := range sigs {
		ids = append(ids, id)
	}
	slices.Sort(ids) // deterministic errors and lookup order
	verified := 0
	var lookupErr error
	for _, id := range ids {
		keyID := signing.KeyID(id)
		if keyID.Algorithm() != "ed25519" {
			continue // "Checking for a Signature" step 2
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pub, err := keys.VerifyKey(ctx, server, keyID, atTS)
		if err != nil {
			lookupErr = err
			continue
		}
		var b64 string
		if err := json.Unmarshal(sigs[id], &b64); err != nil {
			return fmt.Errorf("%w: %s %s: signature is not a string", ErrSignature, server, keyID)
		}
		sig, err := signing.DecodeBase64(b64)
		if err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrSignature, server, keyID, err)
		}
		if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signed, sig) {
			return fmt.Errorf("%w: %s %s: signature does not verify", ErrSignature, server, keyID)
		}
		verified++
	}
	if verified == 0 {
		if lookupErr != nil {
			return fmt.Errorf("%w: no usable signature from %s: %v", ErrSignature, server, lookupErr)
		}
		return fmt.Errorf("%w: no signature from %s", ErrSignature, server)
	}
	return nil
}
