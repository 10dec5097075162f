package event

import (
	"testing"

	"github.com/axon-hs/axon/matrix/signing"
)

func benchEvent(b *testing.B) (*PDU, keyring) {
	k, err := signing.GenerateKey("ed25519:k")
	if err != nil {
		b.Fatal(err)
	}
	_, msg := buildRoom(b, MustVersion("12"), k)
	return msg, keyring{"a.example": k}
}

func BenchmarkParse(b *testing.B) {
	msg, _ := benchEvent(b)
	v := msg.Version()
	raw := msg.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStored is BenchmarkParse for an event read back from the
// server's own storage, its ID known.
func BenchmarkParseStored(b *testing.B) {
	msg, _ := benchEvent(b)
	v, id := msg.Version(), msg.EventID()
	raw := msg.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStored(raw, v, id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventID(b *testing.B) {
	msg, _ := benchEvent(b)
	v := msg.Version()
	raw := msg.JSON()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ComputeEventID(raw, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignatures(b *testing.B) {
	msg, keys := benchEvent(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifySignatures(ctx, msg, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHashes(b *testing.B) {
	msg, _ := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyHashes(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	k, err := signing.GenerateKey("ed25519:k")
	if err != nil {
		b.Fatal(err)
	}
	v := MustVersion("12")
	create, _ := buildRoom(b, v, k)
	p := Proto{Type: "m.room.message", Sender: "@alice:a.example", RoomID: create.RoomID(),
		Content: map[string]any{"body": "hello", "msgtype": "m.text"}, Depth: 2,
		PrevEvents: create.PrevEventIDs(), OriginServerTS: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Build(v, "a.example", k); err != nil {
			b.Fatal(err)
		}
	}
}
