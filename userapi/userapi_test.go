package userapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi"
	"github.com/axon-hs/axon/userapi/api"
)

const server = "example.org"

// eachTransport runs f on every engine, once on the implementation and once
// on the HTTP client against a server of the implementation.
func eachTransport(t *testing.T, f func(t *testing.T, a api.API)) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		c, err := userapi.New(t.Context(), userapi.Deps{
			DB: db, ServerName: server, BcryptCost: bcrypt.MinCost, Registry: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatalf("userapi.New: %v", err)
		}
		t.Run("direct", func(t *testing.T) { f(t, c.API()) })
		t.Run("http", func(t *testing.T) {
			mux := http.NewServeMux()
			api.Serve(rpc.NewServer(mux, nil), c.API())
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			f(t, api.Client{C: rpc.NewClient(srv.URL, nil)})
		})
	})
}

// wantCode fails unless err is an *apierr.Error with code (via errors.As,
// which must work through both transports).
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var e *apierr.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s: err = %v, want %s", what, err, code)
	}
}

func TestAccounts(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		// Each transport run shares the database, so names carry the subtest.
		local := "alice_" + transportName(t)
		av, err := a.AccountAvailable(ctx, api.AccountAvailableRequest{Localpart: local})
		if err != nil || !av.Available {
			t.Fatalf("AccountAvailable before = %+v, %v; want available", av, err)
		}
		res, err := a.CreateAccount(ctx, api.CreateAccountRequest{Localpart: local, Password: "hunter2"})
		if err != nil || res.UserID != "@"+local+":"+server {
			t.Fatalf("CreateAccount = %+v, %v", res, err)
		}
		_, err = a.CreateAccount(ctx, api.CreateAccountRequest{Localpart: local, Password: "other"})
		wantCode(t, "duplicate CreateAccount", err, apierr.CodeUserInUse)
		if av, err := a.AccountAvailable(ctx, api.AccountAvailableRequest{Localpart: local}); err != nil || av.Available {
			t.Fatalf("AccountAvailable after = %+v, %v; want taken", av, err)
		}

		for _, tc := range []struct {
			name, localpart, password string
			wantErr                   bool
		}{
			{"right", local, "hunter2", false},
			{"wrong", local, "hunter3", true},
			{"empty", local, "", true},
			{"missing user", "nobody", "hunter2", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: tc.localpart, Password: tc.password})
				if tc.wantErr {
					wantCode(t, "CheckPassword", err, apierr.CodeForbidden)
					if e, _ := apierr.As(err); e.Msg != "invalid username or password" {
						t.Fatalf("CheckPassword message %q differs between wrong password and missing user", e.Msg)
					}
					return
				}
				if err != nil || r.UserID != res.UserID {
					t.Fatalf("CheckPassword = %+v, %v; want %s", r, err, res.UserID)
				}
			})
		}

		p, err := a.QueryProfile(ctx, api.QueryProfileRequest{UserID: res.UserID})
		if err != nil || p.DisplayName != local || p.AvatarURL != "" {
			t.Fatalf("QueryProfile = %+v, %v; want display name %q", p, err, local)
		}
		named := "bob_" + transportName(t)
		if _, err := a.CreateAccount(ctx, api.CreateAccountRequest{Localpart: named, DisplayName: "Bob B."}); err != nil {
			t.Fatal(err)
		}
		if p, err := a.QueryProfile(ctx, api.QueryProfileRequest{UserID: "@" + named + ":" + server}); err != nil || p.DisplayName != "Bob B." {
			t.Fatalf("QueryProfile(named) = %+v, %v", p, err)
		}
		for _, id := range []string{"@nobody:" + server, "@" + local + ":elsewhere.org", "garbage"} {
			_, err := a.QueryProfile(ctx, api.QueryProfileRequest{UserID: id})
			wantCode(t, "QueryProfile("+id+")", err, apierr.CodeNotFound)
		}
	})
}

func TestDevices(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		local := "dev_" + transportName(t)
		acc, err := a.CreateAccount(ctx, api.CreateAccountRequest{Localpart: local, Password: "pw", Admin: true})
		if err != nil {
			t.Fatal(err)
		}
		d1, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: acc.UserID, DisplayName: "phone", IP: "10.0.0.1"})
		if err != nil || len(d1.DeviceID) != 10 || d1.AccessToken == "" {
			t.Fatalf("CreateDevice = %+v, %v", d1, err)
		}
		d2, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: acc.UserID, DeviceID: "LAPTOP"})
		if err != nil || d2.DeviceID != "LAPTOP" {
			t.Fatalf("CreateDevice(LAPTOP) = %+v, %v", d2, err)
		}
		_, err = a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: "@nobody:" + server})
		wantCode(t, "CreateDevice(unknown user)", err, apierr.CodeNotFound)

		valid := func(token string, want api.Device) {
			t.Helper()
			r, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: token})
			if err != nil || r.Device != want {
				t.Fatalf("QueryAccessToken = %+v, %v; want %+v", r.Device, err, want)
			}
		}
		invalid := func(token string) {
			t.Helper()
			_, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: token})
			wantCode(t, "QueryAccessToken", err, apierr.CodeUnknownToken)
		}
		phone := api.Device{UserID: acc.UserID, DeviceID: d1.DeviceID, DisplayName: "phone", AccountType: api.AccountUser, Admin: true}
		laptop := api.Device{UserID: acc.UserID, DeviceID: "LAPTOP", AccountType: api.AccountUser, Admin: true}
		valid(d1.AccessToken, phone)
		valid(d2.AccessToken, laptop)
		invalid("")
		invalid("axo_nonsense")
		invalid("not-even-ours")

		// Logging in again with a known device id replaces its token.
		d2b, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: acc.UserID, DeviceID: "LAPTOP"})
		if err != nil || d2b.AccessToken == d2.AccessToken {
			t.Fatalf("CreateDevice(LAPTOP again) = %+v, %v; want a new token", d2b, err)
		}
		invalid(d2.AccessToken)
		valid(d2b.AccessToken, laptop)

		// Tokens stay valid until their device is deleted.
		if _, err := a.DeleteDevices(ctx, api.DeleteDevicesRequest{UserID: acc.UserID, DeviceIDs: []string{"LAPTOP", "NOSUCHDEVICE"}}); err != nil {
			t.Fatalf("DeleteDevices(LAPTOP): %v", err)
		}
		invalid(d2b.AccessToken)
		valid(d1.AccessToken, phone)

		d3, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: acc.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.DeleteDevices(ctx, api.DeleteDevicesRequest{UserID: acc.UserID, All: true}); err != nil {
			t.Fatalf("DeleteDevices(All): %v", err)
		}
		invalid(d1.AccessToken)
		invalid(d3.AccessToken)
		if _, err := a.DeleteDevices(ctx, api.DeleteDevicesRequest{UserID: acc.UserID, All: true}); err != nil {
			t.Fatalf("DeleteDevices(All) with no devices: %v", err)
		}
	})
}

func TestUIA(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		s, err := a.StartUIA(ctx, api.StartUIARequest{Purpose: "register"})
		if err != nil || s.Session == "" {
			t.Fatalf("StartUIA = %+v, %v", s, err)
		}
		other, err := a.StartUIA(ctx, api.StartUIARequest{Purpose: "register"})
		if err != nil || other.Session == s.Session {
			t.Fatalf("second StartUIA = %+v, %v; want a different session", other, err)
		}
		for i, tc := range []struct {
			stage string
			want  []string
		}{
			{"m.login.terms", []string{"m.login.terms"}},
			{"m.login.dummy", []string{"m.login.terms", "m.login.dummy"}},
			{"m.login.terms", []string{"m.login.terms", "m.login.dummy"}}, // idempotent
		} {
			r, err := a.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: s.Session, Purpose: "register", Stage: tc.stage})
			if err != nil || !slices.Equal(r.Completed, tc.want) {
				t.Fatalf("CompleteUIAStage #%d(%s) = %v, %v; want %v", i+1, tc.stage, r.Completed, err, tc.want)
			}
		}
		_, err = a.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: "nope", Purpose: "register", Stage: "m.login.dummy"})
		wantCode(t, "CompleteUIAStage(unknown session)", err, apierr.CodeUnknown)
		if e, _ := apierr.As(err); e.HTTPStatus() != http.StatusBadRequest {
			t.Fatalf("unknown session status = %d, want 400", e.HTTPStatus())
		}
		_, err = a.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: s.Session, Purpose: "login", Stage: "m.login.dummy"})
		wantCode(t, "CompleteUIAStage(other purpose)", err, apierr.CodeUnknown)
	})
}

func TestRegistrationNonce(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		n, err := a.NewRegistrationNonce(ctx, api.NewRegistrationNonceRequest{})
		if err != nil || n.Nonce == "" {
			t.Fatalf("NewRegistrationNonce = %+v, %v", n, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		valid := 0
		for range 10 {
			wg.Go(func() {
				r, err := a.ConsumeRegistrationNonce(ctx, api.ConsumeRegistrationNonceRequest{Nonce: n.Nonce})
				if err != nil {
					t.Errorf("ConsumeRegistrationNonce: %v", err)
					return
				}
				if r.Valid {
					mu.Lock()
					valid++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if valid != 1 {
			t.Fatalf("10 concurrent ConsumeRegistrationNonce: %d Valid, want exactly 1", valid)
		}
		if r, err := a.ConsumeRegistrationNonce(ctx, api.ConsumeRegistrationNonceRequest{Nonce: "never-issued"}); err != nil || r.Valid {
			t.Fatalf("ConsumeRegistrationNonce(never issued) = %+v, %v; want invalid", r, err)
		}
	})
}

// TestEveryMethodServed checks that api.Serve serves every method of api.API,
// so a method added to the interface cannot be missing from the polylith.
func TestEveryMethodServed(t *testing.T) {
	s := rpc.NewServer(http.NewServeMux(), nil)
	api.Serve(s, api.Client{})
	typ := reflect.TypeFor[api.API]()
	var want []string
	for i := range typ.NumMethod() {
		want = append(want, "userapi."+typ.Method(i).Name)
	}
	slices.Sort(want)
	if got := s.Names(); !slices.Equal(got, want) {
		t.Fatalf("served methods = %v, want %v", got, want)
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	db := storagetest.SQLite(t)
	for _, tc := range []struct {
		name string
		deps userapi.Deps
	}{
		{"no database", userapi.Deps{ServerName: server}},
		{"no server name", userapi.Deps{DB: db}},
		{"bcrypt cost too high", userapi.Deps{DB: db, ServerName: server, BcryptCost: bcrypt.MaxCost + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := userapi.New(t.Context(), tc.deps); err == nil {
				t.Fatalf("New(%s) = nil error, want an error", tc.name)
			}
		})
	}
}

// transportName is the last element of the test name ("direct" or "http").
func transportName(t *testing.T) string { return path.Base(t.Name()) }
