package authrules

import (
	"crypto/ed25519"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

// checkMember applies the m.room.member rule (5 in v1–v5 and v12, 4 in
// v6–v11).
func (c *checker) checkMember() error {
	v, n := c.v, c.n
	r := rule{n.member}
	if !c.isState || !c.hasMembership {
		return c.reject(r.sub(1), "m.room.member needs a state_key and content.membership")
	}
	if v.Restricted && c.hasAuthorisedVia {
		// The signature is checked with the other signatures (see Check);
		// a value that is not a user ID has no homeserver to sign.
		if _, err := matrix.ParseUserID(c.authoriserID.String()); c.authoriserID == "" || err != nil {
			return c.reject(r.sub(n.mAuthorisedVia, 1), "join_authorised_via_users_server %s is not a user ID", clip(c.authorisedVia))
		}
	}
	lv := newLevels(v, c.create, c.powerLevels)
	senderM := membershipOf(c.senderMember)
	targetM := membershipOf(c.targetMember)

	membership := c.membership
	if !c.membershipIsString {
		membership = "" // unknown
	}
	switch {
	case membership == "join":
		return c.checkJoin(lv, senderM, targetM)
	case membership == "invite":
		return c.checkInvite(lv, senderM, targetM)
	case membership == "leave":
		return c.checkLeave(lv, senderM, targetM)
	case membership == "ban":
		return c.checkBan(lv, senderM)
	case membership == "knock" && v.Knocking:
		return c.checkKnock(senderM)
	}
	return c.reject(r.sub(n.mUnknown), "unknown membership %s", clip(c.rawMembership()))
}

func (c *checker) rawMembership() []byte {
	val, _ := lookup(c.e.Content(), "membership")
	return val
}

// joinRule returns the room's join rule. NOTSPEC: the spec gives no
// default when the room has no m.room.join_rules event (or the event has no
// join_rule); like every implementation we know of, we use "invite", so an
// invited user can join such a room.
func (c *checker) joinRule() string {
	if c.joinRules == nil {
		return "invite"
	}
	val, ok := lookup(c.joinRules.Content(), "join_rule")
	if !ok {
		return "invite"
	}
	s, _ := jsonString(val)
	return s
}

func (c *checker) checkJoin(lv levels, senderM, targetM string) error {
	e, v, n := c.e, c.v, c.n
	j := rule{n.member, n.mJoin}

	// 1: the creator's first join, right after the create event.
	if prev := e.PrevEventIDs(); len(prev) == 1 && prev[0] == c.create.EventID() {
		if cr := creator(v, c.create); cr != "" && c.stateKey == string(cr) {
			return nil
		}
	}
	if c.stateKey != string(e.Sender()) {
		return c.reject(j.sub(2), "sender %s cannot join for %s", e.Sender(), c.stateKey)
	}
	if senderM == "ban" {
		return c.reject(j.sub(3), "%s is banned", e.Sender())
	}
	jr := c.joinRule()
	switch {
	case jr == "invite" || (v.Knocking && jr == "knock"):
		if targetM == "invite" || targetM == "join" {
			return nil
		}
		// Rule 4 allows or says nothing; the "otherwise" rule rejects.
		return c.reject(j.sub(n.jOtherwise), "join rule is %s and %s is not invited (membership %q)", jr, e.Sender(), targetM)
	case v.Restricted && (jr == "restricted" || (v.KnockRestricted && jr == "knock_restricted")):
		rr := j.sub(n.jRestricted)
		if targetM == "invite" || targetM == "join" {
			return nil
		}
		if c.authoriserID == "" {
			return c.reject(rr.sub(2), "join rule is %s and no join_authorised_via_users_server is given", jr)
		}
		if m := membershipOf(c.authoriser); m != "join" {
			return c.reject(rr.sub(2), "authorising user %s is not joined (membership %q)", c.authoriserID, m)
		}
		al, err := lv.user(c.authoriserID)
		if err != nil {
			return c.reject(rr.sub(2), "power levels: %v", err)
		}
		il, err := lv.named("invite", defaultInvite)
		if err != nil {
			return c.reject(rr.sub(2), "power levels: %v", err)
		}
		if al < il {
			return c.reject(rr.sub(2), "authorising user %s has level %d, below the invite level %d", c.authoriserID, al, il)
		}
		return nil
	case jr == "public":
		return nil
	}
	return c.reject(j.sub(n.jOtherwise), "join rule %q does not allow %s to join", jr, e.Sender())
}

func (c *checker) checkInvite(lv levels, senderM, targetM string) error {
	e, n := c.e, c.n
	i := rule{n.member, n.mInvite}

	if tpiRaw, ok := lookup(e.Content(), "third_party_invite"); ok {
		t := i.sub(1)
		if targetM == "ban" {
			return c.reject(t.sub(1), "%s is banned", c.stateKey)
		}
		signed, ok := lookup(tpiRaw, "signed")
		if !ok || len(signed) == 0 || signed[0] != '{' {
			return c.reject(t.sub(2), "third_party_invite has no signed object")
		}
		mxid, hasMXID := lookup(signed, "mxid")
		_, hasToken := lookup(signed, "token")
		if !hasMXID || !hasToken {
			return c.reject(t.sub(3), "third_party_invite.signed needs mxid and token")
		}
		if s, ok := jsonString(mxid); !ok || s != c.stateKey {
			return c.reject(t.sub(4), "signed mxid %s is not the state_key %q", clip(mxid), c.stateKey)
		}
		if c.tpi == nil {
			return c.reject(t.sub(5), "no m.room.third_party_invite with the signed token")
		}
		if c.tpi.Sender() != e.Sender() {
			return c.reject(t.sub(6), "sender %s did not send the third-party invite (%s did)", e.Sender(), c.tpi.Sender())
		}
		if verifyThirdPartySigned(signed, c.tpi.Content()) {
			return nil
		}
		return c.reject(t.sub(8), "no signature in signed matches a public key of the third-party invite")
	}
	if senderM != "join" {
		return c.reject(i.sub(2), "sender %s is not joined (membership %q)", e.Sender(), senderM)
	}
	if targetM == "join" || targetM == "ban" {
		return c.reject(i.sub(3), "%s cannot be invited: membership is %s", c.stateKey, targetM)
	}
	sl, err := lv.user(e.Sender())
	if err != nil {
		return c.reject(i.sub(4), "power levels: %v", err)
	}
	il, err := lv.named("invite", defaultInvite)
	if err != nil {
		return c.reject(i.sub(4), "power levels: %v", err)
	}
	if sl >= il {
		return nil
	}
	return c.reject(i.sub(5), "sender level %d is below the invite level %d", sl, il)
}

// verifyThirdPartySigned reports whether any signature in signed verifies
// with any public key of the m.room.third_party_invite content: public_key
// and every public_keys[].public_key (unpadded base64, standard or
// URL-safe alphabet).
func verifyThirdPartySigned(signed, tpiContent []byte) bool {
	var keys []ed25519.PublicKey
	addKey := func(val []byte) {
		s, ok := jsonString(val)
		if !ok {
			return
		}
		if b, err := signing.DecodeBase64(s); err == nil && len(b) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(b))
		}
	}
	if val, ok := lookup(tpiContent, "public_key"); ok {
		addKey(val)
	}
	if arr, ok := lookup(tpiContent, "public_keys"); ok && len(arr) > 0 && arr[0] == '[' {
		_ = canonicaljson.EachElement(arr, func(el []byte) error {
			if len(el) > 0 && el[0] == '{' {
				if val, ok := lookup(el, "public_key"); ok {
					addKey(val)
				}
			}
			return nil
		})
	}
	if len(keys) == 0 {
		return false
	}
	sigs, ok := lookup(signed, "signatures")
	if !ok || len(sigs) == 0 || sigs[0] != '{' {
		return false
	}
	message, err := canonicaljson.Filter(signed, func(k string) bool { return k != "signatures" && k != "unsigned" })
	if err != nil {
		return false
	}
	verified := false
	_ = canonicaljson.EachMember(sigs, func(_, byKey []byte) error {
		if len(byKey) == 0 || byKey[0] != '{' {
			return nil
		}
		return canonicaljson.EachMember(byKey, func(_, sigVal []byte) error {
			s, ok := jsonString(sigVal)
			if !ok {
				return nil
			}
			sig, err := signing.DecodeBase64(s)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return nil
			}
			for _, k := range keys {
				if ed25519.Verify(k, message, sig) {
					verified = true
					return errFound
				}
			}
			return nil
		})
	})
	return verified
}

func (c *checker) checkLeave(lv levels, senderM, targetM string) error {
	e, v, n := c.e, c.v, c.n
	l := rule{n.member, n.mLeave}
	if c.stateKey == string(e.Sender()) {
		if senderM == "invite" || senderM == "join" || (v.Knocking && senderM == "knock") {
			return nil
		}
		return c.reject(l.sub(1), "%s cannot leave: membership is %q", e.Sender(), senderM)
	}
	if senderM != "join" {
		return c.reject(l.sub(2), "sender %s is not joined (membership %q)", e.Sender(), senderM)
	}
	sl, err := lv.user(e.Sender())
	if err != nil {
		return c.reject(l.sub(3), "power levels: %v", err)
	}
	if targetM == "ban" {
		bl, err := lv.named("ban", defaultBan)
		if err != nil {
			return c.reject(l.sub(3), "power levels: %v", err)
		}
		if sl < bl {
			return c.reject(l.sub(3), "unbanning needs the ban level %d, sender has %d", bl, sl)
		}
	}
	kl, err := lv.named("kick", defaultKick)
	if err != nil {
		return c.reject(l.sub(4), "power levels: %v", err)
	}
	tl, err := lv.user(matrix.UserID(c.stateKey))
	if err != nil {
		return c.reject(l.sub(4), "power levels: %v", err)
	}
	if sl >= kl && tl < sl {
		return nil
	}
	return c.reject(l.sub(5), "sender level %d needs to reach the kick level %d and exceed the target's %d", sl, kl, tl)
}

func (c *checker) checkBan(lv levels, senderM string) error {
	e, n := c.e, c.n
	b := rule{n.member, n.mBan}
	if senderM != "join" {
		return c.reject(b.sub(1), "sender %s is not joined (membership %q)", e.Sender(), senderM)
	}
	sl, err := lv.user(e.Sender())
	if err != nil {
		return c.reject(b.sub(2), "power levels: %v", err)
	}
	bl, err := lv.named("ban", defaultBan)
	if err != nil {
		return c.reject(b.sub(2), "power levels: %v", err)
	}
	tl, err := lv.user(matrix.UserID(c.stateKey))
	if err != nil {
		return c.reject(b.sub(2), "power levels: %v", err)
	}
	if sl >= bl && tl < sl {
		return nil
	}
	return c.reject(b.sub(3), "sender level %d needs to reach the ban level %d and exceed the target's %d", sl, bl, tl)
}

func (c *checker) checkKnock(senderM string) error {
	e, v, n := c.e, c.v, c.n
	k := rule{n.member, n.mKnock}
	jr := c.joinRule()
	if !(jr == "knock" || (v.KnockRestricted && jr == "knock_restricted")) {
		return c.reject(k.sub(1), "join rule %q does not allow knocking", jr)
	}
	if c.stateKey != string(e.Sender()) {
		return c.reject(k.sub(2), "sender %s cannot knock for %s", e.Sender(), c.stateKey)
	}
	if senderM != "ban" && senderM != "invite" && senderM != "join" {
		return nil
	}
	return c.reject(k.sub(4), "%s cannot knock: membership is %s", e.Sender(), senderM)
}
