package internal

import (
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
)

// TestAccessTokenExpiry checks that a refreshable access token stops working
// after its lifetime with soft_logout, and that refreshing revives the device.
func TestAccessTokenExpiry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, c := newAPI(t, db)
		acc, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "exp", Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := u.CreateDevice(ctx, api.CreateDeviceRequest{UserID: acc.UserID, RefreshToken: true})
		if err != nil || d.ExpiresInMS != DefaultAccessTokenLifetime.Milliseconds() {
			t.Fatalf("CreateDevice = %+v, %v", d, err)
		}
		c.advance(DefaultAccessTokenLifetime - 1)
		if _, err := u.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: d.AccessToken}); err != nil {
			t.Fatalf("token just before expiry: %v", err)
		}
		c.advance(1)
		_, err = u.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: d.AccessToken})
		e, ok := apierr.As(err)
		if !ok || e.Code != apierr.CodeUnknownToken || !e.SoftLogout {
			t.Fatalf("expired token: %v, want M_UNKNOWN_TOKEN with soft_logout", err)
		}
		r, err := u.RefreshAccessToken(ctx, api.RefreshAccessTokenRequest{RefreshToken: d.RefreshToken})
		if err != nil {
			t.Fatalf("refresh after expiry: %v", err)
		}
		if q, err := u.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: r.AccessToken}); err != nil || q.Device.DeviceID != d.DeviceID {
			t.Fatalf("refreshed token = %+v, %v", q, err)
		}
	})
}
