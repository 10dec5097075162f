package pushrules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of the edits; wrapped with the detail.
var (
	// ErrNotFound: no rule of that kind and id.
	ErrNotFound = errors.New("push rule not found")
	// ErrInvalid: the rule id, kind or body is not acceptable.
	ErrInvalid = errors.New("invalid push rule")
	// ErrAnchor: before/after names no user-defined rule of the kind.
	ErrAnchor = errors.New("before/after rule not found")
)

// UserRules is what a user changed: their own rules, and the enabled flag
// and actions they set on server-default rules. The full ruleset is
// Merge'd with the defaults on read, so new server defaults reach everyone.
type UserRules struct {
	Rules Ruleset `json:"rules"`
	// Defaults is keyed by kind + "/" + rule id.
	Defaults map[string]DefaultChange `json:"defaults,omitempty"`
}

// DefaultChange is a user's change to a server-default rule.
type DefaultChange struct {
	Enabled *bool    `json:"enabled,omitempty"`
	Actions []Action `json:"actions,omitempty"`
}

// Merge returns the user's full ruleset: .m.rule.master first, then the
// user's rules of each kind before the server defaults of that kind.
func (u UserRules) Merge(userID string) Ruleset {
	def := Default(userID)
	var out Ruleset
	for _, k := range Kinds {
		defs := *def.List(k)
		for i := range defs {
			if c, ok := u.Defaults[k+"/"+defs[i].RuleID]; ok {
				if c.Enabled != nil {
					defs[i].Enabled = *c.Enabled
				}
				if c.Actions != nil {
					defs[i].Actions = c.Actions
				}
			}
		}
		list := out.List(k)
		*list = []Rule{}
		own := *u.Rules.List(k)
		if k == KindOverride && len(defs) > 0 && defs[0].RuleID == ".m.rule.master" {
			// The master rule beats even user-defined rules.
			*list = append(*list, defs[0])
			defs = defs[1:]
		}
		*list = append(*list, own...)
		*list = append(*list, defs...)
	}
	return out
}

// ValidateRuleID checks a rule id for PUT: not a server-default id, no
// slashes, and for room and sender rules a room or user id.
func ValidateRuleID(kind, id string) error {
	switch {
	case !ValidKind(kind):
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, kind)
	case id == "":
		return fmt.Errorf("%w: empty rule id", ErrInvalid)
	case strings.HasPrefix(id, "."):
		return fmt.Errorf("%w: rule ids starting with '.' are reserved for server-default rules", ErrInvalid)
	case strings.ContainsAny(id, `/\`):
		return fmt.Errorf("%w: rule ids may not contain '/' or '\\'", ErrInvalid)
	case kind == KindRoom && !strings.HasPrefix(id, "!"):
		return fmt.Errorf("%w: a room rule's id must be a room id", ErrInvalid)
	case kind == KindSender && !strings.HasPrefix(id, "@"):
		return fmt.Errorf("%w: a sender rule's id must be a user id", ErrInvalid)
	}
	return nil
}

// ValidateActions rejects actions the server does not know: only notify,
// set_tweak and the historical dont_notify and coalesce are defined.
func ValidateActions(actions []Action) error {
	for _, a := range actions {
		switch {
		case a.raw != nil:
			return fmt.Errorf("%w: unknown action %s", ErrInvalid, a.raw)
		case a.Kind == ActionSetTweak && a.Tweak == "":
			return fmt.Errorf("%w: empty set_tweak", ErrInvalid)
		case a.Kind == ActionNotify, a.Kind == ActionSetTweak, a.Kind == "dont_notify", a.Kind == "coalesce":
		default:
			return fmt.Errorf("%w: unknown action %q", ErrInvalid, a.Kind)
		}
	}
	return nil
}

// Put adds or replaces a user-defined rule. A new rule is enabled and goes
// first among the user's rules of its kind unless before or after name one
// of them (before wins when both are given); a replaced rule keeps its
// enabled flag and its place unless before or after is given.
func (u *UserRules) Put(kind string, r Rule, before, after string) error {
	if err := ValidateRuleID(kind, r.RuleID); err != nil {
		return err
	}
	if r.Actions == nil {
		return fmt.Errorf("%w: actions are required", ErrInvalid)
	}
	if err := ValidateActions(r.Actions); err != nil {
		return err
	}
	switch kind {
	case KindContent:
		if r.Pattern == nil {
			return fmt.Errorf("%w: a content rule needs a pattern", ErrInvalid)
		}
		r.Conditions = nil
	case KindOverride, KindUnderride:
		r.Pattern = nil
		for _, c := range r.Conditions {
			if c.Kind == "" {
				return fmt.Errorf("%w: a condition has no kind", ErrInvalid)
			}
		}
		if r.Conditions == nil {
			r.Conditions = []Condition{}
		}
	default:
		r.Conditions, r.Pattern = nil, nil
	}
	r.Default, r.Enabled = false, true
	list := u.Rules.List(kind)
	at := -1
	if i := indexOf(*list, r.RuleID); i >= 0 {
		r.Enabled = (*list)[i].Enabled
		at = i
	}
	anchor := before
	if anchor == "" {
		anchor = after
	}
	if anchor != "" {
		if anchor == r.RuleID || indexOf(*list, anchor) < 0 {
			return fmt.Errorf("%w: %s", ErrAnchor, anchor)
		}
	}
	if at >= 0 && anchor == "" {
		(*list)[at] = r
		return nil
	}
	if at >= 0 {
		*list = slices.Delete(*list, at, at+1)
	}
	pos := 0
	if anchor != "" {
		pos = indexOf(*list, anchor)
		if before == "" {
			pos++
		}
	}
	*list = slices.Insert(*list, pos, r)
	return nil
}

// Delete removes a user-defined rule; server-default rules cannot go.
func (u *UserRules) Delete(kind, id string) error {
	list := u.Rules.List(kind)
	if list == nil {
		return fmt.Errorf("%w: unknown kind %q", ErrNotFound, kind)
	}
	i := indexOf(*list, id)
	if i < 0 {
		if strings.HasPrefix(id, ".") {
			return fmt.Errorf("%w: server-default rules cannot be deleted", ErrInvalid)
		}
		return fmt.Errorf("%w: %s/%s", ErrNotFound, kind, id)
	}
	*list = slices.Delete(*list, i, i+1)
	return nil
}

// SetEnabled enables or disables a rule, user-defined or default.
func (u *UserRules) SetEnabled(userID, kind, id string, enabled bool) error {
	return u.change(userID, kind, id, func(r *Rule, c *DefaultChange) {
		if r != nil {
			r.Enabled = enabled
		} else {
			c.Enabled = &enabled
		}
	})
}

// SetActions replaces the actions of a rule, user-defined or default.
func (u *UserRules) SetActions(userID, kind, id string, actions []Action) error {
	if actions == nil {
		return fmt.Errorf("%w: actions are required", ErrInvalid)
	}
	if err := ValidateActions(actions); err != nil {
		return err
	}
	return u.change(userID, kind, id, func(r *Rule, c *DefaultChange) {
		if r != nil {
			r.Actions = actions
		} else {
			c.Actions = actions
		}
	})
}

func (u *UserRules) change(userID, kind, id string, f func(*Rule, *DefaultChange)) error {
	list := u.Rules.List(kind)
	if list == nil {
		return fmt.Errorf("%w: unknown kind %q", ErrNotFound, kind)
	}
	if i := indexOf(*list, id); i >= 0 {
		f(&(*list)[i], nil)
		return nil
	}
	def := Default(userID)
	if indexOf(*def.List(kind), id) < 0 {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, kind, id)
	}
	if u.Defaults == nil {
		u.Defaults = map[string]DefaultChange{}
	}
	c := u.Defaults[kind+"/"+id]
	f(nil, &c)
	u.Defaults[kind+"/"+id] = c
	return nil
}

// Find returns a rule of the merged ruleset.
func (rs Ruleset) Find(kind, id string) (Rule, error) {
	list := rs.List(kind)
	if list == nil {
		return Rule{}, fmt.Errorf("%w: unknown kind %q", ErrNotFound, kind)
	}
	if i := indexOf(*list, id); i >= 0 {
		return (*list)[i], nil
	}
	return Rule{}, fmt.Errorf("%w: %s/%s", ErrNotFound, kind, id)
}

func indexOf(list []Rule, id string) int {
	return slices.IndexFunc(list, func(r Rule) bool { return r.RuleID == id })
}
