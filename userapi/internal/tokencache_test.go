package internal

import (
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
)

// TestTokenCacheFollowsChanges looks every token up first (so the answer is
// cached) and then checks that each change to devices is seen at once.
func TestTokenCacheFollowsChanges(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, c := newAPI(t, db)
		if _, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "alice", Password: "secret-one"}); err != nil {
			t.Fatal(err)
		}
		const alice = "@alice:example.org"
		newDev := func(id string, refresh bool) api.CreateDeviceResponse {
			t.Helper()
			d, err := u.CreateDevice(ctx, api.CreateDeviceRequest{UserID: alice, DeviceID: id, RefreshToken: refresh})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		owner := func(token string) (api.Device, error) {
			r, err := u.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: token})
			return r.Device, err
		}
		mustOwn := func(token, device, name string) {
			t.Helper()
			d, err := owner(token)
			if err != nil || d.DeviceID != device || d.DisplayName != name {
				t.Fatalf("owner = %+v, %v; want device %s named %q", d, err, device, name)
			}
		}
		mustUnknown := func(token string) {
			t.Helper()
			_, err := owner(token)
			if e, ok := apierr.As(err); !ok || e.Code != apierr.CodeUnknownToken {
				t.Fatalf("token still accepted: %v", err)
			}
		}

		a := newDev("A", false)
		mustOwn(a.AccessToken, "A", "")
		if _, err := u.UpdateDevice(ctx, api.UpdateDeviceRequest{UserID: alice, DeviceID: "A", DisplayName: "phone"}); err != nil {
			t.Fatal(err)
		}
		mustOwn(a.AccessToken, "A", "phone")

		// Logging in again with the same device id replaces its token (the
		// device keeps its name).
		a2 := newDev("A", false)
		mustUnknown(a.AccessToken)
		mustOwn(a2.AccessToken, "A", "phone")

		if _, err := u.DeleteDevices(ctx, api.DeleteDevicesRequest{UserID: alice, DeviceIDs: []string{"A"}}); err != nil {
			t.Fatal(err)
		}
		mustUnknown(a2.AccessToken)

		// A refreshed token replaces the old one; the cached expiry still
		// applies to the new one.
		r := newDev("R", true)
		mustOwn(r.AccessToken, "R", "")
		nr, err := u.RefreshAccessToken(ctx, api.RefreshAccessTokenRequest{RefreshToken: r.RefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		mustUnknown(r.AccessToken)
		mustOwn(nr.AccessToken, "R", "")
		c.advance(time.Duration(nr.ExpiresInMS+1) * time.Millisecond)
		if _, err := owner(nr.AccessToken); err == nil {
			t.Fatal("expired token accepted from the cache")
		} else if e, _ := apierr.As(err); !e.SoftLogout {
			t.Fatalf("expired token error = %v, want soft_logout", err)
		}

		// A password change that logs out other devices, then deactivation.
		k, o := newDev("KEEP", false), newDev("OTHER", false)
		mustOwn(k.AccessToken, "KEEP", "")
		mustOwn(o.AccessToken, "OTHER", "")
		if _, err := u.ChangePassword(ctx, api.ChangePasswordRequest{UserID: alice, NewPassword: "secret-two", LogoutDevices: true, KeepDeviceID: "KEEP"}); err != nil {
			t.Fatal(err)
		}
		mustUnknown(o.AccessToken)
		mustOwn(k.AccessToken, "KEEP", "")
		if _, err := u.DeactivateAccount(ctx, api.DeactivateAccountRequest{UserID: alice}); err != nil {
			t.Fatal(err)
		}
		mustUnknown(k.AccessToken)
	})
}

// TestTokenCacheRace: a lookup that started before an invalidation must not
// store what it read, and entries age out.
func TestTokenCacheRace(t *testing.T) {
	c := newTokenCache()
	var h [32]byte
	now := time.Unix(1_700_000_000, 0)
	gen := c.generation()
	c.invalidate("") // a change commits while the lookup reads the old row
	c.put(gen, h, tokenCacheEntry{device: api.Device{DeviceID: "OLD"}, cachedAt: now})
	if _, ok := c.get(h, now); ok {
		t.Fatal("stale lookup was cached")
	}
	c.put(c.generation(), h, tokenCacheEntry{device: api.Device{DeviceID: "NEW"}, cachedAt: now})
	if e, ok := c.get(h, now); !ok || e.device.DeviceID != "NEW" {
		t.Fatalf("get = %+v, %v", e, ok)
	}
	if _, ok := c.get(h, now.Add(tokenCacheTTL)); ok {
		t.Fatal("entry outlived its lifetime")
	}
	// A change of one user's devices forgets only that user's tokens.
	other := [32]byte{1}
	c.put(c.generation(), h, tokenCacheEntry{device: api.Device{UserID: "@a:x"}, cachedAt: now})
	c.put(c.generation(), other, tokenCacheEntry{device: api.Device{UserID: "@b:x"}, cachedAt: now})
	c.invalidate("@a:x")
	if _, ok := c.get(h, now); ok {
		t.Fatal("@a:x's token survived a change of @a:x's devices")
	}
	if _, ok := c.get(other, now); !ok {
		t.Fatal("@b:x's token was forgotten by a change of @a:x's devices")
	}
}
