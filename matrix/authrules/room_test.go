package authrules

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
)

// testKey is one signing key shared by every test server: the auth rules
// do not check event signatures, so one key is enough.
var testKey = func() signing.Key {
	seed := sha256.Sum256([]byte("authrules test key"))
	k, err := signing.NewKeyFromSeed("ed25519:test", seed[:32])
	if err != nil {
		panic(err)
	}
	return k
}()

// room is a linear test room: every event built has the previous one as its
// prev event and auth events selected from the room's current state.
type room struct {
	t      testing.TB
	v      *event.RoomVersion
	id     matrix.RoomID
	create *event.PDU
	state  map[event.StateKeyTuple]*event.PDU
	last   matrix.EventID
	depth  int64
	ts     int64
}

const (
	alice = matrix.UserID("@alice:a.example") // creator
	bob   = matrix.UserID("@bob:b.example")
	carol = matrix.UserID("@carol:a.example")
	dave  = matrix.UserID("@dave:c.example")
)

func sk(s string) *string { return &s }

// newRoom creates a room as alice with createContent merged into the
// version's required create content, without any other event.
func newRoom(t testing.TB, version string, createContent map[string]any) *room {
	t.Helper()
	v := event.MustVersion(version)
	r := &room{t: t, v: v, state: map[event.StateKeyTuple]*event.PDU{}, ts: 1_700_000_000_000}
	content := map[string]any{"room_version": version}
	if v.CreateRequiresCreator {
		content["creator"] = alice
	}
	for k, val := range createContent {
		if val == nil {
			delete(content, k)
			continue
		}
		content[k] = val
	}
	p := event.Proto{Type: event.TypeCreate, StateKey: sk(""), Sender: alice, Content: content}
	if !v.RoomIDFromCreate {
		p.RoomID = "!room:a.example"
	}
	create := r.buildProto(p)
	if err := Check(create, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	r.id = create.RoomID()
	r.create = create
	r.apply(create)
	return r
}

// standardRoom is newRoom followed by alice's join, power levels with
// alice at 100 plus extra users, and the given join rule.
func standardRoom(t testing.TB, version, joinRule string, users map[matrix.UserID]int) *room {
	t.Helper()
	r := newRoom(t, version, nil)
	r.mustSend(r.member(alice, alice, "join", nil))
	u := map[string]any{}
	if !r.v.PrivilegedCreators {
		u[string(alice)] = 100
	}
	for id, l := range users {
		u[string(id)] = l
	}
	r.mustSend(r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": u}))
	r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": joinRule}))
	return r
}

func (r *room) buildProto(p event.Proto) *event.PDU {
	r.t.Helper()
	r.ts++
	p.OriginServerTS = r.ts
	e, err := p.Build(r.v, p.Sender.Server(), testKey)
	if err != nil {
		r.t.Fatalf("build %s: %v", p.Type, err)
	}
	return e
}

// proto fills in the room, prev event, depth and auth events of p.
func (r *room) build(p event.Proto) *event.PDU {
	r.t.Helper()
	p.RoomID = r.id
	if p.PrevEvents == nil && r.last != "" {
		p.PrevEvents = []matrix.EventID{r.last}
	}
	p.Depth = r.depth + 1
	if p.AuthEvents == nil {
		for _, k := range event.AuthEventsNeeded(p, r.v) {
			if e := r.state[k]; e != nil {
				p.AuthEvents = append(p.AuthEvents, e.EventID())
			}
		}
	}
	return r.buildProto(p)
}

func (r *room) state1(sender matrix.UserID, typ, stateKey string, content any) *event.PDU {
	r.t.Helper()
	return r.build(event.Proto{Type: typ, StateKey: sk(stateKey), Sender: sender, Content: content})
}

func (r *room) message(sender matrix.UserID, typ string, content any) *event.PDU {
	r.t.Helper()
	return r.build(event.Proto{Type: typ, Sender: sender, Content: content})
}

func (r *room) member(sender, target matrix.UserID, membership string, extra map[string]any) *event.PDU {
	r.t.Helper()
	c := map[string]any{"membership": membership}
	for k, v := range extra {
		c[k] = v
	}
	return r.state1(sender, event.TypeMember, string(target), c)
}

// authFor selects e's auth events from the current state, plus the
// create event in room version 12.
func (r *room) authFor(e *event.PDU) []*event.PDU {
	var out []*event.PDU
	if r.v.RoomIDFromCreate {
		out = append(out, r.create)
	}
	for _, k := range event.AuthEventsNeededFor(e) {
		if s := r.state[k]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (r *room) check(e *event.PDU) error { return Check(e, r.authFor(e)) }

func (r *room) apply(e *event.PDU) {
	if sk := e.StateKey(); sk != nil {
		r.state[event.StateKeyTuple{Type: e.Type(), StateKey: *sk}] = e
	}
	r.last = e.EventID()
	r.depth = e.Depth()
}

// send checks e against the current state and applies it if allowed.
func (r *room) send(e *event.PDU) error {
	if err := r.check(e); err != nil {
		return err
	}
	r.apply(e)
	return nil
}

func (r *room) mustSend(e *event.PDU) *event.PDU {
	r.t.Helper()
	if err := r.send(e); err != nil {
		r.t.Fatalf("send %s %s by %s: %v", e.Type(), e.Content(), e.Sender(), err)
	}
	return e
}

// join makes users join the (public) room.
func (r *room) join(users ...matrix.UserID) {
	r.t.Helper()
	for _, u := range users {
		r.mustSend(r.member(u, u, "join", nil))
	}
}

// ruleOf returns the rule of a rejection, "" for nil, and fails the test
// for any other error.
func ruleOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var na *NotAllowedError
	if !errors.As(err, &na) {
		t.Fatalf("error %v is not a *NotAllowedError", err)
	}
	return na.Rule
}

// versions lists every room version ID.
var allVersions = func() []string {
	var out []string
	for i := 1; i <= 12; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}()
