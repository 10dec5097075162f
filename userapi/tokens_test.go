package userapi_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
)

// TestRegistrationTokenUses: uses are counted up to the limit, atomically
// under concurrency, and a released use can be taken again.
func TestRegistrationTokenUses(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		tok := "tok_" + transportName(t)
		if q, err := a.QueryRegistrationToken(ctx, api.QueryRegistrationTokenRequest{Token: tok}); err != nil || q.Completed != 0 {
			t.Fatalf("QueryRegistrationToken(unused) = %+v, %v", q, err)
		}
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range 8 {
			wg.Go(func() {
				r, err := a.UseRegistrationToken(ctx, api.UseRegistrationTokenRequest{Token: tok, UsesAllowed: 3})
				if err != nil {
					t.Errorf("UseRegistrationToken = %v", err)
				}
				if r.OK {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 3 {
			t.Fatalf("%d of 8 concurrent uses succeeded with 3 allowed", ok.Load())
		}
		if q, _ := a.QueryRegistrationToken(ctx, api.QueryRegistrationTokenRequest{Token: tok}); q.Completed != 3 {
			t.Fatalf("Completed = %d, want 3", q.Completed)
		}
		if _, err := a.UseRegistrationToken(ctx, api.UseRegistrationTokenRequest{Token: tok, Release: true}); err != nil {
			t.Fatal(err)
		}
		if r, err := a.UseRegistrationToken(ctx, api.UseRegistrationTokenRequest{Token: tok, UsesAllowed: 3}); err != nil || !r.OK {
			t.Fatalf("use after release = %+v, %v", r, err)
		}
		// Unlimited.
		for range 5 {
			if r, err := a.UseRegistrationToken(ctx, api.UseRegistrationTokenRequest{Token: tok + "u"}); err != nil || !r.OK {
				t.Fatalf("unlimited use = %+v, %v", r, err)
			}
		}
		_, err := a.UseRegistrationToken(ctx, api.UseRegistrationTokenRequest{})
		wantCode(t, "UseRegistrationToken(empty)", err, apierr.CodeMissingParam)
	})
}

// TestLoginTokens: a login token logs in once; unknown, foreign and
// deactivated accounts' tokens are M_FORBIDDEN.
func TestLoginTokens(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		local := "lt_" + transportName(t)
		acc, err := a.CreateAccount(ctx, api.CreateAccountRequest{Localpart: local, Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := a.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID})
		if err != nil || tok.Token == "" || tok.ExpiresInMS != 120000 {
			t.Fatalf("CreateLoginToken = %+v, %v", tok, err)
		}
		res, err := a.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: tok.Token})
		if err != nil || res.UserID != acc.UserID {
			t.Fatalf("ConsumeLoginToken = %+v, %v", res, err)
		}
		_, err = a.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: tok.Token})
		wantCode(t, "ConsumeLoginToken(twice)", err, apierr.CodeForbidden)
		_, err = a.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: "axl_nope"})
		wantCode(t, "ConsumeLoginToken(unknown)", err, apierr.CodeForbidden)
		_, err = a.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: "@x:elsewhere"})
		wantCode(t, "CreateLoginToken(remote)", err, apierr.CodeNotFound)

		tok, err = a.CreateLoginToken(ctx, api.CreateLoginTokenRequest{UserID: acc.UserID, LifetimeMS: 60000})
		if err != nil || tok.ExpiresInMS != 60000 {
			t.Fatalf("CreateLoginToken(lifetime) = %+v, %v", tok, err)
		}
		if _, err := a.DeactivateAccount(ctx, api.DeactivateAccountRequest{UserID: acc.UserID}); err != nil {
			t.Fatal(err)
		}
		_, err = a.ConsumeLoginToken(ctx, api.ConsumeLoginTokenRequest{Token: tok.Token})
		wantCode(t, "ConsumeLoginToken(deactivated)", err, apierr.CodeForbidden)
	})
}
