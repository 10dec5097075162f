package consumers_test

import (
	"slices"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/storage"
)

// TestRelationsAndSearchIndexed: the consumer records relations and text
// once under redelivery, and an applied redaction removes both.
func TestRelationsAndSearchIndexed(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		root := rsapi.OutputEvent{EventID: "$root", Event: event("m.room.message", "@a:x", nil, `{"body":"kumquat root"}`)}
		reply := rsapi.OutputEvent{EventID: "$reply", Event: event("m.room.message", "@b:x", nil,
			`{"body":"kumquat reply","m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`)}
		for range 2 {
			f.mustHandle(root)
			f.mustHandle(reply)
		}
		children := func() []string {
			evs, err := f.db.Relations.Children(ctx, f.db.DB.Reader(), storage.ChildrenQuery{RoomID: room, Parent: "$root", Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range evs {
				out = append(out, e.EventID)
			}
			return out
		}
		found := func() []string { return f.search("kumquat") }
		if got := children(); !slices.Equal(got, []string{"$reply"}) {
			t.Fatalf("children after redelivery = %v, want [$reply]", got)
		}
		if got := found(); !slices.Equal(got, []string{"$reply", "$root"}) {
			t.Fatalf("search after redelivery = %v", got)
		}
		redacted := event("m.room.message", "@b:x", nil, `{}`)
		f.mustHandle(rsapi.OutputEvent{EventID: "$red", Event: event("m.room.redaction", "@b:x", nil, `{"redacts":"$reply"}`),
			RedactedEventID: "$reply", RedactedEvent: redacted})
		if got := children(); len(got) != 0 {
			t.Fatalf("children after redaction = %v, want none", got)
		}
		if got := found(); !slices.Equal(got, []string{"$root"}) {
			t.Fatalf("search after redaction = %v, want [$root]", got)
		}
	})
}
