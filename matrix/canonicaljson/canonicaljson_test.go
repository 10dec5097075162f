package canonicaljson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// The input/output pairs of appendices "Canonical JSON" / "Examples".
var specExamples = []struct{ in, want string }{
	{`{}`, `{}`},
	{"{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
	{"{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", `{"a":"1","b":"2"}`},
	{`{"b":"2","a":"1"}`, `{"a":"1","b":"2"}`},
	{`{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`, `{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
	{`{"a": "日本語"}`, `{"a":"日本語"}`},
	{`{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
	{`{"a": "\u65E5"}`, `{"a":"日"}`},
	{`{"a": null}`, `{"a":null}`},
	{`{"a": -0, "b": 1e10}`, `{"a":0,"b":10000000000}`},
}

func TestSpecExamples(t *testing.T) {
	for _, tt := range specExamples {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil {
			t.Errorf("Canonicalize(%s): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Canonicalize(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"scalar string", `"x"`, `"x"`},
		{"scalar true", ` true `, `true`},
		{"scalar null", `null`, `null`},
		{"empty array", `[ ]`, `[]`},
		{"nested sort", `{"b":{"z":1,"y":[{"d":1,"c":2}]},"a":[]}`, `{"a":[],"b":{"y":[{"c":2,"d":1}],"z":1}}`},
		{"short escapes", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
		{"unicode escapes of short forms", `"\u0008\u000C\u000a\u000D\u0009\u0022\u005C"`, `"\b\f\n\r\t\"\\"`},
		{"control chars lowercase hex", `"\u0000\u0001\u001F\u000B\u000E"`, `"\u0000\u0001\u001f\u000b\u000e"`},
		{"solidus unescaped", `"\/a/"`, `"/a/"`},
		{"DEL raw", `"\u007f"`, "\"\x7f\""},
		{"html chars raw", `"\u003c\u003e\u0026"`, `"<>&"`},
		{"line separators raw", `"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
		{"surrogate pair upper", `"\uD83D\uDE00"`, `"😀"`},
		{"raw emoji", `"😀"`, `"😀"`},
		{"U+FFFD kept", "\"\uFFFD\"", "\"\uFFFD\""},
		{"escaped key sorting", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{"key with quote sorts by decoded value", `{"a\"":1,"a!":2,"a":3}`, `{"a":3,"a!":2,"a\"":1}`},
		{"key with newline", `{"b":1,"\n":2}`, `{"\n":2,"b":1}`},
		{"codepoint not UTF-16 order", `{"\uff61":1,"😀":2}`, `{"｡":1,"😀":2}`},
		{"negative zero", `[-0]`, `[0]`},
		{"big int kept", `[123456789012345678901234567890]`, `[123456789012345678901234567890]`},
		{"negative int", `[-42]`, `[-42]`},
		{"integral float", `[1.0, 2.50e1, -3E0, 1e15, -0.0]`, `[1,25,-3,1000000000000000,0]`},
		{"non-integral float kept", `[1.5, 50.57, 1e-7]`, `[1.5,50.57,1e-7]`},
		{"huge float kept", `[1e400, 1e300]`, `[1e400,1e300]`},
		{"whitespace everywhere", " { \"a\" :\t[ 1 ,\r\n2 ] } \n", `{"a":[1,2]}`},
		{"2^53 from float", `[9007199254740992.0]`, `[9007199254740992]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonicalize(%s) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: %s -> %s (%v)", got, again, err)
			}
			if !IsCanonical(got) {
				t.Fatalf("IsCanonical(%s) = false", got)
			}
		})
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", ``, ErrSyntax},
		{"only space", `  `, ErrSyntax},
		{"trailing data", `{} x`, ErrSyntax},
		{"two values", `1 2`, ErrSyntax},
		{"trailing comma object", `{"a":1,}`, ErrSyntax},
		{"trailing comma array", `[1,]`, ErrSyntax},
		{"missing colon", `{"a" 1}`, ErrSyntax},
		{"unquoted key", `{a:1}`, ErrSyntax},
		{"single quotes", `{'a':1}`, ErrSyntax},
		{"leading zero", `[01]`, ErrSyntax},
		{"plus sign", `[+1]`, ErrSyntax},
		{"bare minus", `[-]`, ErrSyntax},
		{"dot without digits", `[1.]`, ErrSyntax},
		{"exp without digits", `[1e]`, ErrSyntax},
		{"NaN", `[NaN]`, ErrSyntax},
		{"Infinity", `[Infinity]`, ErrSyntax},
		{"bad literal", `[tru]`, ErrSyntax},
		{"unterminated string", `"abc`, ErrSyntax},
		{"raw control char", "\"a\x01\"", ErrSyntax},
		{"raw newline", "\"a\n\"", ErrSyntax},
		{"bad escape", `"\x"`, ErrSyntax},
		{"short unicode escape", `"\u12"`, ErrSyntax},
		{"bad hex", `"\u12g4"`, ErrSyntax},
		{"unterminated object", `{"a":1`, ErrSyntax},
		{"unterminated array", `[1`, ErrSyntax},
		{"duplicate key", `{"a":1,"a":2}`, ErrDuplicateKey},
		{"duplicate key unsorted", `{"b":1,"a":2,"b":3}`, ErrDuplicateKey},
		{"duplicate key via escape", `{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{"duplicate nested", `[{"x":{"k":1,"k":1}}]`, ErrDuplicateKey},
		{"invalid UTF-8", "\"\xff\"", ErrInvalidUTF8},
		{"truncated UTF-8", "\"\xe6\x97\"", ErrInvalidUTF8},
		{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", ErrInvalidUTF8},
		{"overlong UTF-8", "\"\xc0\xaf\"", ErrInvalidUTF8},
		{"invalid UTF-8 key", "{\"\xff\":1}", ErrInvalidUTF8},
		{"lone high surrogate", `"\ud800"`, ErrSurrogate},
		{"lone low surrogate", `"\udc00"`, ErrSurrogate},
		{"high then non-low", `"\ud800\u0041"`, ErrSurrogate},
		{"high then text", `"\ud800abcdef"`, ErrSurrogate},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Canonicalize([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Canonicalize(%q) error = %v, want %v", tt.in, err, tt.want)
			}
			if err := Valid([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("Valid(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	// Nesting at exactly the limit is fine.
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Canonicalize([]byte(ok)); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
}

func TestCanonicalizeStrict(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{`[9007199254740991]`, `[9007199254740991]`, nil},
		{`[-9007199254740991]`, `[-9007199254740991]`, nil},
		{`[9007199254740992]`, ``, ErrIntRange},
		{`[-9007199254740992]`, ``, ErrIntRange},
		{`[10000000000000000]`, ``, ErrIntRange},
		{`[-0]`, `[0]`, nil},
		{`[0]`, `[0]`, nil},
		{`[1.0]`, ``, ErrFloat},
		{`[1e10]`, ``, ErrFloat},
		{`[1E2]`, ``, ErrFloat},
		{`[-0.0]`, ``, ErrFloat},
		{`{"b":1,"a":{"c":[1,2]}}`, `{"a":{"c":[1,2]},"b":1}`, nil},
	}
	for _, tt := range tests {
		got, err := CanonicalizeStrict([]byte(tt.in))
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("CanonicalizeStrict(%s) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && string(got) != tt.want {
			t.Errorf("CanonicalizeStrict(%s) = %s, want %s", tt.in, got, tt.want)
		}
		if verr := ValidStrict([]byte(tt.in)); (verr == nil) != (err == nil) {
			t.Errorf("ValidStrict(%s) = %v, CanonicalizeStrict error = %v", tt.in, verr, err)
		}
	}
}

func TestMarshal(t *testing.T) {
	type inner struct {
		Z string `json:"z"`
		A string `json:"a"`
	}
	v := map[string]any{
		"html":  "<b>&</b>",
		"ls":    "\u2028",
		"inner": inner{Z: "z", A: "a"},
		"n":     []int{3, 1},
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"html\":\"<b>&</b>\",\"inner\":{\"a\":\"a\",\"z\":\"z\"},\"ls\":\"\u2028\",\"n\":[3,1]}"
	if string(got) != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
	if _, err := MarshalStrict(map[string]float64{"f": 1.5}); !errors.Is(err, ErrFloat) {
		t.Fatalf("MarshalStrict float: %v", err)
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Fatal("Marshal(func) succeeded")
	}
}

func TestAppendString(t *testing.T) {
	tests := map[string]string{
		"plain":          `"plain"`,
		"q\"b\\":         `"q\"b\\"`,
		"\x00\x1f\n":     `"\u0000\u001f\n"`,
		"日本":             `"日本"`,
		"bad\xffutf8":    "\"bad\uFFFDutf8\"",
		"</script>&\x7f": "\"</script>&\x7f\"",
	}
	for in, want := range tests {
		got := AppendString(nil, in)
		if string(got) != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
		if utf8.ValidString(in) {
			back, err := Unquote(got)
			if err != nil || back != in {
				t.Errorf("Unquote(%s) = %q, %v", got, back, err)
			}
		}
	}
}

func TestObjectHelpers(t *testing.T) {
	obj, err := Canonicalize([]byte(`{"b":[1,{"x":"}"}],"a\n":"v","c":{"d":null},"e":"\"}"}`))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Members(obj)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range ms {
		keys = append(keys, string(m.Key))
	}
	if want := []string{`a\n`, "b", "c", "e"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	if v, ok := Lookup(obj, "c"); !ok || string(v) != `{"d":null}` {
		t.Fatalf("Lookup(c) = %s, %v", v, ok)
	}
	if v, ok := Lookup(obj, "a\n"); !ok || string(v) != `"v"` {
		t.Fatalf("Lookup(a\\n) = %s, %v", v, ok)
	}
	if _, ok := Lookup(obj, "zz"); ok {
		t.Fatal("Lookup(zz) found")
	}
	f, err := Filter(obj, func(k string) bool { return k != "b" && k != "e" })
	if err != nil || string(f) != `{"a\n":"v","c":{"d":null}}` {
		t.Fatalf("Filter = %s, %v", f, err)
	}
	empty, err := Filter(obj, func(string) bool { return false })
	if err != nil || string(empty) != `{}` {
		t.Fatalf("Filter none = %s, %v", empty, err)
	}
	setTests := []struct{ key, val, want string }{
		{"0", `1`, `{"0":1,"a\n":"v","b":[1,{"x":"}"}],"c":{"d":null},"e":"\"}"}`},
		{"bb", `2`, `{"a\n":"v","b":[1,{"x":"}"}],"bb":2,"c":{"d":null},"e":"\"}"}`},
		{"c", `3`, `{"a\n":"v","b":[1,{"x":"}"}],"c":3,"e":"\"}"}`},
		{"z", `4`, `{"a\n":"v","b":[1,{"x":"}"}],"c":{"d":null},"e":"\"}","z":4}`},
		{"\"", `5`, `{"\"":5,"a\n":"v","b":[1,{"x":"}"}],"c":{"d":null},"e":"\"}"}`},
	}
	for _, tt := range setTests {
		got, err := Set(obj, tt.key, []byte(tt.val))
		if err != nil || string(got) != tt.want {
			t.Errorf("Set(%q) = %s, %v; want %s", tt.key, got, err, tt.want)
		}
		if !IsCanonical(got) {
			t.Errorf("Set(%q) result not canonical: %s", tt.key, got)
		}
	}
	if got, err := Set([]byte(`{}`), "k", []byte(`"v"`)); err != nil || string(got) != `{"k":"v"}` {
		t.Fatalf("Set on empty = %s, %v", got, err)
	}
	var els []string
	if err := EachElement([]byte(`[1,"a,]",{"b":[2]},[]]`), func(v []byte) error { els = append(els, string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{`1`, `"a,]"`, `{"b":[2]}`, `[]`}; !reflect.DeepEqual(els, want) {
		t.Fatalf("EachElement = %q, want %q", els, want)
	}
	for _, bad := range []string{``, `{}`, `[`, `[1,]`, `[1]x`, `[,]`, `[1 2]`} {
		if err := EachElement([]byte(bad), func([]byte) error { return nil }); err == nil {
			t.Errorf("EachElement(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}x`, `{"a":[1}`, `{"a":"}`, `{}}`} {
		if err := EachMember([]byte(bad), func(k, v []byte) error { return nil }); err == nil {
			t.Errorf("EachMember(%q) succeeded", bad)
		}
	}
}

// FuzzCanonicalize checks that canonicalization never panics, is idempotent,
// agrees with encoding/json on what is JSON, and preserves meaning.
func FuzzCanonicalize(f *testing.F) {
	for _, e := range specExamples {
		f.Add([]byte(e.in))
	}
	for _, s := range []string{`"\ud83d\ude00"`, `{"a":{"b":[1,2,{"c":null}]},"\u0000":1}`, `[1.5,-0,1e400]`, `{"a":1,"a":2}`, "\"\xff\"", `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		stdValid := json.Valid(in)
		if err != nil {
			// We may only be stricter than encoding/json for our own rules.
			if stdValid && !errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrInvalidUTF8) &&
				!errors.Is(err, ErrSurrogate) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("encoding/json accepts %q but Canonicalize: %v", in, err)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrInvalidUTF8) &&
				!errors.Is(err, ErrSurrogate) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("unexpected error class: %v", err)
			}
			if Valid(in) == nil {
				t.Fatalf("Valid accepts what Canonicalize rejects: %q", in)
			}
			return
		}
		if !stdValid {
			t.Fatalf("Canonicalize accepts invalid JSON %q", in)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("output is not valid JSON: %q", out)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		// The meaning is preserved: compare as generic values, numbers as
		// float64 (integral normalisation keeps the float value).
		var a, b any
		if err := json.Unmarshal(in, &a); err != nil {
			return // a number out of float64 range: nothing to compare with
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("unmarshal output: %v", err)
		}
		if !reflect.DeepEqual(normalize(a), normalize(b)) {
			t.Fatalf("meaning changed: %q -> %q", in, out)
		}
		// The canonical-input helpers can walk every canonical value.
		if out[0] == '{' {
			f, err := Filter(out, func(string) bool { return true })
			if err != nil || !bytes.Equal(f, out) {
				t.Fatalf("Filter(all) of %q = %q, %v", out, f, err)
			}
		}
		if out[0] == '[' {
			var n int
			if err := EachElement(out, func([]byte) error { n++; return nil }); err != nil {
				t.Fatalf("EachElement(%q): %v", out, err)
			}
		}
		if strict, err := CanonicalizeStrict(in); err == nil && !bytes.Equal(strict, out) {
			t.Fatalf("strict and lenient outputs differ: %q vs %q", strict, out)
		}
	})
}

// normalize maps -0 to 0 so that the comparison tolerates the "-0" rule.
func normalize(v any) any {
	switch v := v.(type) {
	case float64:
		if v == 0 {
			return float64(0)
		}
		return v
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = normalize(v[k])
		}
		return v
	}
	return v
}
