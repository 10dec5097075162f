//go:build oracle

// Differential tests against an independent implementation: mautrix-go's
// crypto/canonicaljson (v0.32.0, its encoding/json/v2 variant). Run with
//
//	GOEXPERIMENT=jsonv2 go test -tags oracle ./matrix/canonicaljson/
//
// mautrix has one canonicalizer, and it enforces the number rules, so it is
// compared with CanonicalizeStrict; where it accepts, Canonicalize must give
// the same bytes too.

package canonicaljson

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	mcj "maunium.net/go/mautrix/crypto/canonicaljson"
)

// oracleVerdict is how one input compared.
type oracleVerdict int

const (
	verdictSame         oracleVerdict = iota // both accept, same bytes
	verdictBothReject                        // both reject
	verdictIntegralFlt                       // known: mautrix accepts 1e10, 1.0 (see TestOracleKnownDisagreements)
	verdictDisagreement                      // anything else: a bug on one side
)

// compareWithMautrix canonicalizes in with both implementations and
// classifies the outcome. detail explains a disagreement.
func compareWithMautrix(in []byte) (v oracleVerdict, detail string) {
	theirs, terr := mcj.CanonicalJSON(in)
	strict, serr := CanonicalizeStrict(in)
	lenient, lerr := Canonicalize(in)
	switch {
	case terr == nil && serr == nil:
		if !bytes.Equal(strict, theirs) {
			return verdictDisagreement, fmt.Sprintf("outputs differ:\n ours   %q\n theirs %q", strict, theirs)
		}
		if !bytes.Equal(lenient, theirs) {
			return verdictDisagreement, fmt.Sprintf("lenient output differs:\n ours   %q\n theirs %q", lenient, theirs)
		}
		return verdictSame, ""
	case terr != nil && serr != nil:
		return verdictBothReject, ""
	case terr == nil && errors.Is(serr, ErrFloat) && lerr == nil && bytes.Equal(lenient, theirs):
		// mautrix rewrites a number written with a fraction or exponent
		// whose value is an integer; our lenient mode writes the same.
		return verdictIntegralFlt, ""
	case terr == nil:
		return verdictDisagreement, fmt.Sprintf("we reject (%v), mautrix accepts: %q", serr, theirs)
	default:
		return verdictDisagreement, fmt.Sprintf("we accept %q, mautrix rejects: %v", strict, terr)
	}
}

// jsonGen writes random JSON text that exercises what canonicalization must
// normalise: key order by code point, every escape form, whitespace, number
// spellings. With invalid set it also plants the errors both sides must
// reject.
type jsonGen struct {
	r       *rand.Rand
	invalid bool
	// intsOnly keeps numbers to valid integers, so that large documents
	// are accepted and their strings and keys compared.
	intsOnly bool
	out      []byte
}

// keyAtoms are joined into object keys. Few atoms make near-equal keys,
// shared prefixes and (rejected) duplicates common; U+FF61 and U+10000 sort
// differently by code point than by UTF-16 unit.
var keyAtoms = []string{"a", "b", "A", "é", "日", "ｱ", "\uff61", "\U00010000", "😀", "\x00", "\n", "\"", "\\", "/", "\u2028", "\uffff", " ", "~", "\x7f"}

func (g *jsonGen) ws() {
	for g.r.IntN(4) == 0 {
		g.out = append(g.out, " \t\n\r"[g.r.IntN(4)])
	}
}

func (g *jsonGen) value(depth int) {
	g.ws()
	k := g.r.IntN(20)
	if depth >= 5 && k < 8 {
		k += 8
	}
	switch {
	case k < 5:
		g.object(depth)
	case k < 8:
		g.array(depth)
	case k < 13:
		g.writeString(g.text())
	case k < 18:
		g.number()
	default:
		g.literal()
	}
	g.ws()
}

func (g *jsonGen) object(depth int) {
	g.out = append(g.out, '{')
	n := g.r.IntN(7)
	seen := map[string]bool{}
	written := 0
	for i := 0; i < n; i++ {
		key := g.key()
		if seen[key] && !(g.invalid && g.r.IntN(4) == 0) {
			continue // a duplicate key only where errors are planted
		}
		seen[key] = true
		if written > 0 {
			g.out = append(g.out, ',')
		}
		written++
		g.ws()
		g.writeString(key)
		g.ws()
		g.out = append(g.out, ':')
		g.value(depth + 1)
	}
	g.ws()
	g.out = append(g.out, '}')
}

func (g *jsonGen) array(depth int) {
	g.out = append(g.out, '[')
	n := g.r.IntN(5)
	for i := 0; i < n; i++ {
		if i > 0 {
			g.out = append(g.out, ',')
		}
		g.value(depth + 1)
	}
	if n == 0 {
		g.ws()
	}
	g.out = append(g.out, ']')
}

func (g *jsonGen) key() string {
	var b strings.Builder
	for n := g.r.IntN(4); n > 0; n-- {
		b.WriteString(keyAtoms[g.r.IntN(len(keyAtoms))])
	}
	return b.String()
}

// text returns a random valid string mixing every class of code point.
func (g *jsonGen) text() string {
	var b strings.Builder
	for n := g.r.IntN(12); n > 0; n-- {
		var r rune
		switch g.r.IntN(10) {
		case 0, 1, 2:
			r = rune("abcxyzABC0189 _-.:@!$#"[g.r.IntN(22)])
		case 3:
			r = rune(g.r.IntN(0x20))
		case 4:
			r = []rune{'"', '\\', '/', 0x7f, 0x2028, 0x2029, 0xfeff, 0xfffd, 0xffff, 0xff61}[g.r.IntN(10)]
		case 5, 6:
			r = rune(0x80 + g.r.IntN(0xd800-0x80))
		case 7:
			r = rune(0xe000 + g.r.IntN(0x10000-0xe000))
		default:
			r = rune(0x10000 + g.r.IntN(0x110000-0x10000))
		}
		b.WriteRune(r)
	}
	return b.String()
}

// writeString writes s as a JSON string, choosing at random among the
// spellings JSON allows for each code point.
func (g *jsonGen) writeString(s string) {
	g.out = append(g.out, '"')
	for _, r := range s {
		if g.invalid && g.r.IntN(60) == 0 {
			g.out = append(g.out, []string{`\ud800`, `\udfff`, `\ud83dx`, "\x01", "\xff", "\xe6\x97", "\xc0\xaf", "\xed\xa0\x80", `\x`, `\u12`}[g.r.IntN(10)]...)
		}
		short := map[rune]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}[r]
		mustEscape := r < 0x20 || r == '"' || r == '\\'
		switch {
		case short != "" && (g.r.IntN(2) == 0 || !mustEscape):
			if mustEscape {
				g.out = append(g.out, short...)
			} else {
				g.out = utf8.AppendRune(g.out, r)
			}
		case mustEscape || g.r.IntN(4) == 0:
			g.out = g.appendU(g.out, r)
		case r == '/' && g.r.IntN(2) == 0:
			g.out = append(g.out, `\/`...)
		default:
			g.out = utf8.AppendRune(g.out, r)
		}
	}
	g.out = append(g.out, '"')
}

// appendU writes r as \uXXXX (a surrogate pair above U+FFFF) in random case.
func (g *jsonGen) appendU(dst []byte, r rune) []byte {
	hex := func(u rune) string {
		h := fmt.Sprintf("%04x", u)
		if g.r.IntN(2) == 0 {
			h = strings.ToUpper(h)
		}
		return `\u` + h
	}
	if r >= 0x10000 {
		r -= 0x10000
		return append(dst, hex(0xd800+r>>10)+hex(0xdc00+r&0x3ff)...)
	}
	return append(dst, hex(r)...)
}

func (g *jsonGen) number() {
	var s string
	// Most numbers are valid everywhere, so that one bad number does not
	// make most objects errors on both sides.
	k := g.r.IntN(30)
	if g.intsOnly {
		k = g.r.IntN(18)
	}
	switch k {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11:
		s = strconv.Itoa(g.r.IntN(2001) - 1000)
	case 12, 13, 14, 15, 16, 17:
		s = strconv.FormatInt(g.r.Int64N(1<<53)>>g.r.IntN(53), 10)
		if g.r.IntN(2) == 0 && s != "0" {
			s = "-" + s
		}
	case 18, 19:
		s = []string{"0", "-0", "9007199254740991", "-9007199254740991", "9007199254740992", "-9007199254740992", "9007199254740993"}[g.r.IntN(7)]
	case 20:
		s = strconv.FormatInt(g.r.Int64(), 10)
	case 21:
		s = "1" + strings.Repeat("0", 10+g.r.IntN(20))
	case 22:
		s = fmt.Sprintf("%d.%d", g.r.IntN(100), 1+g.r.IntN(999))
	case 23, 24: // integral values spelt as floats
		s = []string{"1.0", "-3.00", "1e3", "1E+2", "25e-1", "0.5e1", "-0.0", "-0e5", "1e15", "9007199254740991.0", "1e16", "0e0"}[g.r.IntN(12)]
	case 25:
		s = fmt.Sprintf("%de%d", 1+g.r.IntN(9), g.r.IntN(40)-20)
	case 26:
		s = []string{"1e400", "-1e400", "1e-400", "4.9e-324", "1.7976931348623157e308"}[g.r.IntN(5)]
	default:
		s = strconv.FormatFloat(g.r.NormFloat64()*1e6, 'g', -1, 64)
	}
	if g.invalid && g.r.IntN(40) == 0 {
		s = []string{"01", "+1", "1.", ".5", "1e", "-", "NaN", "Infinity", "0x10"}[g.r.IntN(9)]
	}
	g.out = append(g.out, s...)
}

func (g *jsonGen) literal() {
	lits := []string{"true", "false", "null"}
	if g.invalid && g.r.IntN(20) == 0 {
		lits = []string{"tru", "nul", "True", "NULL"}
	}
	g.out = append(g.out, lits[g.r.IntN(len(lits))]...)
}

// mutate damages a valid text the way a broken peer would: a byte deleted,
// duplicated or replaced by a structural character.
func (g *jsonGen) mutate(in []byte) []byte {
	if len(in) == 0 {
		return in
	}
	i := g.r.IntN(len(in))
	switch g.r.IntN(3) {
	case 0:
		return append(in[:i:i], in[i+1:]...)
	case 1:
		return append(in[:i+1:i+1], in[i:]...)
	default:
		out := bytes.Clone(in)
		out[i] = `{}[]:,"\ 0e-`[g.r.IntN(12)]
		return out
	}
}

// TestOracleCanonicalizeRandom compares the two canonicalizers on random
// JSON texts: valid ones, ones with planted errors, and mutated ones.
func TestOracleCanonicalizeRandom(t *testing.T) {
	const cases = 50000
	r := rand.New(rand.NewPCG(20240601, 1))
	counts := map[oracleVerdict]int{}
	failures := 0
	for i := 0; i < cases; i++ {
		g := &jsonGen{r: r, invalid: i%4 == 3, intsOnly: i%4 == 1}
		if i%2 == 0 {
			g.object(0) // events and signed objects are objects
		} else {
			g.value(0)
		}
		in := g.out
		if i%10 == 9 {
			in = g.mutate(in)
		}
		v, detail := compareWithMautrix(in)
		counts[v]++
		if v == verdictDisagreement {
			failures++
			if failures <= 10 {
				t.Errorf("case %d: input %q: %s", i, in, detail)
			}
		}
	}
	t.Logf("%d random texts: %d same output, %d rejected by both, %d integral floats (known), %d disagreements",
		cases, counts[verdictSame], counts[verdictBothReject], counts[verdictIntegralFlt], counts[verdictDisagreement])
	if counts[verdictSame] < cases/3 || counts[verdictBothReject] < cases/20 {
		t.Errorf("generator is unbalanced: %v", counts)
	}
}

// TestOracleCanonicalizeEdgeCases compares hand-picked inputs. Each must
// give the same bytes on both sides or be rejected by both.
func TestOracleCanonicalizeEdgeCases(t *testing.T) {
	inputs := []string{
		// The spec's examples (appendices, "Canonical JSON" / "Examples"),
		// except the one with 1e10, which is a known disagreement.
		`{}`, "{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"b":"2","a":"1"}`,
		`{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}`,
		`{"a": "日本語"}`, `{"本": 2, "日": 1}`, `{"a": "\u65E5"}`, `{"a": null}`, `{"a": -0}`,
		// Strings and escapes.
		`"\u00e9\u00E9"`, `"\/"`, `"\u007f\u2028\u2029"`, `"\u0000\u001F\u000b\b\f\n\r\t"`,
		`"\u0008\u000C\u000a\u000D\u0009\u0022\u005C"`, `"\ud83d\ude00\uD83D\uDE00😀"`, `"\u003c>&"`, `"\ufeff\uffff\ufffd"`,
		"\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"", `"\udbff\udfff"`,
		// Key order: code point, not UTF-16 unit, and by decoded value.
		`{"\uff61":1,"😀":2}`, `{"😀":1,"\uff61":2}`, `{"b":1,"a\u0000":2,"a":3}`, `{"a\"":1,"a!":2,"a":3}`,
		`{"\u0062":1,"a":2}`, `{"é":1,"z":2,"Z":3,"":4}`, `{"\u00e9":1,"e\u0301":2}`,
		// Numbers at the limits.
		`[9007199254740991,-9007199254740991,0,-0,1,-1]`, `[9007199254740992]`, `[-9007199254740992]`,
		`[100000000000000000000]`, `[1.5]`, `[1e400]`, `[1e-7]`, `[1e21]`, `[12345678901234567]`,
		// Errors both must reject.
		``, ` `, `{} x`, `1 2`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`, `[01]`, `[+1]`, `[.5]`, `[1.]`, `[NaN]`,
		`"abc`, "\"a\x01\"", `"\x"`, `"\u12g4"`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"b":1,"a":2,"b":3}`,
		"\"\xff\"", "\"\xe6\x97\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", `"\ud800"`, `"\udc00"`, `"\ud800\u0041"`,
		"\xef\xbb\xbf{}", // a byte order mark is not JSON whitespace
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	}
	for _, in := range inputs {
		v, detail := compareWithMautrix([]byte(in))
		if v != verdictSame && v != verdictBothReject {
			t.Errorf("input %q: verdict %d: %s", in, v, detail)
		}
	}
}

// TestOracleKnownDisagreements pins down, case by case, where mautrix and
// Axon differ and which side the spec supports. Each case asserts both
// behaviours, so a change on either side shows up here.
func TestOracleKnownDisagreements(t *testing.T) {
	tests := []struct {
		name, in string
		// theirs is mautrix's output; ours the error of CanonicalizeStrict.
		theirs string
		ours   error
		// why quotes the spec text that decides the case.
		why string
	}{
		{
			name: "integral float with exponent", in: `{"a": -0, "b": 1e10}`, theirs: `{"a":0,"b":10000000000}`, ours: ErrFloat,
			why: `Theirs. appendices.md "Canonical JSON": "Numbers in the JSON must be integers in the range ` +
				`[-(2**53)+1, (2**53)-1], represented without exponents or decimal places" and "Float values are not ` +
				`permitted by this encoding"; rooms/fragments/v6-canonical-json.md: "Servers MUST strictly enforce the ` +
				`JSON format specified in the appendices". The example {"a": -0, "b": 1e10} shows how to encode the ` +
				`value, which our lenient Canonicalize (room versions 1-5) does; strict enforcement rejects the ` +
				`exponent, as Synapse does (it parses 1e10 as a float).`,
		},
		{name: "integral float with fraction", in: `[1.0]`, theirs: `[1]`, ours: ErrFloat, why: "same as above"},
		{name: "negative zero float", in: `[-0.0]`, theirs: `[0]`, ours: ErrFloat, why: "same as above"},
		{name: "fraction and exponent", in: `[0.25e2]`, theirs: `[25]`, ours: ErrFloat, why: "same as above"},
		{name: "big integral float", in: `[9007199254740991.0]`, theirs: `[9007199254740991]`, ours: ErrFloat, why: "same as above"},
		{
			name: "nesting deeper than MaxDepth", in: strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
			theirs: strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ours: ErrTooDeep,
			why: `Not decided by the spec, which sets no nesting limit: our MaxDepth is a resource bound ` +
				`(NOTSPEC in canonicaljson.go); mautrix inherits encoding/json/jsontext's limit of 10000.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs, terr := mcj.CanonicalJSON([]byte(tt.in))
			if terr != nil || string(theirs) != tt.theirs {
				t.Fatalf("mautrix: CanonicalJSON(%q) = %q, %v; want %q (re-check the decision: %s)", tt.in, theirs, terr, tt.theirs, tt.why)
			}
			if _, err := CanonicalizeStrict([]byte(tt.in)); !errors.Is(err, tt.ours) {
				t.Fatalf("CanonicalizeStrict(%q) error = %v, want %v", tt.in, err, tt.ours)
			}
			if tt.ours == ErrFloat {
				// Room versions 1 to 5 must still handle such numbers, and
				// our lenient mode then writes what mautrix writes.
				if got, err := Canonicalize([]byte(tt.in)); err != nil || string(got) != tt.theirs {
					t.Fatalf("Canonicalize(%q) = %q, %v; want %q", tt.in, got, err, tt.theirs)
				}
			}
		})
	}
}

// goValue returns a random Go value of the kinds JSON decodes to, with
// valid UTF-8 strings (Go strings need not be UTF-8; JSON text must).
func goValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth >= 4 && k < 4 {
		k += 4
	}
	g := &jsonGen{r: r}
	switch k {
	case 0, 1:
		m := map[string]any{}
		for n := r.IntN(6); n > 0; n-- {
			m[g.key()+g.text()] = goValue(r, depth+1)
		}
		return m
	case 2, 3:
		s := make([]any, r.IntN(5))
		for i := range s {
			s[i] = goValue(r, depth+1)
		}
		return s
	case 4, 5:
		return g.text()
	case 6:
		return r.Int64() >> r.IntN(64)
	case 7:
		return []any{true, false, nil}[r.IntN(3)]
	case 8:
		return float64(r.IntN(1000)) // integral: both encode it as an integer
	default:
		return r.NormFloat64() * 1e3 // mostly fractions: both reject
	}
}

// TestOracleMarshalRandom compares MarshalStrict with mautrix's Marshal on
// random Go values.
func TestOracleMarshalRandom(t *testing.T) {
	const cases = 5000
	r := rand.New(rand.NewPCG(7, 7))
	same, rejected := 0, 0
	for i := 0; i < cases; i++ {
		v := map[string]any{"v": goValue(r, 0)}
		ours, oerr := MarshalStrict(v)
		theirs, terr := mcj.Marshal(v)
		switch {
		case oerr == nil && terr == nil && bytes.Equal(ours, theirs):
			same++
		case oerr != nil && terr != nil:
			rejected++
		default:
			t.Errorf("Marshal(%#v):\n ours   %q, %v\n theirs %q, %v", v, ours, oerr, theirs, terr)
		}
	}
	t.Logf("%d random values: %d same output, %d rejected by both", cases, same, rejected)
}
