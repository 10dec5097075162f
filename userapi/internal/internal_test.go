package internal

import (
	"database/sql"
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newAPI(t *testing.T, db *sqlutil.DB) (*UserAPI, *clock) {
	t.Helper()
	st, err := storage.Open(t.Context(), db)
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	u, err := New(Config{Storage: st, ServerName: "example.org", BcryptCost: bcrypt.MinCost, Now: c.now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u, c
}

func TestUIAExpiry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, c := newAPI(t, db)
		s, err := u.StartUIA(ctx, api.StartUIARequest{Purpose: "register"})
		if err != nil {
			t.Fatal(err)
		}
		complete := func(purpose, stage string) ([]string, error) {
			r, err := u.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: s.Session, Purpose: purpose, Stage: stage})
			return r.Completed, err
		}
		if _, err := complete("login", "m.login.dummy"); !apierr.HasCode(err, apierr.CodeUnknown) {
			t.Fatalf("other purpose: err = %v, want M_UNKNOWN", err)
		}
		c.advance(UIASessionLifetime - time.Second)
		if got, err := complete("register", "m.login.dummy"); err != nil || !slices.Equal(got, []string{"m.login.dummy"}) {
			t.Fatalf("before expiry = %v, %v", got, err)
		}
		c.advance(time.Second)
		_, err = complete("register", "m.login.terms")
		if e, ok := apierr.As(err); !ok || e.Code != apierr.CodeUnknown || e.HTTPStatus() != 400 {
			t.Fatalf("after expiry: err = %v, want M_UNKNOWN 400", err)
		}
		// Starting a new session sweeps the expired one.
		if _, err := u.StartUIA(ctx, api.StartUIARequest{Purpose: "register"}); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM userapi_uia_sessions`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("sessions after sweep = %d, %v; want 1", n, err)
		}
	})
}

func TestUIAConcurrentStages(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, _ := newAPI(t, db)
		s, err := u.StartUIA(ctx, api.StartUIARequest{Purpose: "register"})
		if err != nil {
			t.Fatal(err)
		}
		stages := []string{"a", "b", "c", "d", "e", "f"}
		var wg sync.WaitGroup
		for _, st := range stages {
			wg.Go(func() {
				if _, err := u.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: s.Session, Purpose: "register", Stage: st}); err != nil {
					t.Errorf("CompleteUIAStage(%s): %v", st, err)
				}
			})
		}
		wg.Wait()
		r, err := u.CompleteUIAStage(ctx, api.CompleteUIAStageRequest{Session: s.Session, Purpose: "register", Stage: "a"})
		got := slices.Sorted(slices.Values(r.Completed))
		if err != nil || !slices.Equal(got, stages) {
			t.Fatalf("completed = %v, %v; want every stage once: %v", got, err, stages)
		}
	})
}

func TestNonceExpiry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, c := newAPI(t, db)
		consume := func(n string) bool {
			r, err := u.ConsumeRegistrationNonce(ctx, api.ConsumeRegistrationNonceRequest{Nonce: n})
			if err != nil {
				t.Fatalf("ConsumeRegistrationNonce: %v", err)
			}
			return r.Valid
		}
		fresh, _ := u.NewRegistrationNonce(ctx, api.NewRegistrationNonceRequest{})
		stale, err := u.NewRegistrationNonce(ctx, api.NewRegistrationNonceRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c.advance(NonceLifetime - time.Millisecond)
		if !consume(fresh.Nonce) {
			t.Fatal("nonce just under 60 s old: Valid = false, want true")
		}
		c.advance(time.Millisecond)
		if consume(stale.Nonce) {
			t.Fatal("nonce 60 s old: Valid = true, want false")
		}
		if consume(stale.Nonce) {
			t.Fatal("expired nonce consumed twice: Valid = true")
		}
	})
}

func TestPasswordEdgeCases(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx := t.Context()
		u, _ := newAPI(t, db)
		if got, err := bcrypt.Cost(u.dummyHash); err != nil || got != bcrypt.MinCost {
			t.Fatalf("dummy hash cost = %d, %v; want the configured %d (else timing differs)", got, err, bcrypt.MinCost)
		}
		_, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "long", Password: strings.Repeat("x", 73)})
		if !apierr.HasCode(err, apierr.CodeInvalidParam) {
			t.Fatalf("73-byte password: err = %v, want M_INVALID_PARAM", err)
		}
		if _, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "bot"}); err != nil {
			t.Fatal(err)
		}
		if _, err := u.CreateAccount(ctx, api.CreateAccountRequest{Localpart: "gone", Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE userapi_accounts SET deactivated = TRUE WHERE localpart = $1`, "gone")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, localpart, password string }{
			{"no password set, empty given", "bot", ""},
			{"no password set, dummy guessed", "bot", "axon dummy password for missing accounts"},
			{"deactivated, right password", "gone", "pw"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := u.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: tc.localpart, Password: tc.password})
				if !apierr.HasCode(err, apierr.CodeForbidden) {
					t.Fatalf("CheckPassword(%q) err = %v, want M_FORBIDDEN", tc.localpart, err)
				}
			})
		}
		if _, err := u.CreateDevice(ctx, api.CreateDeviceRequest{UserID: "@gone:example.org"}); !apierr.HasCode(err, apierr.CodeNotFound) {
			t.Fatalf("CreateDevice(deactivated) err = %v, want M_NOT_FOUND", err)
		}
	})
}

func TestIdentifierShapes(t *testing.T) {
	deviceRE := regexp.MustCompile(`^[A-Z]{10}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newDeviceID()
		if !deviceRE.MatchString(id) {
			t.Fatalf("newDeviceID() = %q, want 10 uppercase letters", id)
		}
		seen[id] = true
		tok := newAccessToken()
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, tokenPrefix))
		if !strings.HasPrefix(tok, tokenPrefix) || err != nil || len(raw) != 32 {
			t.Fatalf("newAccessToken() = %q, want %q + base64url of 32 bytes", tok, tokenPrefix)
		}
	}
	if len(seen) < 1000 {
		t.Fatalf("newDeviceID repeated itself: %d distinct of 1000", len(seen))
	}
}

func TestLocalpart(t *testing.T) {
	u := &UserAPI{serverName: "example.org:8448"}
	for _, tc := range []struct {
		userID string
		want   string
		ok     bool
	}{
		{"@alice:example.org:8448", "alice", true},
		{"@alice:example.org", "", false},
		{"alice:example.org:8448", "", false},
		{"@:example.org:8448", "", false},
		{"@alice", "", false},
		{"", "", false},
	} {
		if got, ok := u.localpart(tc.userID); got != tc.want || ok != tc.ok {
			t.Errorf("localpart(%q) = %q, %v; want %q, %v", tc.userID, got, ok, tc.want, tc.ok)
		}
	}
	if got := u.userID("alice"); got != "@alice:example.org:8448" {
		t.Errorf("userID(alice) = %q", got)
	}
}
