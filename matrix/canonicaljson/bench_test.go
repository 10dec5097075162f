package canonicaljson

import (
	"encoding/json"
	"testing"
)

// typicalEvent is an m.room.message PDU as it arrives over federation: keys
// out of order, some whitespace, a few escapes.
var typicalEvent = []byte(`{
  "type": "m.room.message",
  "room_id": "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ",
  "sender": "@alice:example.org",
  "origin_server_ts": 1700000000000,
  "depth": 1234,
  "content": {
    "msgtype": "m.text",
    "body": "Hello there! \u00e9\u00e8 <b>bold</b> \ud83d\ude00 with a \"quote\" and a\nnewline",
    "format": "org.matrix.custom.html",
    "formatted_body": "Hello there! <b>bold</b>",
    "m.mentions": {"user_ids": ["@bob:example.org"]}
  },
  "prev_events": ["$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"],
  "auth_events": ["$CD66HAED5npg6074c6pDtLKalHjVfYb2q4Q3LZgrW6o", "$acR1l0raoZnm60CBwAVgqbZqoO-mYU81xysh1u7XcJk", "$urlsafe_base64_encoded_eventid_0123456789abcd"],
  "hashes": {"sha256": "ThisHashCoversAllFieldsInCaseThisIsRedacted"},
  "signatures": {"example.org": {"ed25519:a_AbCd": "these86bytesofbase64signaturecoveressentialfieldsincludinghashessocancheckredactedpdus"}},
  "unsigned": {"age": 4612}
}`)

func BenchmarkCanonicalize(b *testing.B) {
	b.SetBytes(int64(len(typicalEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(typicalEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalizeCanonical measures the common case of stored events,
// which are already canonical.
func BenchmarkCanonicalizeCanonical(b *testing.B) {
	c, err := Canonicalize(typicalEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalizeStrict(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlibRoundTrip is the naive alternative, for comparison:
// unmarshal into any and marshal again (sorted keys, but wrong escaping).
func BenchmarkStdlibRoundTrip(b *testing.B) {
	b.SetBytes(int64(len(typicalEvent)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(typicalEvent, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
