package event

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// allContent holds every content key any redaction algorithm protects, plus
// one that none does.
var allContent = map[string]any{
	"membership": "join", "join_authorised_via_users_server": "@x:y",
	"third_party_invite": map[string]any{"signed": map[string]any{"token": "t"}, "display_name": "d"},
	"creator":            "@c:y", "room_version": "9", "m.federate": true,
	"join_rule": "restricted", "allow": []any{},
	"ban": 50, "events": map[string]any{}, "events_default": 0, "invite": 0, "kick": 50,
	"redact": 50, "state_default": 50, "users": map[string]any{}, "users_default": 0,
	"notifications": map[string]any{"room": 50},
	"aliases":       []any{"#a:y"}, "history_visibility": "shared", "redacts": "$e:y",
	"unprotected": 1,
}

func TestRedactContentPerVersion(t *testing.T) {
	pl := []string{"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
	pl11 := append(slices.Clone(pl), "invite")
	allKeys := keys(allContent)
	type want map[string][]string // event type -> kept content keys
	v1 := want{
		"m.room.member": {"membership"}, "m.room.create": {"creator"}, "m.room.join_rules": {"join_rule"},
		"m.room.power_levels": pl, "m.room.aliases": {"aliases"}, "m.room.history_visibility": {"history_visibility"},
		"m.room.redaction": nil, "m.room.message": nil,
	}
	v6 := clone(v1, "m.room.aliases", nil)
	v8 := clone(v6, "m.room.join_rules", []string{"allow", "join_rule"})
	v9 := clone(v8, "m.room.member", []string{"join_authorised_via_users_server", "membership"})
	v11 := want{
		"m.room.member": {"join_authorised_via_users_server", "membership", "third_party_invite"}, "m.room.create": allKeys,
		"m.room.join_rules": {"allow", "join_rule"}, "m.room.power_levels": pl11, "m.room.aliases": nil,
		"m.room.history_visibility": {"history_visibility"}, "m.room.redaction": {"redacts"}, "m.room.message": nil,
	}
	perVersion := map[string]want{"1": v1, "2": v1, "3": v1, "4": v1, "5": v1, "6": v6, "7": v6, "8": v8, "9": v9, "10": v9, "11": v11, "12": v11}
	for id, w := range perVersion {
		v := MustVersion(id)
		for typ, kept := range w {
			ev := map[string]any{"type": typ, "content": allContent, "room_id": "!r:y", "sender": "@s:y"}
			raw, _ := json.Marshal(ev)
			red, err := Redact(raw, v)
			if err != nil {
				t.Fatalf("v%s %s: %v", id, typ, err)
			}
			var got struct{ Content map[string]json.RawMessage }
			if err := json.Unmarshal(red, &got); err != nil {
				t.Fatal(err)
			}
			gotKeys := keys(got.Content)
			wantKeys := slices.Sorted(slices.Values(kept))
			if !reflect.DeepEqual(gotKeys, wantKeys) && !(len(gotKeys) == 0 && len(wantKeys) == 0) {
				t.Errorf("v%s %s: kept %v, want %v", id, typ, gotKeys, wantKeys)
			}
			if typ == "m.room.member" && v.RedactionRules == RedactionV11 {
				if string(got.Content["third_party_invite"]) != `{"signed":{"token":"t"}}` {
					t.Errorf("v%s member third_party_invite = %s", id, got.Content["third_party_invite"])
				}
			}
		}
	}
}

func TestRedactTopLevel(t *testing.T) {
	ev := map[string]any{
		"event_id": "$e:y", "type": "m.room.message", "room_id": "!r:y", "sender": "@s:y", "state_key": "",
		"content": map[string]any{"body": "x"}, "hashes": map[string]any{"sha256": "h"}, "signatures": map[string]any{},
		"depth": 1, "prev_events": []any{}, "prev_state": []any{}, "auth_events": []any{}, "origin": "y",
		"origin_server_ts": 1, "membership": "join", "unsigned": map[string]any{"age": 1}, "redacts": "$x:y",
		"other": true,
	}
	raw, _ := json.Marshal(ev)
	common := []string{"auth_events", "content", "depth", "event_id", "hashes", "origin_server_ts", "prev_events", "room_id", "sender", "signatures", "state_key", "type"}
	old := slices.Sorted(slices.Values(append(slices.Clone(common), "membership", "origin", "prev_state")))
	for _, id := range StableVersions() {
		red, err := Redact(raw, MustVersion(id))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(red, &got); err != nil {
			t.Fatal(err)
		}
		want := old
		if MustVersion(id).RedactionRules == RedactionV11 {
			want = common
		}
		if !reflect.DeepEqual(keys(got), want) {
			t.Errorf("v%s: kept %v, want %v", id, keys(got), want)
		}
		if string(got["content"]) != "{}" {
			t.Errorf("v%s: content %s", id, got["content"])
		}
	}
}

func TestRedactEdgeCases(t *testing.T) {
	v := MustVersion("11")
	tests := []struct{ in, want string }{
		// Missing content gets an empty one; non-object content becomes {}.
		{`{"type":"m.room.member"}`, `{"content":{},"type":"m.room.member"}`},
		{`{"type":"m.room.member","content":"x"}`, `{"content":{},"type":"m.room.member"}`},
		// third_party_invite without signed, or not an object, is dropped.
		{`{"type":"m.room.member","content":{"membership":"invite","third_party_invite":{"display_name":"d"}}}`, `{"content":{"membership":"invite"},"type":"m.room.member"}`},
		{`{"type":"m.room.member","content":{"third_party_invite":"x"}}`, `{"content":{},"type":"m.room.member"}`},
		// Keys with escapes are never protected.
		{`{"type":"m.room.member","content":{"members\u0068ip":"join","a\nb":1}}`, `{"content":{"membership":"join"},"type":"m.room.member"}`},
	}
	for _, tt := range tests {
		got, err := Redact([]byte(tt.in), v)
		if err != nil {
			t.Fatalf("Redact(%s): %v", tt.in, err)
		}
		if string(got) != tt.want {
			t.Errorf("Redact(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if _, err := Redact([]byte(`{`), v); err == nil {
		t.Error("Redact accepted invalid JSON")
	}
	if _, err := Redact([]byte(`{}`), nil); err == nil {
		t.Error("Redact accepted nil version")
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

func clone[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	out := make(map[K]V, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}
