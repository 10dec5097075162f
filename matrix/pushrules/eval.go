package pushrules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Event is an event decoded once for evaluation against many rulesets.
// It is read-only after NewEvent, so Evaluators may share it.
type Event struct {
	v         map[string]any
	roomID    string
	sender    string
	bodyLower string
	hasBody   bool
}

// NewEvent decodes a client or federation event. Numbers are kept exact
// (json.Number), as event_property_is compares integers exactly.
func NewEvent(raw []byte) (*Event, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode event for push rules: %w", err)
	}
	if v == nil {
		return nil, fmt.Errorf("decode event for push rules: not an object")
	}
	e := &Event{v: v}
	e.roomID, _ = v["room_id"].(string)
	e.sender, _ = v["sender"].(string)
	if c, ok := v["content"].(map[string]any); ok {
		if b, ok := c["body"].(string); ok {
			e.bodyLower, e.hasBody = strings.ToLower(b), true
		}
	}
	return e, nil
}

// Sender is the event's sender.
func (e *Event) Sender() string { return e.sender }

// lookup follows a parsed property path.
func (e *Event) lookup(path []string) (any, bool) {
	var cur any = e.v
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Room is what evaluation needs to know of the room at the event: the same
// for every member evaluated.
type Room struct {
	// MemberCount is the number of joined members.
	MemberCount int
	// SenderPowerLevel is the sender's power level (for room v12, creators
	// have an infinite level: pass math.MaxInt64).
	SenderPowerLevel int64
	// NotificationLevels is the power levels content's notifications
	// object; a missing "room" entry means 50.
	NotificationLevels map[string]int64
}

// Evaluator is one user's ruleset compiled for evaluation. It is immutable
// and safe for concurrent use.
type Evaluator struct {
	rules []compiledRule
}

type compiledRule struct {
	id      string
	kind    string
	actions []Action
	conds   []cond
}

// cond is a compiled condition; never is the condition that never matches
// (an unknown kind or a malformed parameter, which the spec says make the
// rule disabled).
type cond func(e *Event, r *Room, displayName string) bool

func never(*Event, *Room, string) bool { return false }

// Compile compiles the enabled rules of rs. It never fails: a condition it
// cannot understand never matches.
func Compile(rs Ruleset) *Evaluator {
	ev := &Evaluator{}
	for _, k := range Kinds {
		for _, r := range *rs.List(k) {
			if !r.Enabled {
				continue
			}
			cr := compiledRule{id: r.RuleID, kind: k, actions: r.Actions}
			switch k {
			case KindOverride, KindUnderride:
				for _, c := range r.Conditions {
					cr.conds = append(cr.conds, compileCondition(c))
				}
			case KindContent:
				if r.Pattern == nil {
					cr.conds = []cond{never}
				} else {
					cr.conds = []cond{compileBodyGlob(*r.Pattern)}
				}
			case KindRoom:
				id := r.RuleID
				cr.conds = []cond{func(e *Event, _ *Room, _ string) bool { return e.roomID == id }}
			case KindSender:
				id := r.RuleID
				cr.conds = []cond{func(e *Event, _ *Room, _ string) bool { return e.sender == id }}
			}
			ev.rules = append(ev.rules, cr)
		}
	}
	return ev
}

// Evaluate returns the first rule (in priority order) whose conditions all
// hold, and its actions; ok is false when none matches. displayName is the
// user's display name in the room, for contains_display_name.
func (ev *Evaluator) Evaluate(e *Event, r *Room, displayName string) (ruleID string, actions []Action, ok bool) {
rules:
	for i := range ev.rules {
		cr := &ev.rules[i]
		for _, c := range cr.conds {
			if !c(e, r, displayName) {
				continue rules
			}
		}
		return cr.id, cr.actions, true
	}
	return "", nil, false
}

func compileCondition(c Condition) cond {
	switch c.Kind {
	case CondEventMatch:
		if c.Pattern == nil || c.Key == "" {
			return never
		}
		if c.Key == "content.body" {
			return compileBodyGlob(*c.Pattern)
		}
		path := SplitPath(c.Key)
		m := compileGlob(*c.Pattern)
		return func(e *Event, _ *Room, _ string) bool {
			v, ok := e.lookup(path)
			s, isStr := v.(string)
			return ok && isStr && m(s)
		}
	case CondEventPropertyIs:
		want, ok := scalar(c.Value)
		if !ok || c.Key == "" {
			return never
		}
		path := SplitPath(c.Key)
		return func(e *Event, _ *Room, _ string) bool {
			v, ok := e.lookup(path)
			return ok && scalarEqual(v, want)
		}
	case CondEventPropertyContains:
		want, ok := scalar(c.Value)
		if !ok || c.Key == "" {
			return never
		}
		path := SplitPath(c.Key)
		return func(e *Event, _ *Room, _ string) bool {
			v, ok := e.lookup(path)
			arr, isArr := v.([]any)
			if !ok || !isArr {
				return false
			}
			for _, x := range arr {
				if scalarEqual(x, want) {
					return true
				}
			}
			return false
		}
	case CondContainsDisplayName:
		return func(e *Event, _ *Room, name string) bool {
			return name != "" && e.hasBody && containsWord(e.bodyLower, strings.ToLower(name))
		}
	case CondRoomMemberCount:
		cmp, ok := parseMemberCount(c.Is)
		if !ok {
			return never
		}
		return func(_ *Event, r *Room, _ string) bool { return cmp(r.MemberCount) }
	case CondSenderNotificationPerm:
		key := c.Key
		if key == "" {
			return never
		}
		return func(_ *Event, r *Room, _ string) bool {
			need, ok := r.NotificationLevels[key]
			if !ok {
				if key != "room" {
					return false
				}
				need = 50 // the spec's default for notifications.room
			}
			return r.SenderPowerLevel >= need
		}
	}
	return never
}

// scalar decodes a condition value: a string, a boolean, null or an
// integer in the canonical JSON range.
func scalar(raw json.RawMessage) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	switch x := v.(type) {
	case string, bool, nil:
		return v, true
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil || n > maxSafe || n < -maxSafe {
			return nil, false
		}
		return n, true
	}
	return nil, false
}

const maxSafe = 1<<53 - 1

// scalarEqual compares an event value with a decoded condition value
// exactly: no casts between types.
func scalarEqual(v, want any) bool {
	switch w := want.(type) {
	case nil:
		return v == nil
	case string:
		s, ok := v.(string)
		return ok && s == w
	case bool:
		b, ok := v.(bool)
		return ok && b == w
	case int64:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		return err == nil && i == w
	}
	return false
}

// parseMemberCount parses room_member_count's "is": an optional ==, <, >,
// <= or >= and a decimal integer.
func parseMemberCount(is string) (func(int) bool, bool) {
	op := "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if rest, ok := strings.CutPrefix(is, p); ok {
			op, is = p, rest
			break
		}
	}
	n, err := strconv.Atoi(is)
	if err != nil || is == "" || is[0] == '+' || is[0] == '-' {
		return nil, false
	}
	switch op {
	case "<":
		return func(c int) bool { return c < n }, true
	case ">":
		return func(c int) bool { return c > n }, true
	case "<=":
		return func(c int) bool { return c <= n }, true
	case ">=":
		return func(c int) bool { return c >= n }, true
	}
	return func(c int) bool { return c == n }, true
}

// SplitPath splits a dot-separated property path, where "\." is a literal
// dot and "\\" a literal backslash; other escapes are kept as they are.
func SplitPath(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// compileGlob returns a whole-value, case-insensitive matcher for a glob
// ('*' any run, '?' one character). A glob without wildcards needs no
// regular expression.
func compileGlob(pattern string) func(string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return func(s string) bool { return strings.EqualFold(s, pattern) }
	}
	re := regexp.MustCompile(`(?is)^` + globRegexp(pattern) + `$`)
	return re.MatchString
}

// compileBodyGlob matches content.body: the glob must match a substring
// that starts and ends at word boundaries (push.md, event_match).
func compileBodyGlob(pattern string) cond {
	if !strings.ContainsAny(pattern, "*?") {
		lower := strings.ToLower(pattern)
		return func(e *Event, _ *Room, _ string) bool { return e.hasBody && containsWord(e.bodyLower, lower) }
	}
	re := regexp.MustCompile(`(?is)(?:^|[^a-z0-9_])` + globRegexp(pattern) + `(?:[^a-z0-9_]|$)`)
	// Most bodies do not contain the glob's literal pieces at all; checking
	// that with strings.Contains first skips the regular expression.
	var pieces []string
	for _, p := range strings.FieldsFunc(strings.ToLower(pattern), func(r rune) bool { return r == '*' || r == '?' }) {
		pieces = append(pieces, p)
	}
	return func(e *Event, _ *Room, _ string) bool {
		if !e.hasBody {
			return false
		}
		for _, p := range pieces {
			if !strings.Contains(e.bodyLower, p) {
				return false
			}
		}
		return re.MatchString(e.bodyLower)
	}
}

func globRegexp(pattern string) string {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// containsWord reports whether needle occurs in hay between word
// boundaries (start, end, or a character outside [A-Za-z0-9_]). Both are
// lower case.
func containsWord(hay, needle string) bool {
	if needle == "" {
		return false
	}
	for i := 0; i <= len(hay)-len(needle); {
		j := strings.Index(hay[i:], needle)
		if j < 0 {
			return false
		}
		s, e := i+j, i+j+len(needle)
		if (s == 0 || !isWordByte(hay[s-1])) && (e == len(hay) || !isWordByte(hay[e])) {
			return true
		}
		i = s + 1
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
