package internal

import (
	"context"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// authEventCache keeps parsed state events by event number for the auth
// checks of input: every message is checked against the same few events
// (create, power levels, the sender's membership), which were read and
// parsed again for each one.
//
// A stored event changes only when a redaction rewrites its JSON. An input
// call holding a redaction reads past the cache and empties it afterwards
// (whatever its outcome); other calls cannot see that room's events change
// meanwhile, since a room's input is handled one call at a time. Entries
// come only from transactions that committed (headMove.authEvents), so a
// number SQLite hands out again after a rollback is never cached.
type authEventCache struct {
	c *storage.BoundedCache[int64, *event.PDU] // by event number, costing its JSON
}

const maxAuthCacheBytes = 16 << 20

func newAuthEventCache() *authEventCache {
	return &authEventCache{c: storage.NewBoundedCache[int64](maxAuthCacheBytes, func(e *event.PDU) int { return len(e.JSON()) })}
}

// get returns the cached events of nids and the numbers it lacks.
func (a *authEventCache) get(nids []int64) (map[int64]*event.PDU, []int64) {
	found := make(map[int64]*event.PDU, len(nids))
	var missing []int64
	for _, n := range nids {
		if e, ok := a.c.Get(n); ok {
			found[n] = e
		} else {
			missing = append(missing, n)
		}
	}
	return found, missing
}

// put records committed events.
func (a *authEventCache) put(evs map[int64]*event.PDU) {
	for n, e := range evs {
		a.c.Put(n, e)
	}
}

func (a *authEventCache) clear() { a.c.Clear() }

// authCacheOff marks the context of an input call that may redact: its
// auth events are read from the database.
type authCacheOff struct{}

func authCacheUsable(ctx context.Context) bool { return ctx.Value(authCacheOff{}) == nil }

// mayRedact reports whether any event of the messages could be a
// redaction: one that says so, or whose type cannot be read here.
func mayRedact(msgs []eventlog.Msg[api.InputMessage]) bool {
	for _, m := range msgs {
		for _, e := range m.Value.Request.Events {
			if typ, ok := inputType(e); !ok || typ == event.TypeRedaction {
				return true
			}
		}
	}
	return false
}

// cachesAuth reports whether an accepted state event of this type may be
// an auth event of later ones.
func cachesAuth(typ string) bool {
	switch typ {
	case event.TypeCreate, event.TypePowerLevels, event.TypeJoinRules, event.TypeMember, event.TypeThirdPartyInvite:
		return true
	}
	return false
}
