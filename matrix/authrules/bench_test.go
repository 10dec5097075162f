package authrules

import (
	"fmt"
	"testing"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// BenchmarkCheck measures a full auth check of a join to a restricted room
// (the costliest join: it consults the authorising user's membership and
// level) whose power levels list 100 users.
func BenchmarkCheck(b *testing.B) {
	users := map[matrix.UserID]int{}
	for i := range 100 {
		users[matrix.UserID(fmt.Sprintf("@user%d:b.example", i))] = i % 60
	}
	users[carol] = 50
	r := standardRoom(b, "10", "public", users)
	r.join(carol)
	r.mustSend(r.state1(alice, event.TypeJoinRules, "", map[string]any{"join_rule": "restricted"}))
	join := r.member(bob, bob, "join", map[string]any{"join_authorised_via_users_server": carol})
	auth := r.authFor(join)
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(join, auth); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPowerLevels measures a power levels change against a
// previous event listing 100 users.
func BenchmarkCheckPowerLevels(b *testing.B) {
	users := map[matrix.UserID]int{}
	for i := range 100 {
		users[matrix.UserID(fmt.Sprintf("@user%d:b.example", i))] = i % 60
	}
	r := standardRoom(b, "10", "public", users)
	users[bob] = 10
	e := r.state1(alice, event.TypePowerLevels, "", map[string]any{"users": plUsers(r, users)})
	auth := r.authFor(e)
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(e, auth); err != nil {
			b.Fatal(err)
		}
	}
}
