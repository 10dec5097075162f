package routing

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestIsSyncToken(t *testing.T) {
	for s, want := range map[string]bool{
		"s1": true, "s42_0_7": true, "s0_0_0_0_0_0": true, "s999999999999999999": true,
		"": false, "s": false, "t1": false, "s1_": false, "s_1": false, "s1__2": false,
		"s-1": false, "s1 2": false, "s1234567890123456789": false, "S1": false,
	} {
		if got := isSyncToken(s); got != want {
			t.Errorf("isSyncToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzIsSyncToken: any accepted `at` is "s" and "_"-separated digit runs
// within bounds, and nothing panics.
func FuzzIsSyncToken(f *testing.F) {
	for _, s := range []string{"s1", "s42_0_7", "", "s", "s1_", "s_", "x", "s99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isSyncToken(s) {
			return
		}
		if s[0] != 's' || len(s) > maxSyncTokenLen || s[len(s)-1] == '_' {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range s[1:] {
			if (c < '0' || c > '9') && c != '_' {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

func TestJoinRulesAllow(t *testing.T) {
	for _, tc := range []struct {
		content    string
		restricted bool
		rooms      []string
	}{
		{`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:x"}]}`, true, []string{"!a:x"}},
		{`{"join_rule":"knock_restricted","allow":[{"type":"m.room_membership","room_id":5},{"type":"m.room_membership","room_id":"!b:x"},"junk",{"type":"other","room_id":"!c:x"}]}`, true, []string{"!b:x"}},
		{`{"join_rule":"restricted","allow":"nope"}`, true, nil},
		{`{"join_rule":"public"}`, false, nil},
		{`{"join_rule":7}`, false, nil},
	} {
		raw := []byte(`{"type":"m.room.join_rules","content":` + tc.content + `}`)
		if got := mayBeRestricted(raw); got != tc.restricted {
			t.Errorf("mayBeRestricted(%s) = %v", tc.content, got)
		}
		var c joinRulesContent
		if err := json.Unmarshal([]byte(tc.content), &c); err != nil {
			t.Fatalf("%s: %v", tc.content, err)
		}
		if got := c.allowedRooms(); !slices.Equal(got, tc.rooms) {
			t.Errorf("allowedRooms(%s) = %v, want %v", tc.content, got, tc.rooms)
		}
	}
}

// FuzzJoinRulesAllow: any join rules content (clients write it) decodes
// without panicking, and only string room ids of m.room_membership entries
// come out.
func FuzzJoinRulesAllow(f *testing.F) {
	for _, s := range []string{`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:x"}]}`,
		`{"allow":[null,1,{"type":"m.room_membership"}]}`, `{"join_rule":["x"]}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = mayBeRestricted(append(append([]byte(`{"content":`), b...), '}'))
		var c joinRulesContent
		if json.Unmarshal(b, &c) != nil {
			return
		}
		for _, r := range c.allowedRooms() {
			if r == "" {
				t.Fatalf("empty room id from %s", b)
			}
		}
	})
}
