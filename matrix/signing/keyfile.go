package signing

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
)

// MarshalKeyFile writes k in Synapse's signing key file format, one line of
// "<algorithm> <version> <unpadded base64 seed>", so that keys move between
// Synapse and Axon unchanged.
func MarshalKeyFile(k Key) []byte {
	seed := []byte(nil)
	if len(k.Private) == ed25519.PrivateKeySize {
		seed = k.Private.Seed()
	}
	return []byte(fmt.Sprintf("%s %s %s\n", k.ID.Algorithm(), k.ID.Version(), EncodeBase64(seed)))
}

// ParseKeyFile reads a signing key file. Synapse allows several keys, one per
// line; the first ed25519 key is returned (ParseKeyFileAll returns them all).
func ParseKeyFile(data []byte) (Key, error) {
	keys, err := ParseKeyFileAll(data)
	if err != nil {
		return Key{}, err
	}
	return keys[0], nil
}

// ParseKeyFileAll reads every key of a signing key file, skipping blank lines.
func ParseKeyFileAll(data []byte) ([]Key, error) {
	var keys []Key
	for n, line := range bytes.Split(data, []byte("\n")) {
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("signing key file line %d: want \"ed25519 <version> <seed>\"", n+1)
		}
		id, err := ParseKeyID(fields[0] + ":" + fields[1])
		if err != nil {
			return nil, fmt.Errorf("signing key file line %d: %w", n+1, err)
		}
		seed, err := DecodeBase64(fields[2])
		if err != nil {
			return nil, fmt.Errorf("signing key file line %d: %w", n+1, err)
		}
		k, err := NewKeyFromSeed(id, seed)
		if err != nil {
			return nil, fmt.Errorf("signing key file line %d: %w", n+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("signing key file: no keys")
	}
	return keys, nil
}
