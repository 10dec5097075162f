package routing

import (
	"slices"
	"testing"

	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

func TestVisibility(t *testing.T) {
	const me = "@me:x"
	msg := func(p streams.Position) storage.Event { return storage.Event{Position: p, Type: "m.room.message"} }
	state := func(p streams.Position, typ, key string) storage.Event {
		return storage.Event{Position: p, Type: typ, StateKey: &key}
	}
	invitedThenJoined := []change{{8, invite}, {10, join}}
	tests := []struct {
		name       string
		history    []change
		membership []change
		event      storage.Event
		want       bool
	}{
		{name: "shared by default, joined later", membership: invitedThenJoined, event: msg(5), want: true},
		{name: "shared but never joined", membership: []change{{8, invite}}, event: msg(5), want: false},
		{name: "joined: before the join", history: []change{{1, joined}}, membership: invitedThenJoined, event: msg(5), want: false},
		{name: "joined: while invited", history: []change{{1, joined}}, membership: invitedThenJoined, event: msg(9), want: false},
		{name: "joined: own join event", history: []change{{1, joined}}, membership: invitedThenJoined, event: state(10, storage.MemberEvent, me), want: true},
		{name: "joined: someone else's join at the same time", history: []change{{1, joined}}, membership: invitedThenJoined, event: state(10, storage.MemberEvent, "@o:x"), want: false},
		{name: "joined: after the join", history: []change{{1, joined}}, membership: invitedThenJoined, event: msg(11), want: true},
		{name: "invited: while invited", history: []change{{1, invited}}, membership: invitedThenJoined, event: msg(9), want: true},
		{name: "invited: before the invite", history: []change{{1, invited}}, membership: invitedThenJoined, event: msg(7), want: false},
		{name: "world readable", history: []change{{1, worldReadable}}, event: msg(5), want: true},
		{name: "setting at the event counts", history: []change{{1, worldReadable}, {6, joined}}, event: msg(7), want: false},
		{name: "joined: after leaving", history: []change{{1, joined}}, membership: []change{{10, join}, {20, leave}}, event: msg(21), want: false},
		{name: "joined: own leave", history: []change{{1, joined}}, membership: []change{{10, join}, {20, leave}}, event: state(20, storage.MemberEvent, me), want: true},
		{name: "visibility change allowed by the new value", history: []change{{1, joined}, {15, worldReadable}}, event: state(15, historyVisibilityEvent, ""), want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &visibility{userID: me, history: tc.history, membership: tc.membership}
			if got := v.visible(tc.event); got != tc.want {
				t.Fatalf("visible(%+v) = %v, want %v", tc.event, got, tc.want)
			}
		})
	}
}

func TestVisibleSuffix(t *testing.T) {
	v := &visibility{userID: "@me:x", history: []change{{1, joined}}, membership: []change{{10, join}, {20, leave}}}
	me := "@me:x"
	evs := []storage.Event{{Position: 5}, {Position: 10, Type: storage.MemberEvent, StateKey: &me}, {Position: 11}, {Position: 12}}
	var got []streams.Position
	for _, e := range v.visibleSuffix(evs) {
		got = append(got, e.Position)
	}
	if !slices.Equal(got, []streams.Position{10, 11, 12}) {
		t.Fatalf("visibleSuffix = %v, want [10 11 12]", got)
	}
	if s := v.visibleSuffix([]storage.Event{{Position: 11}, {Position: 21}}); len(s) != 0 {
		t.Fatalf("visibleSuffix ending hidden = %v, want none", s)
	}
}

func TestHistoryVisibilityOf(t *testing.T) {
	tests := map[string]string{
		`{"content":{"history_visibility":"joined"}}`:  joined,
		`{"content":{"history_visibility":"bogus"}}`:   shared,
		`{"content":{"history_visibility":7}}`:         shared,
		`{"content":{}}`:                               shared,
		``:                                             shared,
		`{"content":{"history_visibility":"invited"}}`: invited,
	}
	for in, want := range tests {
		if got := historyVisibilityOf([]byte(in)); got != want {
			t.Errorf("historyVisibilityOf(%s) = %q, want %q", in, got, want)
		}
	}
}
