package internal

import (
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// BenchmarkCheckPassword compares a wrong password for an existing account
// with any password for a missing one, at the default cost: the two must
// cost about the same (read the ns/op side by side; no test asserts timing).
func BenchmarkCheckPassword(b *testing.B) {
	st, err := storage.Open(b.Context(), storagetest.SQLite(b))
	if err != nil {
		b.Fatal(err)
	}
	u, err := New(Config{Storage: st, ServerName: "example.org", BcryptCost: bcrypt.DefaultCost})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := u.CreateAccount(b.Context(), api.CreateAccountRequest{Localpart: "alice", Password: "right"}); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, localpart string }{{"wrong_password", "alice"}, {"missing_account", "nobody"}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := u.CheckPassword(b.Context(), api.CheckPasswordRequest{Localpart: bc.localpart, Password: "wrong"}); err == nil {
					b.Fatal("CheckPassword succeeded")
				}
			}
		})
	}
}

// BenchmarkQueryAccessToken is the per-request authentication cost on SQLite.
func BenchmarkQueryAccessToken(b *testing.B) {
	st, err := storage.Open(b.Context(), storagetest.SQLite(b))
	if err != nil {
		b.Fatal(err)
	}
	u, err := New(Config{Storage: st, ServerName: "example.org", BcryptCost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := u.CreateAccount(b.Context(), api.CreateAccountRequest{Localpart: "alice"}); err != nil {
		b.Fatal(err)
	}
	var token string
	for range 1000 { // a table with more than one row
		d, err := u.CreateDevice(b.Context(), api.CreateDeviceRequest{UserID: "@alice:example.org"})
		if err != nil {
			b.Fatal(err)
		}
		token = d.AccessToken
	}
	for b.Loop() {
		if _, err := u.QueryAccessToken(b.Context(), api.QueryAccessTokenRequest{AccessToken: token}); err != nil {
			b.Fatal(err)
		}
	}
}
