package matrix

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServerName(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		host    string
		port    int
		hasPort bool
	}{
		// The spec's examples (appendices, "Server Name").
		{"matrix.org", true, "matrix.org", 0, false},
		{"matrix.org:8888", true, "matrix.org", 8888, true},
		{"1.2.3.4", true, "1.2.3.4", 0, false},
		{"1.2.3.4:1234", true, "1.2.3.4", 1234, true},
		{"[1234:5678::abcd]", true, "[1234:5678::abcd]", 0, false},
		{"[1234:5678::abcd]:5678", true, "[1234:5678::abcd]", 5678, true},
		{"[::ffff:1.2.3.4]", true, "[::ffff:1.2.3.4]", 0, false},
		{"localhost", true, "localhost", 0, false},
		{"MATRIX.ORG", true, "MATRIX.ORG", 0, false},
		{"a-b.c", true, "a-b.c", 0, false},
		{"x:99999", true, "x", 99999, true}, // 1*5DIGIT
		{"", false, "", 0, false},
		{":80", false, "", 0, false},
		{"matrix.org:", false, "", 0, false},
		{"matrix.org:123456", false, "", 0, false},
		{"matrix.org:8a", false, "", 0, false},
		{"matrix.org:-1", false, "", 0, false},
		{"a:b:c", false, "", 0, false},
		{"under_score.org", false, "", 0, false},
		{"ex ample.org", false, "", 0, false},
		{"[::1", false, "", 0, false},
		{"[::1]x", false, "", 0, false},
		{"[::1]:", false, "", 0, false},
		{"[]", false, "", 0, false},
		{"[1.2.3.4]", false, "", 0, false},
		{"[fe80::1%eth0]", false, "", 0, false},
		{"[::g]", false, "", 0, false},
		{"ünicode.org", false, "", 0, false},
		{strings.Repeat("a", 256), false, "", 0, false},
		{strings.Repeat("a", 255), true, strings.Repeat("a", 255), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sn, err := ParseServerName(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseServerName(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidID) {
					t.Errorf("error %v does not wrap ErrInvalidID", err)
				}
				return
			}
			host, port, hasPort := sn.HostPort()
			if host != tt.host || port != tt.port || hasPort != tt.hasPort {
				t.Errorf("HostPort() = %q, %d, %v; want %q, %d, %v", host, port, hasPort, tt.host, tt.port, tt.hasPort)
			}
		})
	}
}

func TestParseUserID(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		local  string
		server ServerName
	}{
		{"@alice:example.org", true, "alice", "example.org"},
		{"@alice:example.org:8448", true, "alice", "example.org:8448"},
		{"@alice:[::1]:8448", true, "alice", "[::1]:8448"},
		{"@a.b_c=d-e/f+g:x", true, "a.b_c=d-e/f+g", "x"},
		// Historical localparts must be accepted in events.
		{"@Alice:example.org", true, "Alice", "example.org"},
		{"@:example.org", true, "", "example.org"},
		{"@日本:example.org", true, "日本", "example.org"},
		{"@a b\x01:example.org", true, "a b\x01", "example.org"},
		{"@a\x00b:example.org", false, "", ""},
		{"@\xff:example.org", false, "", ""},
		{"alice:example.org", false, "", ""},
		{"@alice", false, "", ""},
		{"@alice:", false, "", ""},
		{"@alice:bad_server", false, "", ""},
		{"", false, "", ""},
		{"@" + strings.Repeat("a", 242) + ":example.org", true, strings.Repeat("a", 242), "example.org"},
		{"@" + strings.Repeat("a", 243) + ":example.org", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseUserID(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseUserID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidID) {
					t.Errorf("error %v does not wrap ErrInvalidID", err)
				}
				return
			}
			if u.Localpart() != tt.local || u.Server() != tt.server {
				t.Errorf("got %q on %q, want %q on %q", u.Localpart(), u.Server(), tt.local, tt.server)
			}
			if NewUserID(tt.local, tt.server) != u {
				t.Errorf("NewUserID round trip = %q", NewUserID(tt.local, tt.server))
			}
		})
	}
}

func TestUserIDCompliant(t *testing.T) {
	tests := map[UserID]bool{
		"@alice:x":   true,
		"@Alice!:x":  true,
		"@:x":        false,
		"@a b:x":     false,
		"@日本:x":      false,
		"@a\x7f:x":   false,
		"@~tilde~:x": true,
	}
	for u, want := range tests {
		if got := u.Compliant(); got != want {
			t.Errorf("%q.Compliant() = %v, want %v", u, got, want)
		}
	}
}

func TestValidateLocalpart(t *testing.T) {
	tests := map[string]bool{
		"alice":           true,
		"a.b_c=d-e/f+g09": true,
		"":                false,
		"Alice":           false,
		"a b":             false,
		"a:b":             false,
		"日本":              false,
		"a*":              false,
	}
	for in, want := range tests {
		if err := ValidateLocalpart(in); (err == nil) != want {
			t.Errorf("ValidateLocalpart(%q) = %v, want ok=%v", in, err, want)
		}
	}
}

func TestParseRoomID(t *testing.T) {
	const hash = "Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"
	tests := []struct {
		in        string
		ok        bool
		server    ServerName
		hasServer bool
	}{
		{"!abc123:matrix.org", true, "matrix.org", true},
		{"!jEsUZKDJdhlrceRyVU:example.org:8448", true, "example.org:8448", true},
		{"!" + hash, true, "", false},
		{"!" + hash[:42], false, "", false},
		{"!Nhcu5BS+UMnFX7hBVfVSoXiD7OgH6iRT/xyIuqDnpYQ", false, "", false}, // v12 uses URL-safe base64
		{"!:matrix.org", false, "", false},
		{"!abc", false, "", false},
		{"!abc:bad server", false, "", false},
		{"#abc:matrix.org", false, "", false},
		{"", false, "", false},
		{"!" + strings.Repeat("a", 250) + ":x.org", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRoomID(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseRoomID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				return
			}
			s, has := r.Server()
			if s != tt.server || has != tt.hasServer {
				t.Errorf("Server() = %q, %v", s, has)
			}
		})
	}
}

func TestParseEventID(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		server ServerName
	}{
		{"$a4ecee13e2accdadf56c1025:example.com", true, "example.com"},
		{"$0:domain", true, "domain"},
		{"$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk", true, ""}, // v3
		{"$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg", true, ""}, // v4+
		{"$CD66HAED5npg6074c6pDtLKalHjVfYb2q4Q3LZgrW6o", true, ""},
		{"$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Z/", false, ""}, // mixed alphabets
		{"$short", false, ""},
		{"$", false, ""},
		{"$:x", false, ""},
		{"!abc:x", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			e, err := ParseEventID(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseEventID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				return
			}
			if s, _ := e.Server(); s != tt.server {
				t.Errorf("Server() = %q, want %q", s, tt.server)
			}
		})
	}
}

func TestParseRoomAlias(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		local string
	}{
		{"#room:example.org", true, "room"},
		{"#Räume:example.org:8448", true, "Räume"},
		{"#:example.org", true, ""},
		{"room:example.org", false, ""},
		{"#room", false, ""},
		{"#ro\x00om:example.org", false, ""},
		{"#room:bad/server", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseRoomAlias(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseRoomAlias(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err == nil && a.Localpart() != tt.local {
				t.Errorf("Localpart() = %q", a.Localpart())
			}
		})
	}
}

// FuzzParseIDs checks that the parsers never panic and that whatever they
// accept survives their accessors.
func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{"@a:b", "!x:y:1", "$abc:[::1]:80", "#a:b", "[::1]:8", "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sn, err := ParseServerName(s); err == nil {
			sn.HostPort()
		}
		if u, err := ParseUserID(s); err == nil {
			if _, err := ParseServerName(string(u.Server())); err != nil {
				t.Errorf("accepted %q but its server %q is invalid", s, u.Server())
			}
			if NewUserID(u.Localpart(), u.Server()) != u {
				t.Errorf("round trip of %q failed", s)
			}
		}
		if r, err := ParseRoomID(s); err == nil {
			r.Server()
		}
		if e, err := ParseEventID(s); err == nil {
			e.Server()
		}
		if a, err := ParseRoomAlias(s); err == nil {
			a.Localpart()
		}
	})
}
