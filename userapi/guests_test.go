package userapi_test

import (
	"maps"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
)

func TestGuestAccounts(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		guest, user, gone := "g_"+transportName(t), "u_"+transportName(t), "gone_"+transportName(t)
		for _, c := range []api.CreateAccountRequest{
			{Localpart: guest, AccountType: api.AccountGuest},
			{Localpart: user, Password: "pw"},
			{Localpart: gone, AccountType: api.AccountGuest},
		} {
			if _, err := a.CreateAccount(ctx, c); err != nil {
				t.Fatalf("CreateAccount(%s): %v", c.Localpart, err)
			}
		}
		id := func(local string) string { return "@" + local + ":" + server }
		if _, err := a.DeactivateAccount(ctx, api.DeactivateAccountRequest{UserID: id(gone)}); err != nil {
			t.Fatal(err)
		}

		types, err := a.QueryAccountTypes(ctx, api.QueryAccountTypesRequest{UserIDs: []string{
			id(guest), id(user), id(guest), id(gone), id("nobody"), "@" + guest + ":elsewhere.org", "garbage"}})
		want := map[string]string{id(guest): api.AccountGuest, id(user): api.AccountUser, id(gone): api.AccountGuest}
		if err != nil || !maps.Equal(types.AccountTypes, want) {
			t.Fatalf("QueryAccountTypes = %v, %v; want %v", types.AccountTypes, err, want)
		}
		if types, err := a.QueryAccountTypes(ctx, api.QueryAccountTypesRequest{}); err != nil || len(types.AccountTypes) != 0 {
			t.Fatalf("QueryAccountTypes(none) = %v, %v; want empty", types.AccountTypes, err)
		}

		dev, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: id(guest)})
		if err != nil {
			t.Fatal(err)
		}
		// The lookup fills the token cache, which the upgrade must clear.
		if tok, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: dev.AccessToken}); err != nil || tok.Device.AccountType != api.AccountGuest {
			t.Fatalf("QueryAccessToken before upgrade = %+v, %v; want a guest", tok, err)
		}
		for _, u := range []string{id(user), id(gone), id("nobody"), "@" + guest + ":elsewhere.org", "garbage"} {
			_, err := a.UpgradeGuest(ctx, api.UpgradeGuestRequest{UserID: u, Password: "pw"})
			wantCode(t, "UpgradeGuest("+u+")", err, apierr.CodeForbidden)
		}
		if _, err := a.UpgradeGuest(ctx, api.UpgradeGuestRequest{UserID: id(guest), Password: "new password"}); err != nil {
			t.Fatalf("UpgradeGuest: %v", err)
		}
		tok, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: dev.AccessToken})
		if err != nil || tok.Device.AccountType != api.AccountUser || tok.Device.UserID != id(guest) {
			t.Fatalf("QueryAccessToken after upgrade = %+v, %v; want the same user, no longer a guest", tok, err)
		}
		if res, err := a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: guest, Password: "new password"}); err != nil || res.UserID != id(guest) {
			t.Fatalf("CheckPassword after upgrade = %+v, %v", res, err)
		}
		if types, err := a.QueryAccountTypes(ctx, api.QueryAccountTypesRequest{UserIDs: []string{id(guest)}}); err != nil || types.AccountTypes[id(guest)] != api.AccountUser {
			t.Fatalf("QueryAccountTypes after upgrade = %v, %v", types.AccountTypes, err)
		}
		_, err = a.UpgradeGuest(ctx, api.UpgradeGuestRequest{UserID: id(guest), Password: "again"})
		wantCode(t, "second UpgradeGuest", err, apierr.CodeForbidden)
		if _, err := a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: guest, Password: "again"}); err == nil {
			t.Fatal("a refused second upgrade changed the password")
		}
	})
}
