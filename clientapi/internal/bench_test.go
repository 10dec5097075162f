package internal

import (
	"fmt"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
)

// BenchmarkSendMessage is a client's send below the HTTP layer, in a room
// of 20 members: the builder asks the roomserver for the latest events and
// auth state, builds and signs the message, and the roomserver checks,
// stores and announces it through the log.
func BenchmarkSendMessage(b *testing.B) {
	storagetest.EachBench(b, func(b *testing.B, db *sqlutil.DB) {
		ctx := b.Context()
		const origin = matrix.ServerName("bench.test")
		builder, comp, chain, alice := newRoomserverBuilder(b, db, origin)
		var steps []event.Proto
		for i := range 19 {
			u := fmt.Sprintf("@u%d:%s", i, origin)
			steps = append(steps, event.Proto{Type: event.TypeMember, StateKey: new(u), Sender: matrix.UserID(u),
				Content: map[string]any{"membership": "join"}})
		}
		for _, p := range steps {
			if _, err := chain.Add(p); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := comp.API().InputRoomEvents(ctx, chain.Input()); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			e, v, err := builder.Build(ctx, event.Proto{Type: "m.room.message", Sender: alice, RoomID: chain.RoomID,
				Content: map[string]any{"msgtype": "m.text", "body": fmt.Sprint("message ", i)}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := comp.API().InputRoomEvents(ctx, SingleInput(e, v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
