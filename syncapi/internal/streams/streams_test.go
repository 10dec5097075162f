package streams

import (
	"errors"
	"testing"
)

func TestParseToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Position
		err  bool
	}{
		{name: "zero", in: "s0", want: 0},
		{name: "position", in: "s42", want: 42},
		{name: "extra fields ignored", in: "s42_7_9_1_1_1_1_1_1", want: 42},
		{name: "leading zeros", in: "s007", want: 7},
		{name: "largest", in: "s999999999999999999", want: 999999999999999999},
		{name: "empty", in: "", err: true},
		{name: "prefix only", in: "s", err: true},
		{name: "wrong prefix", in: "t42", err: true},
		{name: "sign", in: "s+42", err: true},
		{name: "negative", in: "s-1", err: true},
		{name: "empty field", in: "s42__1", err: true},
		{name: "trailing separator", in: "s42_", err: true},
		{name: "letters", in: "s4a", err: true},
		{name: "too many digits", in: "s1000000000000000000", err: true},
		{name: "space", in: "s 42", err: true},
		{name: "too many fields", in: "s1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if tc.err {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("ParseToken(%q) = %v, %v; want ErrInvalidToken", tc.in, got, err)
				}
				return
			}
			if err != nil || got.Get(PDU) != tc.want {
				t.Fatalf("ParseToken(%q) = %v, %v; want PDU %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{}.With(PDU, 1234)
	got, err := ParseToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %v, %v; want %v", tok.String(), got, err, tok)
	}
	if !tok.After(Token{}) || (Token{}).After(tok) || tok.After(tok) {
		t.Fatalf("After is not a strict per-stream comparison")
	}
	if m := tok.Min(Token{}.With(PDU, 5)); m.Get(PDU) != 5 {
		t.Fatalf("Min = %v, want PDU 5", m)
	}
}

// FuzzParseToken checks that parsing never panics and that every accepted
// token prints back to an equivalent token.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s0", "s42", "s1_2_3", "s", "", "s-1", "s99999999999999999999", "s1__2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		for _, k := range Kinds() {
			if tok.Get(k) < 0 {
				t.Fatalf("ParseToken(%q) gave negative position %d", s, tok.Get(k))
			}
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip of %q: ParseToken(%q) = %v, %v; want %v", s, tok.String(), again, err, tok)
		}
	})
}
