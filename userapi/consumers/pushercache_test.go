package consumers

import (
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/internal"
)

// TestPusherCacheFollowsChanges reads pushers through the cache before and
// after each kind of change: none may be missed.
func TestPusherCacheFollowsChanges(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		st := openStorage(t, db)
		u, err := internal.New(internal.Config{Storage: st, ServerName: "example.org", BcryptCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		c := newPusherCache(st)
		now := time.Unix(1_700_000_000, 0)
		c.now = func() time.Time { return now }
		keys := func(local string) []string {
			t.Helper()
			rows, err := c.get(ctx, local)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				out = append(out, r.PushKey)
			}
			return out
		}
		set := func(user, key string, del bool) {
			t.Helper()
			p := api.Pusher{PushKey: key, Kind: "http", AppID: "app", AppDisplayName: "a", DeviceDisplayName: "d",
				Lang: "en", Data: json.RawMessage(`{"url":"http://127.0.0.1/_matrix/push/v1/notify"}`)}
			if _, err := u.SetPusher(ctx, api.SetPusherRequest{UserID: user, Pusher: p, Delete: del}); err != nil {
				t.Fatal(err)
			}
		}
		if got := keys("alice"); len(got) != 0 {
			t.Fatalf("pushers before any = %v", got)
		}
		set("@alice:example.org", "k1", false)
		if got := keys("alice"); len(got) != 1 || got[0] != "k1" {
			t.Fatalf("after set = %v", got)
		}
		// Setting the same key for bob takes it from alice (append false).
		set("@bob:example.org", "k1", false)
		if got := keys("alice"); len(got) != 0 {
			t.Fatalf("alice after bob took the key = %v", got)
		}
		if got := keys("bob"); len(got) != 1 {
			t.Fatalf("bob = %v", got)
		}
		// The gateway's own removal of a rejected key.
		if err := st.Push.Pushers.DeleteKey(ctx, st.DB, "app", "k1"); err != nil {
			t.Fatal(err)
		}
		if got := keys("bob"); len(got) != 0 {
			t.Fatalf("bob after rejection = %v", got)
		}
		// A change this process cannot see (another replica's) shows after
		// the entry's lifetime.
		set("@carol:example.org", "k2", false)
		_ = keys("carol")
		if _, err := db.ExecContext(ctx, `DELETE FROM userapi_pushers`); err != nil {
			t.Fatal(err)
		}
		if got := keys("carol"); len(got) != 1 {
			t.Fatalf("carol served from cache = %v, want the cached pusher", got)
		}
		now = now.Add(pusherCacheTTL)
		if got := keys("carol"); len(got) != 0 {
			t.Fatalf("carol after the lifetime = %v", got)
		}
	})
}
