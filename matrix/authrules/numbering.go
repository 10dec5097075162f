package authrules

import (
	"strconv"
	"strings"

	"github.com/axon-hs/axon/matrix/event"
)

// rule is a spec rule number such as {4, 3, 5, 2}, printed "4.3.5.2".
type rule []int

func (r rule) String() string {
	var b strings.Builder
	for i, n := range r {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// sub returns the rule r.n without sharing r's backing array.
func (r rule) sub(n ...int) rule {
	out := make(rule, 0, len(r)+len(n))
	out = append(out, r...)
	return append(out, n...)
}

// numbering holds the numbers that one room version's page gives to each
// rule. The rules themselves change little between versions, but adding or
// removing a rule renumbers everything after it: the m.room.aliases rule of
// v1–v5 is rule 4, so membership is rule 5 there and rule 4 from v6; v8
// inserts 4.2 (join_authorised_via_users_server); v12 inserts rule 2 (room
// ID is the create event). Zero means the version has no such rule.
//
// Numbers are those a reader of the rendered page sees. Markdown renumbers
// ordered lists, so where the source of rooms/v12.md skips 3.4 (writing
// "5." for the room_id rule) and repeats "10." for "Otherwise, allow" in the
// power levels rule, the page shows 3.4 and 10.11, and so do we.
type numbering struct {
	create, roomIDIsCreate, authEvents, federate, aliases       int
	member, notJoined, thirdPartyInvite, required, userStateKey int
	powerLevels, redaction, allow                               int

	// Sub-rules of "If type is m.room.create".
	createCreator int // v1–v10: content has no creator; v12: additional_creators; v11: none
	createAllow   int

	// Sub-rules of "Considering the event's auth_events".
	aeNoCreate, aeRoomID int

	// Sub-rules of "If type is m.room.member".
	mAuthorisedVia, mJoin, mInvite, mLeave, mBan, mKnock, mUnknown int
	// Sub-rules of "If membership is join".
	jRestricted, jPublic, jOtherwise int

	// Sub-rules of "If type is m.room.power_levels".
	plTopLevelInts, plMapInts, plUsers, plCreators, plNoPrevious         int
	plAlterations, plMapsOld, plMapsNew, plUsersOld, plUsersNew, plAllow int
}

func numberingFor(v *event.RoomVersion) *numbering {
	n := &numbering{create: 1}
	next := 2
	take := func() int { next++; return next - 1 }
	if v.RoomIDFromCreate {
		n.roomIDIsCreate = take()
	}
	n.authEvents = take()
	n.federate = take()
	if v.SpecialCaseAliasesAuth {
		n.aliases = take()
	}
	n.member = take()
	n.notJoined = take()
	n.thirdPartyInvite = take()
	n.required = take()
	n.userStateKey = take()
	n.powerLevels = take()
	if v.RedactionAuthRule {
		n.redaction = take()
	}
	n.allow = take()

	// 1.1 prev_events, 1.2 room_id, 1.3 room_version, then the creator
	// or additional_creators rule where the version has one.
	n.createAllow = 4
	if v.CreateRequiresCreator || v.PrivilegedCreators {
		n.createCreator, n.createAllow = 4, 5
	}

	// 2.1 duplicates, 2.2 selection, 2.3 rejected, then v1–v11 "no
	// m.room.create" and the room_id rule; v12 has no create rule here.
	if v.CreateInAuthEvents {
		n.aeNoCreate, n.aeRoomID = 4, 5
	} else {
		n.aeRoomID = 4
	}

	sub := 2
	takeSub := func() int { sub++; return sub - 1 }
	if v.Restricted {
		n.mAuthorisedVia = takeSub()
	}
	n.mJoin = takeSub()
	n.mInvite = takeSub()
	n.mLeave = takeSub()
	n.mBan = takeSub()
	if v.Knocking {
		n.mKnock = takeSub()
	}
	n.mUnknown = takeSub()

	// Join: 1 creator, 2 sender is state_key, 3 banned, 4 invite/knock,
	// then restricted (v8+), public, otherwise.
	j := 5
	if v.Restricted {
		n.jRestricted = j
		j++
	}
	n.jPublic, n.jOtherwise = j, j+1

	p := 1
	takeP := func() int { p++; return p - 1 }
	if v.EnforceIntPowerLevels {
		n.plTopLevelInts = takeP()
		n.plMapInts = takeP()
	}
	n.plUsers = takeP()
	if v.PrivilegedCreators {
		n.plCreators = takeP()
	}
	n.plNoPrevious = takeP()
	n.plAlterations = takeP()
	n.plMapsOld = takeP()
	n.plMapsNew = takeP()
	n.plUsersOld = takeP()
	n.plUsersNew = takeP()
	n.plAllow = takeP()
	return n
}

// numberings caches the numbering of each known room version; Check looks
// it up per event.
var numberings = func() map[*event.RoomVersion]*numbering {
	m := map[*event.RoomVersion]*numbering{}
	for _, id := range event.StableVersions() {
		v, _ := event.Version(id)
		m[v] = numberingFor(v)
	}
	return m
}()

func numberingOf(v *event.RoomVersion) *numbering {
	if n, ok := numberings[v]; ok {
		return n
	}
	return numberingFor(v)
}
