package authrules

import (
	"errors"
	"fmt"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/event"
)

// NotAllowedError is the rejection of an event by the authorisation rules.
type NotAllowedError struct {
	// Rule is the spec rule number as the room version's page numbers it,
	// e.g. "4.3.1" (room version 10) for the first join of the creator.
	Rule string
	// Reason says what failed, for logs and error responses.
	Reason string
}

func (e *NotAllowedError) Error() string {
	return "auth rule " + e.Rule + ": " + e.Reason
}

// ErrMissingAuthEvent is returned (wrapped) by CheckAuthEvents when an
// event listed in auth_events was not supplied. It is not a rejection: the
// caller should fetch the event and try again, or reject.
var ErrMissingAuthEvent = errors.New("auth event not supplied")

// Check reports whether e is allowed given authEvents: the state events the
// rules consult (create, power levels, join rules, the sender's and target's
// membership, the third-party invite, the authorising user's membership),
// selected from the state before e, from the current state, or from e's
// auth_events (event.AuthEventsNeededFor lists them). For room version 12
// the create event is supplied in authEvents too even though it is not
// listed in auth_events. Other events in authEvents are ignored, except
// that every one must belong to e's room.
//
// Check applies every rule except the two about the auth_events list
// itself (rule 2.2 "entries whose type and state_key don't match the auth
// events selection" and 2.3 "entries which were themselves rejected", 3.x
// in room version 12), which only make sense for the events e lists:
// CheckAuthEvents applies those. The rejection state of the supplied
// events (v12 rule 2: "an accepted (not rejected) m.room.create event") is
// the caller's to ensure.
//
// The signature half of rule 4.2 (v8+, "not validly signed by the
// homeserver of the user ID denoted by join_authorised_via_users_server")
// needs server keys, so it is left to event.VerifySignatures, whose
// RequiredSigners include that server; Check verifies that the key holds a
// user ID.
//
// It returns nil or a *NotAllowedError, and never panics.
func Check(e *event.PDU, authEvents []*event.PDU) error {
	return check(e, authEvents, nil)
}

// CheckAuthEvents checks e against the events its auth_events field lists
// (step 4 of "Checks performed on receipt of a PDU"). authEvents must hold
// those events, in any order; in room version 12 it must also hold the
// create event. rejected reports whether one of them was itself rejected
// (nil means none was). It applies all the rules including the ones about
// the auth_events list. A listed event missing from authEvents is an error
// wrapping ErrMissingAuthEvent; otherwise the result is nil or a
// *NotAllowedError.
func CheckAuthEvents(e *event.PDU, authEvents []*event.PDU, rejected func(matrix.EventID) bool) error {
	if e == nil {
		return &NotAllowedError{Rule: "1", Reason: "no event"}
	}
	if rejected == nil {
		rejected = func(matrix.EventID) bool { return false }
	}
	return check(e, authEvents, &listed{rejected: rejected})
}

// listed carries what the auth_events-list rules need.
type listed struct {
	rejected func(matrix.EventID) bool
}

// checker holds one authorisation: the event, its version's numbering and
// the auth events selected for it.
type checker struct {
	e *event.PDU
	v *event.RoomVersion
	n *numbering

	// The event's own fields the rules consult.
	stateKey                          string // "" for a non-state event; see isState
	isState                           bool
	membership                        string // content.membership of an m.room.member event
	hasMembership, membershipIsString bool
	authorisedVia                     []byte // raw content.join_authorised_via_users_server
	hasAuthorisedVia                  bool
	tpiToken                          string // content.third_party_invite.signed.token
	hasTPIToken                       bool

	// Selected auth events; nil when absent.
	create, powerLevels, joinRules, senderMember, targetMember, tpi, authoriser *event.PDU
	authoriserID                                                                matrix.UserID
}

func (c *checker) reject(r rule, format string, args ...any) error {
	return &NotAllowedError{Rule: r.String(), Reason: fmt.Sprintf(format, args...)}
}

func check(e *event.PDU, authEvents []*event.PDU, list *listed) error {
	if e == nil {
		return &NotAllowedError{Rule: "1", Reason: "no event"}
	}
	v := e.Version()
	if v == nil {
		return &NotAllowedError{Rule: "1", Reason: "event has no room version"}
	}
	c := &checker{e: e, v: v, n: numberingOf(v)}
	c.readEvent()

	// Rule 1: m.room.create.
	if e.Type() == event.TypeCreate {
		return c.checkCreate()
	}

	// v12 rule 2 and rules 2.x (3.x in v12): the auth events.
	if err := c.selectAuthEvents(authEvents, list); err != nil {
		return err
	}

	// Rule 3 (4 in v12): m.federate.
	if val, ok := lookup(c.create.Content(), "m.federate"); ok && string(val) == "false" {
		if e.Sender().Server() != c.create.Sender().Server() {
			return c.reject(rule{c.n.federate}, "room %s is not federated and %s is not on %s",
				e.RoomID(), e.Sender(), c.create.Sender().Server())
		}
	}

	// Rule 4 (v1–v5): m.room.aliases.
	if v.SpecialCaseAliasesAuth && e.Type() == event.TypeAliases {
		r := rule{c.n.aliases}
		if !c.isState {
			return c.reject(r.sub(1), "m.room.aliases event has no state_key")
		}
		if string(e.Sender().Server()) != c.stateKey {
			return c.reject(r.sub(2), "sender %s is not on server %q", e.Sender(), c.stateKey)
		}
		return nil
	}

	if e.Type() == event.TypeMember {
		return c.checkMember()
	}

	lv := newLevels(v, c.create, c.powerLevels)

	// The sender must be joined.
	if m := membershipOf(c.senderMember); m != "join" {
		return c.reject(rule{c.n.notJoined}, "sender %s is not joined (membership %q)", e.Sender(), m)
	}

	senderLevel, err := lv.user(e.Sender())
	if err != nil {
		// The first rule that consults the sender's level rejects.
		r := rule{c.n.required}
		if e.Type() == event.TypeThirdPartyInvite {
			r = rule{c.n.thirdPartyInvite, 1}
		}
		return c.reject(r, "power levels: %v", err)
	}

	if e.Type() == event.TypeThirdPartyInvite {
		r := rule{c.n.thirdPartyInvite, 1}
		inviteLevel, err := lv.named("invite", defaultInvite)
		if err != nil {
			return c.reject(r, "power levels: %v", err)
		}
		if senderLevel >= inviteLevel {
			return nil
		}
		return c.reject(r, "sender level %d is below the invite level %d", senderLevel, inviteLevel)
	}

	required, err := lv.event(e.Type(), c.isState)
	if err != nil {
		return c.reject(rule{c.n.required}, "power levels: %v", err)
	}
	if required > senderLevel {
		return c.reject(rule{c.n.required}, "sending %s needs level %d, sender %s has %d", e.Type(), required, e.Sender(), senderLevel)
	}

	if c.isState && len(c.stateKey) > 0 && c.stateKey[0] == '@' && c.stateKey != string(e.Sender()) {
		return c.reject(rule{c.n.userStateKey}, "state_key %q starts with @ and is not the sender", c.stateKey)
	}

	if e.Type() == event.TypePowerLevels {
		return c.checkPowerLevels(lv, senderLevel)
	}

	// Rule 11 (v1–v2): m.room.redaction.
	if v.RedactionAuthRule && e.Type() == event.TypeRedaction {
		r := rule{c.n.redaction}
		redactLevel, err := lv.named("redact", defaultRedact)
		if err != nil {
			return c.reject(r.sub(1), "power levels: %v", err)
		}
		if senderLevel >= redactLevel {
			return nil
		}
		own, ok1 := e.EventID().Server()
		target, ok2 := e.Redacts().Server()
		if ok1 && ok2 && own == target {
			return nil
		}
		return c.reject(r.sub(3), "sender level %d is below the redact level %d and %s is not from %s",
			senderLevel, redactLevel, e.Redacts(), own)
	}
	return nil
}

// readEvent extracts the fields of e that the rules and the auth event
// selection use. Malformed values are recorded as absent or non-string and
// rejected by the rule that reads them.
func (c *checker) readEvent() {
	if sk := c.e.StateKey(); sk != nil {
		c.isState, c.stateKey = true, *sk
	}
	if c.e.Type() != event.TypeMember {
		return
	}
	content := c.e.Content()
	if val, ok := lookup(content, "membership"); ok {
		c.hasMembership = true
		c.membership, c.membershipIsString = jsonString(val)
	}
	if val, ok := lookup(content, "join_authorised_via_users_server"); ok {
		c.authorisedVia, c.hasAuthorisedVia = val, true
		if s, ok := jsonString(val); ok {
			c.authoriserID = matrix.UserID(s)
		}
	}
	if tpi, ok := lookup(content, "third_party_invite"); ok {
		if signed, ok := lookup(tpi, "signed"); ok {
			if tok, ok := lookup(signed, "token"); ok {
				c.tpiToken, c.hasTPIToken = jsonString(tok)
			}
		}
	}
}

// checkCreate applies rule 1.
func (c *checker) checkCreate() error {
	e, v := c.e, c.v
	if len(e.PrevEventIDs()) > 0 {
		return c.reject(rule{1, 1}, "m.room.create has prev_events")
	}
	if v.RoomIDFromCreate {
		if _, ok := lookup(e.JSON(), "room_id"); ok {
			return c.reject(rule{1, 2}, "m.room.create has a room_id")
		}
	} else {
		rs, ok := e.RoomID().Server()
		if !ok || rs != e.Sender().Server() {
			return c.reject(rule{1, 2}, "room ID %s is not on the sender's server %s", e.RoomID(), e.Sender().Server())
		}
	}
	if val, ok := lookup(e.Content(), "room_version"); ok {
		s, isStr := jsonString(val)
		if _, known := event.Version(s); !isStr || !known {
			return c.reject(rule{1, 3}, "unknown room_version %s", clip(val))
		}
	}
	if v.CreateRequiresCreator {
		if _, ok := lookup(e.Content(), "creator"); !ok {
			return c.reject(rule{1, c.n.createCreator}, "m.room.create has no creator")
		}
	}
	if v.PrivilegedCreators {
		if val, ok := lookup(e.Content(), "additional_creators"); ok {
			if err := checkUserIDArray(val); err != nil {
				return c.reject(rule{1, c.n.createCreator}, "additional_creators: %v", err)
			}
		}
	}
	return nil
}

func checkUserIDArray(val []byte) error {
	if len(val) == 0 || val[0] != '[' {
		return errors.New("not an array")
	}
	i := 0
	return canonicaljson.EachElement(val, func(el []byte) error {
		i++
		s, ok := jsonString(el)
		if !ok {
			return fmt.Errorf("entry %d is not a string", i)
		}
		if _, err := matrix.ParseUserID(s); err != nil {
			return fmt.Errorf("entry %d: %v", i, err)
		}
		return nil
	})
}

type stateKeyTuple = event.StateKeyTuple

// selectAuthEvents picks from authEvents the events the rules consult and
// applies v12 rule 2 and the auth events rules (2.x, or 3.x in v12). With
// list set, authEvents are the events e lists in auth_events, and the rules
// about that list apply in full.
func (c *checker) selectAuthEvents(authEvents []*event.PDU, list *listed) error {
	e, v, n := c.e, c.v, c.n
	ae := rule{n.authEvents}

	var needed []stateKeyTuple
	if list != nil {
		needed = event.AuthEventsNeededFor(e)
	}
	// The create event of a v12 room is identified by the room ID, not
	// listed; find it first so the listed-events checks can skip it.
	var wantCreate matrix.EventID
	if v.RoomIDFromCreate {
		wantCreate = matrix.EventID("$" + string(e.RoomID())[1:])
	}

	var seen []stateKeyTuple
	var seenIDs []matrix.EventID
	use := func(ev *event.PDU) error {
		if ev.RoomID() != e.RoomID() {
			return c.reject(ae.sub(n.aeRoomID), "auth event %s is in room %s, not %s", ev.EventID(), ev.RoomID(), e.RoomID())
		}
		sk := ev.StateKey()
		if sk == nil {
			if list != nil {
				return c.reject(ae.sub(2), "auth event %s is not a state event", ev.EventID())
			}
			return nil
		}
		key := stateKeyTuple{Type: ev.Type(), StateKey: *sk}
		for i, s := range seen {
			if s == key {
				if seenIDs[i] == ev.EventID() && list == nil {
					return nil // the same event supplied twice is harmless
				}
				return c.reject(ae.sub(1), "auth events %s and %s are both (%s, %q)", seenIDs[i], ev.EventID(), key.Type, key.StateKey)
			}
		}
		seen = append(seen, key)
		seenIDs = append(seenIDs, ev.EventID())
		if list != nil {
			ok := false
			for _, k := range needed {
				if k == key {
					ok = true
					break
				}
			}
			if !ok {
				return c.reject(ae.sub(2), "auth event %s (%s, %q) is not one the auth events selection picks", ev.EventID(), key.Type, key.StateKey)
			}
			if list.rejected(ev.EventID()) {
				return c.reject(ae.sub(3), "auth event %s was rejected", ev.EventID())
			}
		}
		c.assign(ev, key)
		return nil
	}

	// v12 rule 2 comes before the auth events rules: find the create
	// event named by the room ID among the supplied events.
	if v.RoomIDFromCreate {
		for _, ev := range authEvents {
			if ev != nil && ev.EventID() == wantCreate && ev.Type() == event.TypeCreate {
				c.create = ev
				break
			}
		}
		if c.create == nil {
			return c.reject(rule{n.roomIDIsCreate}, "room ID %s does not name a supplied m.room.create event", e.RoomID())
		}
	}

	if list != nil {
		byID := make(map[matrix.EventID]*event.PDU, len(authEvents))
		for _, ev := range authEvents {
			if ev != nil {
				byID[ev.EventID()] = ev
			}
		}
		for _, id := range e.AuthEventIDs() {
			ev := byID[id]
			if ev == nil {
				return fmt.Errorf("check %s: %w: %s", e.EventID(), ErrMissingAuthEvent, id)
			}
			if err := use(ev); err != nil {
				return err
			}
		}
	} else {
		for _, ev := range authEvents {
			if ev == nil || (v.RoomIDFromCreate && ev.Type() == event.TypeCreate) {
				continue
			}
			if err := use(ev); err != nil {
				return err
			}
		}
	}

	if c.create == nil {
		return c.reject(ae.sub(n.aeNoCreate), "no m.room.create event among the auth events")
	}
	return nil
}

// assign stores ev in the slot its key fills for this event, if any.
func (c *checker) assign(ev *event.PDU, key stateKeyTuple) {
	switch key.Type {
	case event.TypeCreate:
		if key.StateKey == "" && !c.v.RoomIDFromCreate {
			c.create = ev
		}
	case event.TypePowerLevels:
		if key.StateKey == "" {
			c.powerLevels = ev
		}
	case event.TypeJoinRules:
		if key.StateKey == "" {
			c.joinRules = ev
		}
	case event.TypeThirdPartyInvite:
		if c.hasTPIToken && key.StateKey == c.tpiToken {
			c.tpi = ev
		}
	case event.TypeMember:
		if key.StateKey == string(c.e.Sender()) {
			c.senderMember = ev
		}
		if c.isState && key.StateKey == c.stateKey {
			c.targetMember = ev
		}
		if c.authoriserID != "" && key.StateKey == string(c.authoriserID) {
			c.authoriser = ev
		}
	}
}

// membershipOf returns the membership an m.room.member event in the state
// gives its user, "leave" when there is none (the m.room.member schema:
// "If not present, the user's previous membership must be assumed as
// leave").
func membershipOf(member *event.PDU) string {
	if member == nil {
		return "leave"
	}
	return member.Membership()
}
