package pushrules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

func ev(t testing.TB, s string) *Event {
	t.Helper()
	e, err := NewEvent([]byte(s))
	if err != nil {
		t.Fatalf("NewEvent(%s): %v", s, err)
	}
	return e
}

func strp(s string) *string { return &s }

// TestConditions checks each condition kind on the spec's examples (push.md, "Conditions").
func TestConditions(t *testing.T) {
	room := &Room{MemberCount: 5, SenderPowerLevel: 50}
	for _, tc := range []struct {
		name  string
		cond  Condition
		event string
		want  bool
	}{
		{"topic lunc?*", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("lunc?*")}, `{"content":{"topic":"Lunch plans"}}`, true},
		{"topic LUNCH", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("lunc?*")}, `{"content":{"topic":"LUNCH"}}`, true},
		{"topic leading space", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("lunc?*")}, `{"content":{"topic":" lunch"}}`, false},
		{"topic lunc", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("lunc?*")}, `{"content":{"topic":"lunc"}}`, false},
		{"topic null", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("*")}, `{"content":{"topic":null}}`, false},
		{"absent with *", Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: strp("*")}, `{"content":{}}`, false},
		{"body ex*ple", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("ex*ple")}, `{"content":{"body":"An example event."}}`, true},
		{"body exple", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("ex*ple")}, `{"content":{"body":"exple"}}`, true},
		{"body triple-whammy", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("ex*ple")}, `{"content":{"body":"An exciting triple-whammy"}}`, true},
		{"body not at boundary", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("ex*ple")}, `{"content":{"body":"examples"}}`, false},
		{"body literal word", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("cake")}, `{"content":{"body":"I like Cake!"}}`, true},
		{"body literal inside word", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: strp("cake")}, `{"content":{"body":"cupcakes"}}`, false},
		{"type literal", Condition{Kind: CondEventMatch, Key: "type", Pattern: strp("m.room.message")}, `{"type":"m.room.message"}`, true},
		{"type literal is whole value", Condition{Kind: CondEventMatch, Key: "type", Pattern: strp("m.room")}, `{"type":"m.room.message"}`, false},
		{"is federate true", Condition{Kind: CondEventPropertyIs, Key: `content.m\.federate`, Value: json.RawMessage(`true`)}, `{"content":{"m.federate":true}}`, true},
		{"is federate string", Condition{Kind: CondEventPropertyIs, Key: `content.m\.federate`, Value: json.RawMessage(`true`)}, `{"content":{"m.federate":"true"}}`, false},
		{"is federate 1", Condition{Kind: CondEventPropertyIs, Key: `content.m\.federate`, Value: json.RawMessage(`true`)}, `{"content":{"m.federate":1}}`, false},
		{"is integer", Condition{Kind: CondEventPropertyIs, Key: "content.n", Value: json.RawMessage(`42`)}, `{"content":{"n":42}}`, true},
		{"is null", Condition{Kind: CondEventPropertyIs, Key: "content.n", Value: json.RawMessage(`null`)}, `{"content":{"n":null}}`, true},
		{"is null absent", Condition{Kind: CondEventPropertyIs, Key: "content.n", Value: json.RawMessage(`null`)}, `{"content":{}}`, false},
		{"is compound value never", Condition{Kind: CondEventPropertyIs, Key: "content.n", Value: json.RawMessage(`[1]`)}, `{"content":{"n":[1]}}`, false},
		{"contains alias", Condition{Kind: CondEventPropertyContains, Key: "content.alt_aliases", Value: json.RawMessage(`"#myroom:example.com"`)}, `{"content":{"alt_aliases":["#somewhere:example.org","#myroom:example.com"]}}`, true},
		{"contains partial", Condition{Kind: CondEventPropertyContains, Key: "content.alt_aliases", Value: json.RawMessage(`":example.com"`)}, `{"content":{"alt_aliases":["#myroom:example.com"]}}`, false},
		{"contains not array", Condition{Kind: CondEventPropertyContains, Key: "content.alt_aliases", Value: json.RawMessage(`"a"`)}, `{"content":{"alt_aliases":"a"}}`, false},
		{"escaped backslash path", Condition{Kind: CondEventPropertyIs, Key: `content.m\\foo`, Value: json.RawMessage(`"x"`)}, `{"content":{"m\\foo":"x"}}`, true},
		{"member count ==5", Condition{Kind: CondRoomMemberCount, Is: "5"}, `{}`, true},
		{"member count <5", Condition{Kind: CondRoomMemberCount, Is: "<5"}, `{}`, false},
		{"member count <=10", Condition{Kind: CondRoomMemberCount, Is: "<=10"}, `{}`, true},
		{"member count >4", Condition{Kind: CondRoomMemberCount, Is: ">4"}, `{}`, true},
		{"member count >=6", Condition{Kind: CondRoomMemberCount, Is: ">=6"}, `{}`, false},
		{"member count malformed", Condition{Kind: CondRoomMemberCount, Is: "five"}, `{}`, false},
		{"sender permission default 50", Condition{Kind: CondSenderNotificationPerm, Key: "room"}, `{}`, true},
		{"unknown kind never", Condition{Kind: "org.example.new"}, `{}`, false},
		{"display name", Condition{Kind: CondContainsDisplayName}, `{"content":{"body":"hey Alice, look"}}`, true},
		{"display name inside word", Condition{Kind: CondContainsDisplayName}, `{"content":{"body":"Alicees"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Compile(Ruleset{Override: []Rule{{RuleID: "r", Enabled: true, Conditions: []Condition{tc.cond}, Actions: []Action{Notify}}}})
			_, _, got := e.Evaluate(ev(t, tc.event), room, "alice")
			if got != tc.want {
				t.Errorf("condition %+v on %s = %v, want %v", tc.cond, tc.event, got, tc.want)
			}
		})
	}
}

// TestDefaultRules checks which default rule wins for typical events.
func TestDefaultRules(t *testing.T) {
	const me = "@alice:example.org"
	e := Compile(Default(me))
	for _, tc := range []struct {
		name      string
		event     string
		members   int
		senderPL  int64
		notifPL   map[string]int64
		wantRule  string
		notify    bool
		highlight bool
	}{
		{"message in group", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"hi","msgtype":"m.text"}}`, 3, 0, nil, ".m.rule.message", true, false},
		{"message 1:1", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"hi"}}`, 2, 0, nil, ".m.rule.room_one_to_one", true, false},
		{"notice", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"hi","msgtype":"m.notice"}}`, 3, 0, nil, ".m.rule.suppress_notices", false, false},
		{"user mention", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"hi","m.mentions":{"user_ids":["@alice:example.org"]}}}`, 3, 0, nil, ".m.rule.is_user_mention", true, true},
		{"other's mention", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"hi","m.mentions":{"user_ids":["@carol:example.org"]}}}`, 3, 0, nil, ".m.rule.message", true, false},
		{"room mention by mod", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"@room","m.mentions":{"room":true}}}`, 3, 50, nil, ".m.rule.is_room_mention", true, true},
		{"room mention by user", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"@room","m.mentions":{"room":true}}}`, 3, 0, nil, ".m.rule.message", true, false},
		{"room mention lowered level", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"@room","m.mentions":{"room":true}}}`, 3, 0, map[string]int64{"room": 0}, ".m.rule.is_room_mention", true, true},
		{"room mention by v12 creator", `{"type":"m.room.message","sender":"@bob:x","content":{"m.mentions":{"room":true}}}`, 3, math.MaxInt64, map[string]int64{"room": 100}, ".m.rule.is_room_mention", true, true},
		{"invite for me", `{"type":"m.room.member","sender":"@bob:x","state_key":"@alice:example.org","content":{"membership":"invite"}}`, 3, 0, nil, ".m.rule.invite_for_me", true, false},
		{"invite for other", `{"type":"m.room.member","sender":"@bob:x","state_key":"@carol:example.org","content":{"membership":"invite"}}`, 3, 0, nil, ".m.rule.member_event", false, false},
		{"tombstone", `{"type":"m.room.tombstone","sender":"@bob:x","state_key":"","content":{}}`, 3, 0, nil, ".m.rule.tombstone", true, true},
		{"tombstone not state", `{"type":"m.room.tombstone","sender":"@bob:x","content":{}}`, 3, 0, nil, "", false, false},
		{"reaction", `{"type":"m.reaction","sender":"@bob:x","content":{}}`, 2, 0, nil, ".m.rule.reaction", false, false},
		{"edit", `{"type":"m.room.message","sender":"@bob:x","content":{"body":"* hi","m.relates_to":{"rel_type":"m.replace","event_id":"$a"}}}`, 3, 0, nil, ".m.rule.suppress_edits", false, false},
		{"call", `{"type":"m.call.invite","sender":"@bob:x","content":{}}`, 3, 0, nil, ".m.rule.call", true, false},
		{"encrypted 1:1", `{"type":"m.room.encrypted","sender":"@bob:x","content":{}}`, 2, 0, nil, ".m.rule.encrypted_room_one_to_one", true, false},
		{"encrypted group", `{"type":"m.room.encrypted","sender":"@bob:x","content":{}}`, 5, 0, nil, ".m.rule.encrypted", true, false},
		{"topic change", `{"type":"m.room.topic","sender":"@bob:x","state_key":"","content":{"topic":"t"}}`, 3, 0, nil, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, actions, ok := e.Evaluate(ev(t, tc.event), &Room{MemberCount: tc.members, SenderPowerLevel: tc.senderPL, NotificationLevels: tc.notifPL}, "Alice")
			o := OutcomeOf(actions)
			if id != tc.wantRule || ok != (tc.wantRule != "") || o.Notify != tc.notify || o.Highlight != tc.highlight {
				t.Errorf("Evaluate = %q (ok %v, notify %v, highlight %v), want %q (notify %v, highlight %v)",
					id, ok, o.Notify, o.Highlight, tc.wantRule, tc.notify, tc.highlight)
			}
		})
	}
}

// TestUserRules checks edits and the priority of user rules against defaults.
func TestUserRules(t *testing.T) {
	const me = "@alice:example.org"
	var u UserRules
	// The spec's examples: mute a room, mute a sender, content rules with before.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(u.Put(KindRoom, Rule{RuleID: "!dj234r78wl45Gh4D:matrix.org", Actions: []Action{}}, "", ""))
	must(u.Put(KindSender, Rule{RuleID: "@spambot:matrix.org", Actions: []Action{}}, "", ""))
	must(u.Put(KindContent, Rule{RuleID: "SSByZWFsbHkgbGlrZSBjYWtl", Pattern: strp("cake"), Actions: []Action{Notify, Tweak("sound", "cakealarm.wav")}}, "", ""))
	must(u.Put(KindContent, Rule{RuleID: "U3BvbmdlIGNha2UgaXMgYmVzdA", Pattern: strp("cake*lie"), Actions: []Action{Notify}}, "SSByZWFsbHkgbGlrZSBjYWtl", ""))
	must(u.Put(KindContent, Rule{RuleID: "last", Pattern: strp("x"), Actions: []Action{Notify}}, "", "SSByZWFsbHkgbGlrZSBjYWtl"))
	rs := u.Merge(me)
	var ids []string
	for _, r := range rs.Content {
		ids = append(ids, r.RuleID)
	}
	if want := []string{"U3BvbmdlIGNha2UgaXMgYmVzdA", "SSByZWFsbHkgbGlrZSBjYWtl", "last"}; !slices.Equal(ids, want) {
		t.Errorf("content order = %v, want %v", ids, want)
	}
	if rs.Override[0].RuleID != ".m.rule.master" {
		t.Errorf("first override = %s, want .m.rule.master", rs.Override[0].RuleID)
	}
	e := Compile(rs)
	room := &Room{MemberCount: 3}
	for _, tc := range []struct{ name, event, want string }{
		{"muted room", `{"type":"m.room.message","room_id":"!dj234r78wl45Gh4D:matrix.org","sender":"@bob:x","content":{"body":"cake"}}`, "SSByZWFsbHkgbGlrZSBjYWtl"},
		{"muted room plain", `{"type":"m.room.message","room_id":"!dj234r78wl45Gh4D:matrix.org","sender":"@bob:x","content":{"body":"hi"}}`, "!dj234r78wl45Gh4D:matrix.org"},
		{"spambot", `{"type":"m.room.message","room_id":"!r:x","sender":"@spambot:matrix.org","content":{"body":"hi"}}`, "@spambot:matrix.org"},
		{"cake lie", `{"type":"m.room.message","room_id":"!r:x","sender":"@bob:x","content":{"body":"the cake is a lie"}}`, "U3BvbmdlIGNha2UgaXMgYmVzdA"},
	} {
		if id, _, _ := e.Evaluate(ev(t, tc.event), room, ""); id != tc.want {
			t.Errorf("%s: rule %q, want %q", tc.name, id, tc.want)
		}
	}

	// Master enabled silences everything, even user rules.
	must(u.SetEnabled(me, KindOverride, ".m.rule.master", true))
	rs = u.Merge(me)
	if id, actions, _ := Compile(rs).Evaluate(ev(t, `{"type":"m.room.message","room_id":"!r:x","sender":"@bob:x","content":{"body":"cake"}}`), room, ""); id != ".m.rule.master" || OutcomeOf(actions).Notify {
		t.Errorf("with master on: rule %q actions %v", id, actions)
	}
	must(u.SetActions(me, KindUnderride, ".m.rule.message", []Action{}))
	if r, _ := u.Merge(me).Find(KindUnderride, ".m.rule.message"); len(r.Actions) != 0 || !r.Default {
		t.Errorf("default .m.rule.message after SetActions = %+v", r)
	}

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"dot id", u.Put(KindOverride, Rule{RuleID: ".mine", Actions: []Action{}}, "", ""), ErrInvalid},
		{"slash id", u.Put(KindOverride, Rule{RuleID: "a/b", Actions: []Action{}}, "", ""), ErrInvalid},
		{"no actions", u.Put(KindOverride, Rule{RuleID: "a"}, "", ""), ErrInvalid},
		{"unknown action", u.Put(KindOverride, Rule{RuleID: "a", Actions: []Action{{Kind: "explode"}}}, "", ""), ErrInvalid},
		{"content no pattern", u.Put(KindContent, Rule{RuleID: "a", Actions: []Action{}}, "", ""), ErrInvalid},
		{"room id not a room", u.Put(KindRoom, Rule{RuleID: "a", Actions: []Action{}}, "", ""), ErrInvalid},
		{"missing anchor", u.Put(KindOverride, Rule{RuleID: "a", Actions: []Action{}}, "nope", ""), ErrAnchor},
		{"default anchor", u.Put(KindOverride, Rule{RuleID: "a", Actions: []Action{}}, ".m.rule.master", ""), ErrAnchor},
		{"delete default", u.Delete(KindOverride, ".m.rule.master"), ErrInvalid},
		{"delete missing", u.Delete(KindOverride, "nope"), ErrNotFound},
		{"enable missing", u.SetEnabled(me, KindOverride, "nope", true), ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	must(u.Delete(KindContent, "last"))
	if _, err := u.Merge(me).Find(KindContent, "last"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find after Delete: %v", err)
	}
}

func TestActionJSON(t *testing.T) {
	in := `["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"},"dont_notify",{"org.x":1}]`
	var as []Action
	if err := json.Unmarshal([]byte(in), &as); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(as)
	if err != nil || string(out) != in {
		t.Fatalf("round trip = %s, %v; want %s", out, err, in)
	}
	o := OutcomeOf(as)
	if !o.Notify || !o.Highlight || string(o.Tweaks["sound"]) != `"default"` {
		t.Errorf("OutcomeOf = %+v", o)
	}
}

// FuzzRuleJSON feeds arbitrary JSON to the rule decoder, the edits and the
// compiler: nothing may panic.
func FuzzRuleJSON(f *testing.F) {
	f.Add(`{"actions":["notify",{"set_tweak":"highlight"}],"conditions":[{"kind":"event_match","key":"content.body","pattern":"a*b?"}]}`, `{"content":{"body":"aXb!"}}`)
	f.Add(`{"actions":[],"conditions":[{"kind":"room_member_count","is":">=2"},{"kind":"event_property_is","key":"a\\.b","value":9007199254740991}]}`, `{"a.b":9007199254740991}`)
	f.Add(`{"actions":[{"set_tweak":1}],"pattern":"*"}`, `{}`)
	f.Fuzz(func(t *testing.T, rule, event string) {
		var r Rule
		if json.Unmarshal([]byte(rule), &r) != nil {
			return
		}
		for _, k := range Kinds {
			r.RuleID = "x"
			if k == KindRoom {
				r.RuleID = "!x"
			} else if k == KindSender {
				r.RuleID = "@x"
			}
			var u UserRules
			_ = u.Put(k, r, "", "")
			c := Compile(u.Merge("@me:x"))
			if e, err := NewEvent([]byte(event)); err == nil {
				c.Evaluate(e, &Room{MemberCount: 2}, "me")
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("Marshal(%+v): %v", r, err)
		}
	})
}

// BenchmarkEvaluate evaluates one message for every member of a 20-member
// room, each with their own compiled ruleset (as the push consumer does).
func BenchmarkEvaluate(b *testing.B) {
	evals := make([]*Evaluator, 20)
	for i := range evals {
		var u UserRules
		_ = u.Put(KindContent, Rule{RuleID: "kw", Pattern: strp("deploy*"), Actions: []Action{Notify}}, "", "")
		evals[i] = Compile(u.Merge(fmt.Sprintf("@user%d:example.org", i)))
	}
	raw := []byte(`{"type":"m.room.message","room_id":"!r:example.org","sender":"@user0:example.org","content":{"msgtype":"m.text","body":"hello everyone, this is a normal chat message","m.mentions":{"user_ids":["@user3:example.org"]}}}`)
	room := &Room{MemberCount: 20}
	b.ReportAllocs()
	for b.Loop() {
		e, err := NewEvent(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evals {
			ev.Evaluate(e, room, "User")
		}
	}
}
