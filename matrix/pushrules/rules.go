// Package pushrules is the push rules module of the Client-Server API
// (client-server-api/modules/push.md): the rule and ruleset types as they
// appear on the wire, the server-default ruleset, edits of a user's rules
// (PUT/DELETE /pushrules/...), and evaluation of events against a ruleset.
//
// Evaluation is built for fan-out: Compile turns a user's ruleset into an
// Evaluator once (globs compiled, the user's id substituted), and an event
// is decoded once into an Event that every member's Evaluator reads.
package pushrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of rules, in the order they are checked.
const (
	KindOverride  = "override"
	KindContent   = "content"
	KindRoom      = "room"
	KindSender    = "sender"
	KindUnderride = "underride"
)

// Kinds lists the rule kinds in priority order.
var Kinds = []string{KindOverride, KindContent, KindRoom, KindSender, KindUnderride}

// ValidKind reports whether k is a rule kind.
func ValidKind(k string) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Condition kinds.
const (
	CondEventMatch             = "event_match"
	CondEventPropertyIs        = "event_property_is"
	CondEventPropertyContains  = "event_property_contains"
	CondContainsDisplayName    = "contains_display_name"
	CondRoomMemberCount        = "room_member_count"
	CondSenderNotificationPerm = "sender_notification_permission"
)

// Ruleset is the rules of one scope (the spec only has "global"), each
// list in priority order.
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// List returns a pointer to the list of kind k, nil for an unknown kind.
func (rs *Ruleset) List(k string) *[]Rule {
	switch k {
	case KindOverride:
		return &rs.Override
	case KindContent:
		return &rs.Content
	case KindRoom:
		return &rs.Room
	case KindSender:
		return &rs.Sender
	case KindUnderride:
		return &rs.Underride
	}
	return nil
}

// Rule is a push rule.
type Rule struct {
	RuleID     string      `json:"rule_id"`
	Default    bool        `json:"default"`
	Enabled    bool        `json:"enabled"`
	Conditions []Condition `json:"conditions,omitempty"`
	Actions    []Action    `json:"actions"`
	// Pattern is the glob of content rules.
	Pattern *string `json:"pattern,omitempty"`
}

// Condition is one condition of an override or underride rule. Unknown
// kinds are kept (and never match, as the spec requires).
type Condition struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Pattern *string         `json:"pattern,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Is      string          `json:"is,omitempty"`
}

// Action is one action: "notify" or a set_tweak with an optional value.
// Other string actions ("dont_notify", "coalesce") are historical; they
// parse (so that old rules stay readable) and do nothing.
type Action struct {
	// Kind is "notify", "set_tweak", or the string of another action.
	Kind  string
	Tweak string
	// Value is the tweak's value, nil when absent.
	Value json.RawMessage
	// raw keeps an unknown object action as it came.
	raw json.RawMessage
}

// Action kinds.
const (
	ActionNotify   = "notify"
	ActionSetTweak = "set_tweak"
)

// Notify is the "notify" action.
var Notify = Action{Kind: ActionNotify}

// Tweak returns a set_tweak action; value may be nil.
func Tweak(name string, value any) Action {
	a := Action{Kind: ActionSetTweak, Tweak: name}
	if value != nil {
		a.Value, _ = json.Marshal(value)
	}
	return a
}

// MarshalJSON writes the action in its wire form.
func (a Action) MarshalJSON() ([]byte, error) {
	switch {
	case a.raw != nil:
		return a.raw, nil
	case a.Kind == ActionSetTweak:
		m := map[string]json.RawMessage{}
		m["set_tweak"], _ = json.Marshal(a.Tweak)
		if a.Value != nil {
			m["value"] = a.Value
		}
		return json.Marshal(m)
	default:
		return json.Marshal(a.Kind)
	}
}

// UnmarshalJSON reads a string or object action.
func (a *Action) UnmarshalJSON(b []byte) error {
	*a = Action{}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &a.Kind)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return errors.New("action is neither a string nor an object")
	}
	if t, ok := m["set_tweak"]; ok {
		if err := json.Unmarshal(t, &a.Tweak); err != nil {
			return fmt.Errorf("set_tweak is not a string: %w", err)
		}
		a.Kind = ActionSetTweak
		a.Value = m["value"]
		return nil
	}
	// An object action we do not know: keep it for the client.
	a.raw = append(json.RawMessage(nil), b...)
	return nil
}

// Outcome is what the actions of the matching rule ask for.
type Outcome struct {
	Notify    bool
	Highlight bool
	// Tweaks are the set_tweak actions, for the push gateway.
	Tweaks map[string]json.RawMessage
}

// OutcomeOf interprets actions: highlight without a value means true; no
// highlight tweak means false.
func OutcomeOf(actions []Action) Outcome {
	var o Outcome
	for _, a := range actions {
		switch a.Kind {
		case ActionNotify:
			o.Notify = true
		case ActionSetTweak:
			if o.Tweaks == nil {
				o.Tweaks = map[string]json.RawMessage{}
			}
			v := a.Value
			if v == nil && a.Tweak == "highlight" {
				v = json.RawMessage("true")
			}
			o.Tweaks[a.Tweak] = v
			if a.Tweak == "highlight" {
				var b bool
				o.Highlight = json.Unmarshal(v, &b) == nil && b
			}
		}
	}
	return o
}
