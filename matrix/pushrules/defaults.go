package pushrules

import "encoding/json"

// Default returns the server-default ruleset for userID, as the spec
// defines it (push.md, "Predefined Rules", v1.17: the legacy rules that
// looked for mentions in content.body are gone). The rules are the same for
// every room version: the version only changes who may notify the room
// (room v12 creators have infinite power), which the caller accounts for
// in Room.SenderPowerLevel.
func Default(userID string) Ruleset {
	str := func(s string) *string { return &s }
	match := func(key, pattern string) Condition {
		return Condition{Kind: CondEventMatch, Key: key, Pattern: str(pattern)}
	}
	rule := func(id string, actions []Action, conds ...Condition) Rule {
		if conds == nil {
			conds = []Condition{}
		}
		if actions == nil {
			actions = []Action{}
		}
		return Rule{RuleID: id, Default: true, Enabled: true, Conditions: conds, Actions: actions}
	}
	userJSON, _ := json.Marshal(userID)
	soundDefault := Tweak("sound", "default")
	highlight := Tweak("highlight", nil)

	master := rule(".m.rule.master", nil)
	master.Enabled = false
	return Ruleset{
		Override: []Rule{
			master,
			rule(".m.rule.suppress_notices", nil, match("content.msgtype", "m.notice")),
			rule(".m.rule.invite_for_me", []Action{Notify, soundDefault},
				match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userID)),
			rule(".m.rule.member_event", nil, match("type", "m.room.member")),
			rule(".m.rule.is_user_mention", []Action{Notify, soundDefault, highlight},
				Condition{Kind: CondEventPropertyContains, Key: `content.m\.mentions.user_ids`, Value: userJSON}),
			rule(".m.rule.is_room_mention", []Action{Notify, highlight},
				Condition{Kind: CondEventPropertyIs, Key: `content.m\.mentions.room`, Value: json.RawMessage("true")},
				Condition{Kind: CondSenderNotificationPerm, Key: "room"}),
			rule(".m.rule.tombstone", []Action{Notify, highlight}, match("type", "m.room.tombstone"), match("state_key", "")),
			rule(".m.rule.reaction", nil, match("type", "m.reaction")),
			rule(".m.rule.room.server_acl", nil, match("type", "m.room.server_acl"), match("state_key", "")),
			rule(".m.rule.suppress_edits", nil,
				Condition{Kind: CondEventPropertyIs, Key: `content.m\.relates_to.rel_type`, Value: json.RawMessage(`"m.replace"`)}),
		},
		Content: []Rule{},
		Room:    []Rule{},
		Sender:  []Rule{},
		Underride: []Rule{
			rule(".m.rule.call", []Action{Notify, Tweak("sound", "ring")}, match("type", "m.call.invite")),
			rule(".m.rule.encrypted_room_one_to_one", []Action{Notify, soundDefault},
				Condition{Kind: CondRoomMemberCount, Is: "2"}, match("type", "m.room.encrypted")),
			rule(".m.rule.room_one_to_one", []Action{Notify, soundDefault},
				Condition{Kind: CondRoomMemberCount, Is: "2"}, match("type", "m.room.message")),
			rule(".m.rule.message", []Action{Notify}, match("type", "m.room.message")),
			rule(".m.rule.encrypted", []Action{Notify}, match("type", "m.room.encrypted")),
		},
	}
}
