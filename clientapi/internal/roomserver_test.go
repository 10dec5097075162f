package internal

import (
	"log/slog"
	"testing"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/matrix/signing"
	"github.com/axon-hs/axon/roomserver"
)

// newRoomserverBuilder starts a real roomserver on db with an embedded log
// and returns it with a Builder for origin that asks it, and the events of
// a public room alice created (create, member, power levels, join rules),
// not yet submitted.
func newRoomserverBuilder(tb testing.TB, db *sqlutil.DB, origin matrix.ServerName) (*Builder, *roomserver.Component, *Chain, matrix.UserID) {
	tb.Helper()
	ctx := tb.Context()
	log := slog.New(slog.DiscardHandler)
	l, err := eventlog.OpenJetStream(ctx, eventlog.JetStreamConfig{DataDir: tb.TempDir()}, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	comp, err := roomserver.New(ctx, roomserver.Deps{Log: log, DB: db, EventLog: l})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(comp.Close)
	key, err := signing.GenerateKey(signing.NewKeyID())
	if err != nil {
		tb.Fatal(err)
	}
	b := &Builder{ServerName: origin, Key: key, RS: comp.API()}
	v, _ := event.Version(event.DefaultRoomVersion)
	alice := matrix.UserID("@alice:" + origin)
	chain := b.NewChain(v, "")
	for _, p := range []event.Proto{
		{Type: event.TypeCreate, StateKey: new(""), Sender: alice, Content: map[string]any{"room_version": v.ID}},
		{Type: event.TypeMember, StateKey: new(string(alice)), Sender: alice, Content: map[string]any{"membership": "join"}},
		{Type: event.TypePowerLevels, StateKey: new(""), Sender: alice, Content: map[string]any{}},
		{Type: event.TypeJoinRules, StateKey: new(""), Sender: alice, Content: map[string]any{"join_rule": "public"}},
	} {
		if _, err := chain.Add(p); err != nil {
			tb.Fatal(err)
		}
	}
	return b, comp, chain, alice
}
