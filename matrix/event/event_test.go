package event

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

func specKey(t testing.TB) signing.Key {
	t.Helper()
	seed, err := signing.DecodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.NewKeyFromSeed("ed25519:1", seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyring is a KeyLookup over fixed keys.
type keyring map[matrix.ServerName]signing.Key

func (r keyring) VerifyKey(_ context.Context, server matrix.ServerName, id signing.KeyID, _ int64) (ed25519.PublicKey, error) {
	k, ok := r[server]
	if !ok || k.ID != id {
		return nil, fmt.Errorf("no key %s for %s", id, server)
	}
	return k.Public(), nil
}

// TestSpecEventSigning reproduces appendices "Event Signing": the content
// hash and the signature over the event redacted with the v1 algorithm.
func TestSpecEventSigning(t *testing.T) {
	k := specKey(t)
	tests := []struct {
		name, in, hash, sig string
	}{
		{
			"minimal",
			`{"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,"signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,"unsigned":{"age_ts":1000000}}`,
			"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos",
			"KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg",
		},
		{
			"redactable",
			`{"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain","origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain","signatures":{},"unsigned":{"age_ts":1000000}}`,
			"onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g",
			"Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA",
		},
	}
	v1 := MustVersion("1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ContentHash([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := signing.EncodeBase64(h); got != tt.hash {
				t.Fatalf("content hash = %s, want %s", got, tt.hash)
			}
			hashes, _ := json.Marshal(map[string]string{"sha256": tt.hash})
			obj, _ := canonicaljson.Canonicalize([]byte(tt.in))
			obj, err = canonicaljson.Set(obj, "hashes", hashes)
			if err != nil {
				t.Fatal(err)
			}
			redacted, err := Redact(obj, v1)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signing.SignCanonical(redacted, k)
			if err != nil {
				t.Fatal(err)
			}
			if got := signing.EncodeBase64(sig); got != tt.sig {
				t.Fatalf("signature = %s, want %s", got, tt.sig)
			}
		})
	}
}

func strp(s string) *string { return &s }

// buildRoom builds a create event and a message for room version v and
// returns them.
func buildRoom(t testing.TB, v *RoomVersion, k signing.Key) (create, msg *PDU) {
	t.Helper()
	alice := matrix.UserID("@alice:a.example")
	cp := Proto{
		Type: TypeCreate, StateKey: strp(""), Sender: alice,
		Content:        map[string]any{"room_version": v.ID, "creator": alice},
		Depth:          1,
		OriginServerTS: 1700000000000,
	}
	if !v.RoomIDFromCreate {
		cp.RoomID = "!room:a.example"
	}
	create, err := cp.Build(v, "a.example", k)
	if err != nil {
		t.Fatalf("v%s create: %v", v.ID, err)
	}
	mp := Proto{
		Type: "m.room.message", Sender: alice, RoomID: create.RoomID(),
		Content:        map[string]any{"body": "hello <b>&</b> \u2028", "msgtype": "m.text"},
		PrevEvents:     []matrix.EventID{create.EventID()},
		AuthEvents:     []matrix.EventID{create.EventID()},
		Depth:          2,
		OriginServerTS: 1700000000001,
		Unsigned:       map[string]any{"transaction_id": "t1"},
	}
	msg, err = mp.Build(v, "a.example", k)
	if err != nil {
		t.Fatalf("v%s message: %v", v.ID, err)
	}
	return create, msg
}

func TestBuildParseVerifyAllVersions(t *testing.T) {
	k, err := signing.GenerateKey("ed25519:test")
	if err != nil {
		t.Fatal(err)
	}
	keys := keyring{"a.example": k}
	for _, id := range StableVersions() {
		v := MustVersion(id)
		t.Run("v"+id, func(t *testing.T) {
			create, msg := buildRoom(t, v, k)
			for _, e := range []*PDU{create, msg} {
				if err := VerifySignatures(t.Context(), e, keys); err != nil {
					t.Fatalf("%s: VerifySignatures: %v", e.Type(), err)
				}
				if err := VerifyHashes(e); err != nil {
					t.Fatalf("%s: VerifyHashes: %v", e.Type(), err)
				}
				again, err := Parse(e.JSON(), v)
				if err != nil {
					t.Fatalf("%s: re-parse: %v", e.Type(), err)
				}
				if !bytes.Equal(again.JSON(), e.JSON()) || again.EventID() != e.EventID() || again.RoomID() != e.RoomID() {
					t.Fatalf("%s: re-parse changed the event", e.Type())
				}
				if _, err := ParseWithID(e.JSON(), v, e.EventID()); err != nil {
					t.Fatalf("ParseWithID: %v", err)
				}
				if _, err := ParseWithID(e.JSON(), v, "$other:x"); !errors.Is(err, ErrFormat) {
					t.Fatalf("ParseWithID with wrong ID: %v", err)
				}
				// What this server stored reads back the same without the hash.
				stored, err := ParseStored(e.JSON(), v, e.EventID())
				if err != nil {
					t.Fatalf("ParseStored: %v", err)
				}
				if !bytes.Equal(stored.JSON(), e.JSON()) || stored.EventID() != e.EventID() || stored.RoomID() != e.RoomID() ||
					stored.Type() != e.Type() || stored.Depth() != e.Depth() || !slices.Equal(stored.AuthEventIDs(), e.AuthEventIDs()) || !slices.Equal(stored.PrevEventIDs(), e.PrevEventIDs()) {
					t.Fatalf("%s: ParseStored differs from Parse", e.Type())
				}
				if _, err := ParseStored(e.JSON()[:len(e.JSON())-1], v, e.EventID()); err == nil {
					t.Fatalf("%s: ParseStored accepted a truncated row", e.Type())
				}
				if _, err := ParseStored(e.JSON(), v, ""); err == nil {
					t.Fatalf("%s: ParseStored accepted no ID", e.Type())
				}
				checkEventIDFormat(t, e)
				// The redacted copy keeps its ID and still verifies.
				red, err := e.Redacted()
				if err != nil {
					t.Fatal(err)
				}
				if red.EventID() != e.EventID() {
					t.Fatalf("redaction changed the ID: %s -> %s", e.EventID(), red.EventID())
				}
				if id, err := ComputeEventID(red.JSON(), v); err != nil || id != e.EventID() {
					t.Fatalf("the redacted form hashes to %s (%v), want %s", id, err, e.EventID())
				}
				// As the roomserver stores a redacted event: with redacted_because.
				marked, err := red.WithUnsigned(map[string]json.RawMessage{"redacted_because": msg.JSON()})
				if err != nil {
					t.Fatal(err)
				}
				if back, err := ParseStored(marked.JSON(), v, e.EventID()); err != nil || !bytes.Equal(back.JSON(), marked.JSON()) ||
					string(back.Unsigned()) != string(marked.Unsigned()) {
					t.Fatalf("%s: ParseStored of the redacted row: %v", e.Type(), err)
				}
				if err := VerifySignatures(t.Context(), red, keys); err != nil {
					t.Fatalf("redacted: %v", err)
				}
			}
			if msg.Unsigned() == nil || !strings.Contains(string(msg.Unsigned()), "t1") {
				t.Fatalf("unsigned lost: %s", msg.JSON())
			}
			if v.RoomIDFromCreate {
				if create.RoomID() != matrix.RoomID("!"+create.EventID()[1:]) {
					t.Fatalf("v12 room ID %s, event ID %s", create.RoomID(), create.EventID())
				}
				if _, has := canonicaljson.Lookup(create.JSON(), "room_id"); has {
					t.Fatal("v12 create event has room_id")
				}
			}
			var body map[string]any
			if err := json.Unmarshal(msg.Content(), &body); err != nil || body["body"] != "hello <b>&</b> \u2028" {
				t.Fatalf("content = %s", msg.Content())
			}
			if !canonicaljson.IsCanonical(msg.JSON()) {
				t.Fatal("JSON() not canonical")
			}
		})
	}
}

func checkEventIDFormat(t *testing.T, e *PDU) {
	t.Helper()
	id := string(e.EventID())
	switch e.Version().EventIDFormat {
	case EventIDFormatV1:
		if s, ok := e.EventID().Server(); !ok || s != "a.example" {
			t.Fatalf("v1 event ID %s", id)
		}
	case EventIDFormatV3:
		if len(id) != 44 || strings.ContainsAny(id, "-_:") {
			t.Fatalf("v3 event ID %s", id)
		}
	case EventIDFormatV4:
		if len(id) != 44 || strings.ContainsAny(id, "+/:") {
			t.Fatalf("v4 event ID %s", id)
		}
	}
	if _, err := matrix.ParseEventID(id); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySignaturesFailures(t *testing.T) {
	k, _ := signing.GenerateKey("ed25519:k")
	other, _ := signing.GenerateKey("ed25519:k")
	v := MustVersion("10")
	_, msg := buildRoom(t, v, k)

	if err := VerifySignatures(t.Context(), msg, keyring{"a.example": other}); !errors.Is(err, ErrSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := VerifySignatures(t.Context(), msg, keyring{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("unknown key: %v", err)
	}
	// Tampering with a protected field breaks the signature; with the
	// content, only the hash.
	tampered := bytes.Replace(msg.JSON(), []byte(`"depth":2`), []byte(`"depth":3`), 1)
	te, err := Parse(tampered, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(t.Context(), te, keyring{"a.example": k}); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered depth: %v", err)
	}
	tc := bytes.Replace(msg.JSON(), []byte(`"msgtype":"m.text"`), []byte(`"msgtype":"m.note"`), 1)
	ce, err := Parse(tc, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(t.Context(), ce, keyring{"a.example": k}); err != nil {
		t.Fatalf("content change must keep the signature valid: %v", err)
	}
	if err := VerifyHashes(ce); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("content change: VerifyHashes = %v", err)
	}
	// A signature from another server only is not enough.
	elsewhere := Proto{Type: "m.room.message", Sender: "@bob:b.example", RoomID: "!room:a.example",
		Content: map[string]any{}, PrevEvents: []matrix.EventID{}, AuthEvents: []matrix.EventID{}, Depth: 3}
	be, err := elsewhere.Build(v, "a.example", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(t.Context(), be, keyring{"a.example": k, "b.example": k}); !errors.Is(err, ErrSignature) {
		t.Fatalf("signed by the wrong server: %v", err)
	}
	// Cancelled context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := VerifySignatures(ctx, msg, keyring{"a.example": k}); err == nil {
		t.Fatal("cancelled context verified")
	}
}

func TestKeyValidityTimestamp(t *testing.T) {
	k, _ := signing.GenerateKey("ed25519:k")
	for _, tt := range []struct {
		version string
		wantTS  int64
	}{{"4", 0}, {"5", 1700000000001}, {"12", 1700000000001}} {
		_, msg := buildRoom(t, MustVersion(tt.version), k)
		var gotTS int64 = -1
		lookup := KeyLookupFunc(func(_ context.Context, _ matrix.ServerName, _ signing.KeyID, atTS int64) (ed25519.PublicKey, error) {
			gotTS = atTS
			return k.Public(), nil
		})
		if err := VerifySignatures(t.Context(), msg, lookup); err != nil {
			t.Fatal(err)
		}
		if gotTS != tt.wantTS {
			t.Errorf("v%s: lookup at %d, want %d", tt.version, gotTS, tt.wantTS)
		}
	}
}

func TestRequiredSigners(t *testing.T) {
	k, _ := signing.GenerateKey("ed25519:k")
	tests := []struct {
		name    string
		version string
		proto   Proto
		want    []matrix.ServerName
	}{
		{"message", "10", Proto{Type: "m.room.message", Sender: "@u:s1"}, []matrix.ServerName{"s1"}},
		{"v1 event id server", "1", Proto{Type: "m.room.message", Sender: "@u:s1"}, []matrix.ServerName{"s1", "origin"}},
		{"restricted join", "10", Proto{Type: TypeMember, StateKey: strp("@u:s1"), Sender: "@u:s1",
			Content: map[string]any{"membership": "join", "join_authorised_via_users_server": "@r:s2"}}, []matrix.ServerName{"s1", "s2"}},
		{"join_authorised on a leave (auth rule 4.2)", "10", Proto{Type: TypeMember, StateKey: strp("@u:s1"), Sender: "@u:s1",
			Content: map[string]any{"membership": "leave", "join_authorised_via_users_server": "@r:s2"}}, []matrix.ServerName{"s1", "s2"}},
		{"join_authorised ignored before v8", "7", Proto{Type: TypeMember, StateKey: strp("@u:s1"), Sender: "@u:s1",
			Content: map[string]any{"membership": "join", "join_authorised_via_users_server": "@r:s2"}}, []matrix.ServerName{"s1"}},
		{"third party invite", "10", Proto{Type: TypeMember, StateKey: strp("@u:s3"), Sender: "@u:s1",
			Content: map[string]any{"membership": "invite", "third_party_invite": map[string]any{}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proto
			p.RoomID = "!r:origin"
			p.Depth = 1
			e, err := p.Build(MustVersion(tt.version), "origin", k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RequiredSigners(e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RequiredSigners = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	if got := StableVersions(); !reflect.DeepEqual(got, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}) {
		t.Fatalf("StableVersions = %v", got)
	}
	if _, ok := Version(DefaultRoomVersion); !ok {
		t.Fatal("default version unknown")
	}
	if _, ok := Version("13"); ok {
		t.Fatal("version 13 known")
	}
	// Spot checks of the feature matrix (rooms/_index.md) and the table in
	// the spec README.
	tests := []struct {
		id                                                   string
		knock, restricted, knockRestricted, creators, strict bool
		ids                                                  EventIDFormat
		redaction                                            RedactionRules
		stateRes                                             StateResAlgorithm
	}{
		{"1", false, false, false, false, false, EventIDFormatV1, RedactionV1, StateResV1},
		{"2", false, false, false, false, false, EventIDFormatV1, RedactionV1, StateResV2},
		{"3", false, false, false, false, false, EventIDFormatV3, RedactionV1, StateResV2},
		{"5", false, false, false, false, false, EventIDFormatV4, RedactionV1, StateResV2},
		{"6", false, false, false, false, true, EventIDFormatV4, RedactionV6, StateResV2},
		{"7", true, false, false, false, true, EventIDFormatV4, RedactionV6, StateResV2},
		{"8", true, true, false, false, true, EventIDFormatV4, RedactionV8, StateResV2},
		{"9", true, true, false, false, true, EventIDFormatV4, RedactionV9, StateResV2},
		{"10", true, true, true, false, true, EventIDFormatV4, RedactionV9, StateResV2},
		{"11", true, true, true, false, true, EventIDFormatV4, RedactionV11, StateResV2},
		{"12", true, true, true, true, true, EventIDFormatV4, RedactionV11, StateResV2_1},
	}
	for _, tt := range tests {
		v := MustVersion(tt.id)
		got := []any{v.Knocking, v.Restricted, v.KnockRestricted, v.PrivilegedCreators, v.StrictCanonicalJSON, v.EventIDFormat, v.RedactionRules, v.StateRes}
		want := []any{tt.knock, tt.restricted, tt.knockRestricted, tt.creators, tt.strict, tt.ids, tt.redaction, tt.stateRes}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("v%s = %v, want %v", tt.id, got, want)
		}
	}
}
