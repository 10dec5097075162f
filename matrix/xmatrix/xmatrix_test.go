package xmatrix

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/axon-hs/axon/matrix/signing"
)

// specKey is the key of the appendix "Cryptographic Test Vectors".
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

// TestSignKnownAnswer checks Sign against a signature made directly with
// ed25519 over the step 1 object written out by hand, so the test does not
// depend on the code that builds the object.
func TestSignKnownAnswer(t *testing.T) {
	k := specKey(t)
	tests := []struct {
		name string
		req  Request
		obj  string // the canonical object, by hand
	}{
		{
			name: "no body",
			req:  Request{Method: "GET", URI: "/_matrix/federation/v1/version", Origin: "origin.hs.example.com", Destination: "destination.hs.example.com"},
			obj:  `{"destination":"destination.hs.example.com","method":"GET","origin":"origin.hs.example.com","uri":"/_matrix/federation/v1/version"}`,
		},
		{
			name: "body is canonicalized",
			req: Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1?x=%20y", Origin: "origin.hs.example.com:8448", Destination: "[::1]:8448",
				Content: json.RawMessage(`{ "pdus": [], "edus": [{"b": 1, "a": "é\u00e9"}], "origin": "o" }`)},
			obj: `{"content":{"edus":[{"a":"éé","b":1}],"origin":"o","pdus":[]},"destination":"[::1]:8448","method":"PUT","origin":"origin.hs.example.com:8448","uri":"/_matrix/federation/v1/send/1?x=%20y"}`,
		},
		{
			name: "empty object body",
			req:  Request{Method: "POST", URI: "/target", Origin: "origin.hs.example.com", Destination: "destination.hs.example.com", Content: json.RawMessage(`{}`)},
			obj:  `{"content":{},"destination":"destination.hs.example.com","method":"POST","origin":"origin.hs.example.com","uri":"/target"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sign(tc.req, k)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			sig := signing.EncodeBase64(ed25519.Sign(k.Private, []byte(tc.obj)))
			want := `X-Matrix origin="` + string(tc.req.Origin) + `",destination="` + string(tc.req.Destination) +
				`",key="ed25519:1",sig="` + sig + `"`
			if got != want {
				t.Errorf("Sign =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	k := specKey(t)
	reqs := []Request{
		{Method: "GET", URI: "/_matrix/key/v2/server", Origin: "a.example", Destination: "b.example"},
		{Method: "PUT", URI: "/_matrix/federation/v1/send/txn1", Origin: "a.example:8448", Destination: "1.2.3.4",
			Content: json.RawMessage(`{"pdus":[{"content":{"body":"hi \"there\" \\ ☃"}}]}`)},
		{Method: "GET", URI: "/_matrix/federation/v1/query/profile?user_id=%40a%3Ab.example&field=displayname", Origin: "[2001:db8::1]:443", Destination: "b.example"},
		{Method: "POST", URI: "/_matrix/federation/v1/user/keys/query", Origin: "a.example", Destination: "b.example", Content: json.RawMessage(`{"device_keys":{}}`)},
	}
	for _, r := range reqs {
		t.Run(r.Method+" "+r.URI, func(t *testing.T) {
			v, err := Sign(r, k)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			h, err := ParseHeader(v)
			if err != nil {
				t.Fatalf("ParseHeader(%q): %v", v, err)
			}
			if h.Origin != r.Origin || h.Destination != r.Destination || h.KeyID != k.ID {
				t.Fatalf("ParseHeader(%q) = %+v", v, h)
			}
			if h.String() != v {
				t.Errorf("Header.String() = %q, want %q", h.String(), v)
			}
			// The receiver does not know the origin in advance.
			recv := r
			recv.Origin = ""
			if err := Verify(recv, h, k.Public()); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// Whitespace in the body does not matter: the content is
			// compared in canonical form.
			if r.Content != nil {
				recv.Content = json.RawMessage(" \n" + string(r.Content) + "\t")
				if err := Verify(recv, h, k.Public()); err != nil {
					t.Fatalf("Verify with reformatted body: %v", err)
				}
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	k := specKey(t)
	other, err := signing.GenerateKey("ed25519:other")
	if err != nil {
		t.Fatal(err)
	}
	base := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1", Origin: "a.example", Destination: "b.example",
		Content: json.RawMessage(`{"pdus":[]}`)}
	v, err := Sign(base, k)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(v)
	if err != nil {
		t.Fatal(err)
	}
	noDest := h
	noDest.Destination = ""

	tests := []struct {
		name string
		req  func(Request) Request
		hdr  func(Header) Header
		pub  ed25519.PublicKey
		want error // nil: any error
	}{
		{name: "other method", req: func(r Request) Request { r.Method = "POST"; return r }, want: signing.ErrBadSignature},
		{name: "other uri", req: func(r Request) Request { r.URI += "?a=b"; return r }, want: signing.ErrBadSignature},
		{name: "other content", req: func(r Request) Request { r.Content = json.RawMessage(`{"pdus":[1]}`); return r }, want: signing.ErrBadSignature},
		{name: "content removed", req: func(r Request) Request { r.Content = nil; return r }, want: signing.ErrBadSignature},
		{name: "origin in header changed", req: func(r Request) Request { r.Origin = ""; return r },
			hdr: func(h Header) Header { h.Origin = "c.example"; return h }, want: signing.ErrBadSignature},
		{name: "expected origin differs", req: func(r Request) Request { r.Origin = "c.example"; return r }, want: ErrWrongOrigin},
		{name: "we are someone else", req: func(r Request) Request { r.Destination = "c.example"; return r }, want: ErrWrongDestination},
		{name: "no destination in header, we are someone else", req: func(r Request) Request { r.Destination = "c.example"; return r },
			hdr: func(Header) Header { return noDest }, want: signing.ErrBadSignature},
		{name: "wrong key", pub: other.Public(), want: signing.ErrBadSignature},
		{name: "short key", pub: ed25519.PublicKey{1, 2, 3}},
		{name: "sig not base64", hdr: func(h Header) Header { h.Sig = "!!!"; return h }, want: signing.ErrBadSignature},
		{name: "sig truncated", hdr: func(h Header) Header { h.Sig = h.Sig[:40]; return h }, want: signing.ErrBadSignature},
		{name: "content not JSON", req: func(r Request) Request { r.Content = json.RawMessage(`{"pdus":`); return r }},
		{name: "uri not a path", req: func(r Request) Request { r.URI = "https://b.example/x"; return r }},
		{name: "uri invalid UTF-8", req: func(r Request) Request { r.URI = "/\xff"; return r }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, hh, pub := base, h, k.Public()
			if tc.req != nil {
				r = tc.req(r)
			}
			if tc.hdr != nil {
				hh = tc.hdr(hh)
			}
			if tc.pub != nil {
				pub = tc.pub
			}
			err := Verify(r, hh, pub)
			if err == nil {
				t.Fatalf("Verify succeeded, want error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	// A header without destination (servers before v1.3) verifies when we
	// are the destination the sender signed for.
	if err := Verify(base, noDest, k.Public()); err != nil {
		t.Errorf("Verify without destination: %v", err)
	}
}

func TestSignRejects(t *testing.T) {
	k := specKey(t)
	good := Request{Method: "GET", URI: "/x", Origin: "a.example", Destination: "b.example"}
	tests := []struct {
		name string
		req  func(Request) Request
		key  signing.Key
	}{
		{name: "no destination", req: func(r Request) Request { r.Destination = ""; return r }},
		{name: "bad origin", req: func(r Request) Request { r.Origin = `a"b`; return r }},
		{name: "no method", req: func(r Request) Request { r.Method = ""; return r }},
		{name: "relative uri", req: func(r Request) Request { r.URI = "x"; return r }},
		{name: "bad content", req: func(r Request) Request { r.Content = json.RawMessage(`{]`); return r }},
		{name: "no private key", key: signing.Key{ID: "ed25519:1"}},
		{name: "bad key id", key: signing.Key{ID: `ed25519:"`, Private: k.Private}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, key := good, k
			if tc.req != nil {
				r = tc.req(r)
			}
			if tc.key.ID != "" {
				key = tc.key
			}
			if v, err := Sign(r, key); err == nil {
				t.Fatalf("Sign = %q, want error", v)
			}
		})
	}
}

func TestParseHeaderSpecExample(t *testing.T) {
	const v = `X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."`
	h, err := ParseHeader(v)
	if err != nil {
		t.Fatalf("ParseHeader: %v", err)
	}
	want := Header{Origin: "origin.hs.example.com", Destination: "destination.hs.example.com", KeyID: "ed25519:key1", Sig: "ABCDEF..."}
	if h != want {
		t.Fatalf("ParseHeader = %+v, want %+v", h, want)
	}
}

func TestParseHeaderVariants(t *testing.T) {
	want := Header{Origin: "o.example:8448", Destination: "d.example", KeyID: "ed25519:k1", Sig: "c2ln/+="}
	tests := []struct {
		name string
		in   string
		want Header
	}{
		{"canonical", `X-Matrix origin="o.example:8448",destination="d.example",key="ed25519:k1",sig="c2ln/+="`, want},
		{"scheme case", `x-matrix origin="o.example:8448",destination="d.example",key="ed25519:k1",sig="c2ln/+="`, want},
		{"scheme upper", `X-MATRIX origin="o.example:8448",destination="d.example",key="ed25519:k1",sig="c2ln/+="`, want},
		{"name case", `X-Matrix ORIGIN="o.example:8448",Destination="d.example",Key="ed25519:k1",SIG="c2ln/+="`, want},
		{"several spaces after scheme", "X-Matrix    origin=\"o.example:8448\",destination=\"d.example\",key=\"ed25519:k1\",sig=\"c2ln/+=\"", want},
		{"leading and trailing whitespace", " \tX-Matrix origin=\"o.example:8448\",destination=\"d.example\",key=\"ed25519:k1\",sig=\"c2ln/+=\" \t", want},
		{"spaces and tabs around commas", "X-Matrix origin=\"o.example:8448\" ,\tdestination=\"d.example\"\t, key=\"ed25519:k1\" , sig=\"c2ln/+=\"", want},
		{"spaces around equals", `X-Matrix origin = "o.example:8448",destination= "d.example",key ="ed25519:k1",sig="c2ln/+="`, want},
		{"any order", `X-Matrix sig="c2ln/+=",key="ed25519:k1",destination="d.example",origin="o.example:8448"`, want},
		{"tokens with colon unquoted", `X-Matrix origin=o.example:8448,destination=d.example,key=ed25519:k1,sig="c2ln/+="`, want},
		{"unquoted base64", `X-Matrix origin=o.example:8448,destination=d.example,key=ed25519:k1,sig=c2ln/+=`, want},
		{"escapes", `X-Matrix origin="o.ex\ample:8448",destination="\d.example",key="ed25519\:k1",sig="c2ln\/+\="`, want},
		{"unknown params ignored", `X-Matrix foo=bar,origin="o.example:8448",x="a\"b,c",destination="d.example",key="ed25519:k1",sig="c2ln/+=",origin2="x"`, want},
		{"empty list elements", `X-Matrix ,origin="o.example:8448",,destination="d.example", ,key="ed25519:k1",sig="c2ln/+=",`, want},
		{"signature spelled out", `X-Matrix origin="o.example:8448",destination="d.example",key="ed25519:k1",signature="c2ln/+="`, want},
		{"no destination", `X-Matrix origin="o.example:8448",key="ed25519:k1",sig="c2ln/+="`,
			Header{Origin: "o.example:8448", KeyID: "ed25519:k1", Sig: "c2ln/+="}},
		{"IPv6 origin unquoted", `X-Matrix origin=[::1]:8448,key=ed25519:k1,sig=c2ln`,
			Header{Origin: "[::1]:8448", KeyID: "ed25519:k1", Sig: "c2ln"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHeader(tc.in)
			if err != nil {
				t.Fatalf("ParseHeader(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseHeader(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	const ok = `origin="o.example",destination="d.example",key="ed25519:k",sig="c2ln"`
	tests := []struct {
		name, in, wantMsg string
	}{
		{"empty", ``, "scheme"},
		{"only scheme", `X-Matrix`, "no parameters"},
		{"only scheme and space", `X-Matrix `, "no origin"},
		{"other scheme", `Bearer abc`, "scheme"},
		{"scheme prefix", `X-Matrixx ` + ok, "scheme"},
		{"no space after scheme", `X-Matrix,` + ok, "space after"},
		{"missing origin", `X-Matrix destination="d.example",key="ed25519:k",sig="c2ln"`, "no origin"},
		{"missing key", `X-Matrix origin="o.example",destination="d.example",sig="c2ln"`, "no key"},
		{"missing sig", `X-Matrix origin="o.example",destination="d.example",key="ed25519:k"`, "no sig"},
		{"empty sig", `X-Matrix origin="o.example",key="ed25519:k",sig=""`, "no sig"},
		{"duplicate origin", `X-Matrix ` + ok + `,origin="x.example"`, "twice"},
		{"duplicate in other case", `X-Matrix ` + ok + `,KEY="ed25519:x"`, "twice"},
		{"sig and signature", `X-Matrix ` + ok + `,signature="c2ln"`, "twice"},
		{"no equals", `X-Matrix origin "o.example"`, "no '='"},
		{"name missing", `X-Matrix ="o.example"`, "parameter name"},
		{"value missing at end", `X-Matrix origin=`, "missing value"},
		{"value missing before comma", `X-Matrix origin=,key="ed25519:k"`, "invalid character"},
		{"unterminated quote", `X-Matrix key="ed25519:k",sig="c2ln`, "unterminated"},
		{"unterminated escape", `X-Matrix origin="o.example\`, "unterminated escape"},
		{"control char in quotes", "X-Matrix origin=\"o.exa\x01mple\"," + ok, "invalid character"},
		{"escaped control char", "X-Matrix origin=\"o\\\x00\"", "invalid escaped"},
		{"garbage after value", `X-Matrix origin="o.example"x,key="ed25519:k",sig="c2ln"`, "unexpected"},
		{"space inside token", `X-Matrix origin=o example,key="ed25519:k",sig="c2ln"`, "unexpected"},
		{"semicolon separator", `X-Matrix origin="o.example";key="ed25519:k"`, "unexpected"},
		{"bad origin", `X-Matrix origin="o_example",key="ed25519:k",sig="c2ln"`, "origin"},
		{"bad destination", `X-Matrix origin="o.example",destination="d.example:port",key="ed25519:k",sig="c2ln"`, "destination"},
		{"bad key algorithm", `X-Matrix origin="o.example",key="curve25519:k",sig="c2ln"`, "key"},
		{"bad key version", `X-Matrix origin="o.example",key="ed25519:a-b",sig="c2ln"`, "key"},
		{"token68 form", `X-Matrix YWxhZGRpbjpvcGVuc2VzYW1l`, "no '='"},
		{"huge", `X-Matrix ` + ok + strings.Repeat(",a=b", 2000), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.in)
			if err == nil {
				t.Fatalf("ParseHeader(%q) = %+v, want error", tc.in, h)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseHeader(%q) = %v, does not wrap ErrMalformed", tc.in, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("ParseHeader(%q) = %q, want it to mention %q", tc.in, err, tc.wantMsg)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		`X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."`,
		`x-matrix origin=o.example:8448 , key=ed25519:k1,sig=c2ln/+=,foo="a\"b"`,
		`X-Matrix origin="[::1]:8448",key="ed25519:a_b",signature="\s\i\g"`,
		`X-Matrix ,,`,
		`X-Matrix origin="`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseHeader(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseHeader(%q) = %v, does not wrap ErrMalformed", in, err)
			}
			return
		}
		// What parses must format to a header that parses to the same thing.
		again, err := ParseHeader(h.String())
		if err != nil {
			t.Fatalf("ParseHeader(%q) -> %+v, whose String %q does not parse: %v", in, h, h.String(), err)
		}
		if again != h {
			t.Fatalf("round trip of %q: %+v then %+v", in, h, again)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := specKey(b)
	r := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1234", Origin: "a.example", Destination: "b.example",
		Content: json.RawMessage(`{"origin":"a.example","origin_server_ts":1,"pdus":[{"type":"m.room.message","content":{"body":"hello"}}]}`)}
	for b.Loop() {
		if _, err := Sign(r, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := specKey(b)
	r := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1234", Origin: "a.example", Destination: "b.example",
		Content: json.RawMessage(`{"origin":"a.example","origin_server_ts":1,"pdus":[{"type":"m.room.message","content":{"body":"hello"}}]}`)}
	v, err := Sign(r, k)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h, err := ParseHeader(v)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(r, h, k.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	const v = `X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKLMNOPQRSTU"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(v); err != nil {
			b.Fatal(err)
		}
	}
}
