package authrules

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// fuzzTypes are the event types whose content the auth rules read.
var fuzzTypes = []struct {
	typ      string
	stateKey *string
}{
	{event.TypeMember, sk(string(bob))},
	{event.TypeMember, sk(string(alice))},
	{event.TypePowerLevels, sk("")},
	{event.TypeJoinRules, sk("")},
	{event.TypeThirdPartyInvite, sk("tok")},
	{event.TypeCreate, sk("")},
	{event.TypeAliases, sk("b.example")},
	{event.TypeRedaction, nil},
	{"m.room.message", nil},
}

// FuzzCheck builds events with arbitrary content and checks them, then
// puts each into the state and checks follow-up events that consult it:
// nothing may panic, and every error must be a *NotAllowedError.
func FuzzCheck(f *testing.F) {
	seeds := []string{
		`{"membership":"join"}`,
		`{"membership":"invite","third_party_invite":{"signed":{"mxid":"@bob:b.example","token":"tok","signatures":{"x":{"ed25519:0":"AAAA"}}}}}`,
		`{"membership":"join","join_authorised_via_users_server":"@carol:a.example"}`,
		`{"membership":"ban"}`,
		`{"membership":"knock"}`,
		`{"users":{"@bob:b.example":"50"},"ban":"x","events":{"m.room.name":null},"notifications":[1]}`,
		`{"users":{"@bob:b.example":1.5e300},"kick":-9223372036854775808}`,
		`{"users":"nope","users_default":{"a":1}}`,
		`{"join_rule":"restricted","allow":[{}]}`,
		`{"public_key":"AAAA","public_keys":[{"public_key":5},"x"]}`,
		`{"room_version":7,"creator":false,"additional_creators":[1,"@x"],"m.federate":false}`,
	}
	for i, s := range seeds {
		for v := 0; v < 12; v++ {
			f.Add(uint8(v), uint8(i%len(fuzzTypes)), []byte(s))
		}
	}
	rooms := map[string]*room{}
	for _, id := range allVersions {
		r := standardRoom(f, id, "public", map[matrix.UserID]int{carol: 50})
		r.join(carol)
		r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "knock_restricted"}))
		rooms[id] = r
	}
	f.Fuzz(func(t *testing.T, ver, typ uint8, content []byte) {
		r := rooms[allVersions[int(ver)%len(allVersions)]]
		ft := fuzzTypes[int(typ)%len(fuzzTypes)]
		sender := bob
		if typ&0x80 != 0 {
			sender = carol
		}
		p := event.Proto{
			Type: ft.typ, StateKey: ft.stateKey, Sender: sender, RoomID: r.id,
			Content: json.RawMessage(content), PrevEvents: []matrix.EventID{r.last},
			Depth: r.depth + 1, OriginServerTS: 1,
		}
		if ft.typ == event.TypeCreate {
			p.PrevEvents = nil
			if r.v.RoomIDFromCreate {
				p.RoomID = ""
			}
		}
		if ft.typ == event.TypeRedaction {
			p.Redacts = r.last
		}
		for _, k := range event.AuthEventsNeeded(p, r.v) {
			if s := r.state[k]; s != nil {
				p.AuthEvents = append(p.AuthEvents, s.EventID())
			}
		}
		e, err := p.Build(r.v, sender.Server(), testKey)
		if err != nil {
			return // content the event format does not allow
		}
		mustRule(t, Check(e, r.authFor(e)))
		mustRule(t, CheckAuthEvents(e, append(r.authFor(e), e), nil))
		if !e.IsState() {
			return
		}
		// Consult e as room state.
		state := maps.Clone(r.state)
		state[event.StateKeyTuple{Type: e.Type(), StateKey: *e.StateKey()}] = e
		r2 := *r
		r2.state = state
		if e.Type() == event.TypeCreate {
			r2.create = e
		}
		for _, next := range []event.Proto{
			{Type: "m.room.message", Sender: carol},
			{Type: "m.room.name", StateKey: sk(""), Sender: carol},
			{Type: event.TypeMember, StateKey: sk(string(bob)), Sender: carol, Content: map[string]any{"membership": "ban"}},
			{Type: event.TypeMember, StateKey: sk(string(dave)), Sender: dave, Content: map[string]any{"membership": "join", "join_authorised_via_users_server": carol}},
			{Type: event.TypeMember, StateKey: sk(string(bob)), Sender: carol, Content: map[string]any{"membership": "invite"}},
			{Type: event.TypePowerLevels, StateKey: sk(""), Sender: carol, Content: map[string]any{"users": map[string]any{string(carol): 50}}},
		} {
			next.RoomID, next.PrevEvents, next.Depth, next.OriginServerTS = r.id, []matrix.EventID{r.last}, r.depth+1, 2
			ne, err := next.Build(r.v, next.Sender.Server(), testKey)
			if err != nil {
				t.Fatalf("build follow-up: %v", err)
			}
			mustRule(t, r2.check(ne))
			_ = PowerLevel(carol, r2.create, state[event.StateKeyTuple{Type: event.TypePowerLevels}])
		}
	})
}

func mustRule(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	_ = ruleOf(t, err)
}
