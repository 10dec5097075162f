package internal

import (
	"testing"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
)

// TestLoginTokenExpiry: a login token works until its lifetime is up, not
// at that millisecond; issuing a token sweeps expired ones.
func TestLoginTokenExpiry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, c := newAPI(t, db)
		acc, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "lt", Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := u.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID})
		stale, err := u.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID})
		if err != nil {
			t.Fatal(err)
		}
		c.advance(DefaultLoginTokenLifetime - time.Millisecond)
		if r, err := u.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: fresh.Token}); err != nil || r.UserID != acc.UserID {
			t.Fatalf("token just under its lifetime = %+v, %v", r, err)
		}
		c.advance(time.Millisecond)
		_, err = u.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: stale.Token})
		if e, ok := apierr.As(err); !ok || e.Code != apierr.CodeForbidden {
			t.Fatalf("expired token = %v, want M_FORBIDDEN", err)
		}
		// A new token's issue deletes expired rows.
		old, _ := u.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID})
		c.advance(DefaultLoginTokenLifetime)
		if _, err := u.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID}); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM userapi_login_tokens WHERE token_hash = $1`, hashToken(old.Token)).Scan(&n); err != nil || n != 0 {
			t.Fatalf("expired token rows = %d, %v; want swept", n, err)
		}
	})
}
