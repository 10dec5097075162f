package authrules

import (
	"fmt"
	"slices"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
)

// topLevelNames are the single-valued levels the power levels rules
// compare, in the spec's order.
var topLevelNames = []string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

// checkPowerLevels applies the m.room.power_levels rule (10 in v1–v5 and
// v12, 9 in v6–v11). senderLevel is the sender's level in the current
// power levels.
func (c *checker) checkPowerLevels(lv levels, senderLevel int64) error {
	e, v, n := c.e, c.v, c.n
	p := rule{n.powerLevels}
	content := e.Content()

	if v.EnforceIntPowerLevels {
		for _, name := range topLevelNames {
			if val, ok := lookup(content, name); ok && !isJSONInt(val) {
				return c.reject(p.sub(n.plTopLevelInts), "%s is %s, not an integer", name, clip(val))
			}
		}
		for _, name := range []string{"events", "notifications"} {
			val, ok := lookup(content, name)
			if !ok {
				continue
			}
			if err := checkIntMap(val); err != nil {
				return c.reject(p.sub(n.plMapInts), "%s: %v", name, err)
			}
		}
	}

	newUsers, err := c.validateUsers(content)
	if err != nil {
		return c.reject(p.sub(n.plUsers), "users: %v", err)
	}
	if v.FloatPowerLevels {
		// v1-floaty-power-levels.md: "Values outside the range represented
		// by IEEE754 binary64 ... cause the powerlevel event to be
		// rejected". The fragment gives no rule number; cite the rule.
		if err := c.checkFloatRange(content); err != nil {
			return c.reject(p, "%v (rooms/fragments/v1-floaty-power-levels)", err)
		}
	}
	if v.PrivilegedCreators {
		for u := range newUsers {
			if isCreator(c.create, matrix.UserID(u)) {
				return c.reject(p.sub(n.plCreators), "users lists the room creator %s", u)
			}
		}
	}

	if c.powerLevels == nil {
		return nil // no previous m.room.power_levels event
	}
	old := c.powerLevels.Content()

	// Single-valued levels: for each one added, changed or removed, the
	// current and the new value must not exceed the sender's level. Only
	// present values are compared (a missing value is not its default).
	alt := p.sub(n.plAlterations)
	for _, name := range topLevelNames {
		oldVal, _ := lookup(old, name)
		newVal, _ := lookup(content, name)
		o, oldP, err := parseLevel(oldVal, v)
		if err != nil {
			return c.reject(alt, "current %s: %v", name, err)
		}
		nw, newP, err := parseLevel(newVal, v)
		if err != nil {
			return c.reject(alt, "new %s: %v", name, err)
		}
		if !oldP && !newP || oldP && newP && o == nw {
			continue
		}
		if oldP && o > senderLevel {
			return c.reject(alt.sub(1), "current %s %d exceeds the sender's level %d", name, o, senderLevel)
		}
		if newP && nw > senderLevel {
			return c.reject(alt.sub(2), "new %s %d exceeds the sender's level %d", name, nw, senderLevel)
		}
	}

	// events, and notifications from v6.
	maps := []string{"events"}
	if v.NotificationsPowerLevels {
		maps = append(maps, "notifications")
	}
	type mapPair struct {
		name     string
		old, new map[string]int64
	}
	var pairs []mapPair
	for _, name := range maps {
		o, err := c.levelMap(old, name)
		if err != nil {
			return c.reject(p.sub(n.plMapsOld), "current %s: %v", name, err)
		}
		nw, err := c.levelMap(content, name)
		if err != nil {
			return c.reject(p.sub(n.plMapsNew), "new %s: %v", name, err)
		}
		pairs = append(pairs, mapPair{name, o, nw})
	}
	for _, mp := range pairs {
		for _, k := range sortedKeys(mp.old) {
			o := mp.old[k]
			if nw, ok := mp.new[k]; ok && nw == o {
				continue
			}
			if o > senderLevel {
				return c.reject(p.sub(n.plMapsOld, 1), "current %s[%q] %d exceeds the sender's level %d", mp.name, k, o, senderLevel)
			}
		}
	}
	for _, mp := range pairs {
		for _, k := range sortedKeys(mp.new) {
			nw := mp.new[k]
			if o, ok := mp.old[k]; ok && nw == o {
				continue
			}
			if nw > senderLevel {
				return c.reject(p.sub(n.plMapsNew, 1), "new %s[%q] %d exceeds the sender's level %d", mp.name, k, nw, senderLevel)
			}
		}
	}

	// users: other users' entries being changed or removed must be below
	// the sender's level; entries being added or changed must not exceed it.
	oldUsers, err := c.levelMap(old, "users")
	if err != nil {
		return c.reject(p.sub(n.plUsersOld), "current users: %v", err)
	}
	sender := string(e.Sender())
	for _, u := range sortedKeys(oldUsers) {
		o := oldUsers[u]
		if nw, ok := newUsers[u]; (ok && nw == o) || u == sender {
			continue
		}
		if o >= senderLevel {
			return c.reject(p.sub(n.plUsersOld, 1), "%s's current level %d is not below the sender's %d", u, o, senderLevel)
		}
	}
	for _, u := range sortedKeys(newUsers) {
		nw := newUsers[u]
		if o, ok := oldUsers[u]; ok && nw == o {
			continue
		}
		if nw > senderLevel {
			return c.reject(p.sub(n.plUsersNew, 1), "%s's new level %d exceeds the sender's %d", u, nw, senderLevel)
		}
	}
	return nil
}

// validateUsers applies the users rule: content.users, if present, must be
// an object whose keys are valid user IDs and whose values are integers
// (or, before v10, integer strings; before v6, numbers truncated). It
// returns the parsed map.
func (c *checker) validateUsers(content []byte) (map[string]int64, error) {
	val, ok := lookup(content, "users")
	if !ok {
		return nil, nil
	}
	if len(val) == 0 || val[0] != '{' {
		return nil, fmt.Errorf("%s is not an object", clip(val))
	}
	out := map[string]int64{}
	err := canonicaljson.EachMember(val, func(k, raw []byte) error {
		u, err := decodeKey(k)
		if err != nil {
			return err
		}
		if _, err := matrix.ParseUserID(u); err != nil {
			return fmt.Errorf("key %q is not a user ID", u)
		}
		if c.v.EnforceIntPowerLevels && !isJSONInt(raw) {
			return fmt.Errorf("%s: %s is not an integer", u, clip(raw))
		}
		n, present, err := parseLevel(raw, c.v)
		if err != nil {
			return fmt.Errorf("%s: %v", u, err)
		}
		if !present {
			return fmt.Errorf("%s: null is not an integer", u)
		}
		out[u] = n
		return nil
	})
	return out, err
}

// checkFloatRange rejects numbers outside binary64 anywhere a level may
// appear (v1–v5).
func (c *checker) checkFloatRange(content []byte) error {
	check := func(where string, val []byte) error {
		if len(val) == 0 || !(val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) {
			return nil
		}
		if _, _, err := parseLevel(val, c.v); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		return nil
	}
	for _, name := range topLevelNames {
		val, _ := lookup(content, name)
		if err := check(name, val); err != nil {
			return err
		}
	}
	for _, name := range []string{"events", "notifications"} {
		obj, ok := lookup(content, name)
		if !ok || len(obj) == 0 || obj[0] != '{' {
			continue
		}
		if err := canonicaljson.EachMember(obj, func(k, val []byte) error {
			return check(name+"."+string(k), val)
		}); err != nil {
			return err
		}
	}
	return nil
}

// levelMap parses content[name] as a map of levels. Absent and null give an
// empty map; anything else that is not an object of levels is an error.
// Null entries count as absent, like null top-level values.
func (c *checker) levelMap(content []byte, name string) (map[string]int64, error) {
	val, ok := lookup(content, name)
	if !ok || string(val) == "null" {
		return nil, nil
	}
	if val[0] != '{' {
		return nil, fmt.Errorf("%s is not an object", clip(val))
	}
	out := map[string]int64{}
	err := canonicaljson.EachMember(val, func(k, raw []byte) error {
		key, err := decodeKey(k)
		if err != nil {
			return err
		}
		n, present, err := parseLevel(raw, c.v)
		if err != nil {
			return fmt.Errorf("%q: %v", key, err)
		}
		if present {
			out[key] = n
		}
		return nil
	})
	return out, err
}

// checkIntMap applies v10 rule 9.2 to one property: an object whose values
// are integers.
func checkIntMap(val []byte) error {
	if len(val) == 0 || val[0] != '{' {
		return fmt.Errorf("%s is not an object", clip(val))
	}
	return canonicaljson.EachMember(val, func(k, raw []byte) error {
		if !isJSONInt(raw) {
			return fmt.Errorf("%q is %s, not an integer", k, clip(raw))
		}
		return nil
	})
}

// decodeKey decodes an object key as EachMember returns it (without
// quotes).
func decodeKey(k []byte) (string, error) {
	if slices.Contains(k, '\\') {
		quoted := make([]byte, 0, len(k)+2)
		quoted = append(append(append(quoted, '"'), k...), '"')
		return canonicaljson.Unquote(quoted)
	}
	return string(k), nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
