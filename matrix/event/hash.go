package event

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

// ErrHashMismatch means an event's content hash does not match its
// hashes.sha256. The spec's remedy is to use the redacted event instead
// (server-server API, "Validating hashes and signatures on received events").
var ErrHashMismatch = errors.New("content hash mismatch")

// ContentHash computes the content hash of the event raw (server-server API,
// "Calculating the content hash for an event"): sha256 of the canonical JSON
// of the event without "unsigned", "signatures" and "hashes".
func ContentHash(raw []byte) ([]byte, error) {
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("content hash: %w", err)
	}
	return contentHashCanonical(obj)
}

func contentHashCanonical(obj []byte) ([]byte, error) {
	stripped, err := canonicaljson.Filter(obj, func(k string) bool {
		return k != "unsigned" && k != "signatures" && k != "hashes"
	})
	if err != nil {
		return nil, fmt.Errorf("content hash: %w", err)
	}
	sum := sha256.Sum256(stripped)
	return sum[:], nil
}

// ReferenceHash computes the reference hash of the event raw in room version
// v (server-server API, "Calculating the reference hash for an event"):
// sha256 of the canonical JSON of the redacted event without "signatures"
// and "unsigned".
func ReferenceHash(raw []byte, v *RoomVersion) ([]byte, error) {
	if v == nil {
		return nil, errors.New("reference hash: nil room version")
	}
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("reference hash: %w", err)
	}
	return referenceHashCanonical(obj, v)
}

func referenceHashCanonical(obj []byte, v *RoomVersion) ([]byte, error) {
	stripped, err := redactCanonicalTo(obj, v, true)
	if err != nil {
		return nil, fmt.Errorf("reference hash: %w", err)
	}
	sum := sha256.Sum256(stripped)
	return sum[:], nil
}

// EventIDFromReferenceHash forms the event ID of room versions 3 and later:
// "$" + the unpadded base64 of the hash, standard alphabet in version 3 and
// URL-safe afterwards.
func EventIDFromReferenceHash(hash []byte, v *RoomVersion) (matrix.EventID, error) {
	switch v.EventIDFormat {
	case EventIDFormatV3:
		return matrix.EventID("$" + signing.EncodeBase64(hash)), nil
	case EventIDFormatV4:
		return matrix.EventID("$" + signing.EncodeBase64URL(hash)), nil
	}
	return "", fmt.Errorf("room version %s: event IDs are not reference hashes", v.ID)
}

// ComputeEventID returns the ID of the event raw in room version v: the
// event_id field in versions 1 and 2, the reference hash afterwards.
func ComputeEventID(raw []byte, v *RoomVersion) (matrix.EventID, error) {
	if v == nil {
		return "", errors.New("compute event ID: nil room version")
	}
	obj, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return "", fmt.Errorf("compute event ID: %w", err)
	}
	return computeEventID(obj, v)
}

func computeEventID(obj []byte, v *RoomVersion) (matrix.EventID, error) {
	if v.EventIDInJSON() {
		val, ok := canonicaljson.Lookup(obj, "event_id")
		if !ok {
			return "", fmt.Errorf("%w: room version %s event has no event_id", ErrFormat, v.ID)
		}
		s, err := canonicaljson.Unquote(val)
		if err != nil {
			return "", fmt.Errorf("%w: event_id: %v", ErrFormat, err)
		}
		id, err := matrix.ParseEventID(s)
		if err != nil {
			return "", fmt.Errorf("%w: event_id: %v", ErrFormat, err)
		}
		if _, ok := id.Server(); !ok {
			return "", fmt.Errorf("%w: room version %s event_id %q has no server part", ErrFormat, v.ID, s)
		}
		return id, nil
	}
	h, err := referenceHashCanonical(obj, v)
	if err != nil {
		return "", err
	}
	return EventIDFromReferenceHash(h, v)
}

// VerifyHashes checks the content hash of e against its hashes.sha256. On
// ErrHashMismatch the caller must continue with e.Redacted().
func VerifyHashes(e *PDU) error {
	hashes, ok := canonicaljson.Lookup(e.raw, "hashes")
	if !ok {
		return fmt.Errorf("verify hashes of %s: %w: no hashes", e.eventID, ErrHashMismatch)
	}
	val, ok := canonicaljson.Lookup(hashes, "sha256")
	if !ok {
		return fmt.Errorf("verify hashes of %s: %w: no sha256 hash", e.eventID, ErrHashMismatch)
	}
	s, err := canonicaljson.Unquote(val)
	if err != nil {
		return fmt.Errorf("verify hashes of %s: %w: sha256 is not a string", e.eventID, ErrHashMismatch)
	}
	want, err := signing.DecodeBase64(s)
	if err != nil {
		return fmt.Errorf("verify hashes of %s: %w: %v", e.eventID, ErrHashMismatch, err)
	}
	got, err := contentHashCanonical(e.raw)
	if err != nil {
		return fmt.Errorf("verify hashes of %s: %w", e.eventID, err)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("verify hashes of %s: %w", e.eventID, ErrHashMismatch)
	}
	return nil
}
