package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func open(t *testing.T, db *sqlutil.DB) *Storage {
	t.Helper()
	st, err := Open(t.Context(), db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Opening again must be a no-op (a restart).
	if _, err := Open(t.Context(), db); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	return st
}

func TestAccounts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		alice := Account{Localpart: "alice", PasswordHash: "$2a$hash", AccountType: "user", Admin: true, CreatedMS: 42}
		for i, want := range []bool{true, false} {
			ok, err := st.Accounts.Insert(ctx, db, alice)
			if err != nil || ok != want {
				t.Fatalf("Insert #%d = %v, %v; want %v, nil", i+1, ok, err, want)
			}
		}
		got, err := st.Accounts.Select(ctx, db.Reader(), "alice")
		if err != nil || got != alice {
			t.Fatalf("Select(alice) = %+v, %v; want %+v", got, err, alice)
		}
		if _, err := st.Accounts.Select(ctx, db.Reader(), "Alice"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Select(Alice) err = %v, want ErrNotFound (lookups are exact)", err)
		}
		for _, tc := range []struct {
			localpart string
			want      bool
		}{{"alice", true}, {"Alice", false}, {"bob", false}} {
			if got, err := st.Accounts.Exists(ctx, db.Reader(), tc.localpart); err != nil || got != tc.want {
				t.Errorf("Exists(%q) = %v, %v; want %v", tc.localpart, got, err, tc.want)
			}
		}
	})
}

func TestDevices(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		for _, a := range []Account{{Localpart: "alice", AccountType: "user", Admin: true}, {Localpart: "bob", AccountType: "guest"}} {
			if _, err := st.Accounts.Insert(ctx, db, a); err != nil {
				t.Fatal(err)
			}
		}
		hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
		devs := []Device{
			{Localpart: "alice", DeviceID: "A1", TokenHash: hash("t1"), DisplayName: "phone"},
			{Localpart: "alice", DeviceID: "A2", TokenHash: hash("t2")},
			{Localpart: "alice", DeviceID: "A3", TokenHash: hash("t3")},
			{Localpart: "bob", DeviceID: "A1", TokenHash: hash("t4")},
		}
		for _, d := range devs {
			if err := st.Devices.Upsert(ctx, db, d); err != nil {
				t.Fatalf("Upsert(%s/%s): %v", d.Localpart, d.DeviceID, err)
			}
		}
		owner, err := st.Devices.SelectByTokenHash(ctx, db.Reader(), hash("t1"))
		want := TokenOwner{Localpart: "alice", DeviceID: "A1", DisplayName: "phone", AccountType: "user", Admin: true}
		if err != nil || owner != want {
			t.Fatalf("SelectByTokenHash(t1) = %+v, %v; want %+v", owner, err, want)
		}
		owner, err = st.Devices.SelectByTokenHash(ctx, db.Reader(), hash("t4"))
		if err != nil || owner.Localpart != "bob" || owner.AccountType != "guest" {
			t.Fatalf("SelectByTokenHash(t4) = %+v, %v; want bob's guest device", owner, err)
		}

		// A new token for an existing device replaces the old one and keeps the display name.
		if err := st.Devices.Upsert(ctx, db, Device{Localpart: "alice", DeviceID: "A1", TokenHash: hash("t1b"), DisplayName: "ignored"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Devices.SelectByTokenHash(ctx, db.Reader(), hash("t1")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old token after replace: err = %v, want ErrNotFound", err)
		}
		if owner, err := st.Devices.SelectByTokenHash(ctx, db.Reader(), hash("t1b")); err != nil || owner.DisplayName != "phone" {
			t.Fatalf("new token = %+v, %v; want device A1 named phone", owner, err)
		}

		// Only the hash is stored.
		var stored []byte
		if err := db.QueryRowContext(ctx, `SELECT token_hash FROM userapi_devices WHERE localpart = $1 AND device_id = $2`, "alice", "A1").Scan(&stored); err != nil || !bytes.Equal(stored, hash("t1b")) {
			t.Fatalf("stored token = %x, %v; want the hash", stored, err)
		}

		n, err := st.Devices.Delete(ctx, db, "alice", []string{"A2", "nope"})
		if err != nil || n != 1 {
			t.Fatalf("Delete(A2, nope) = %d, %v; want 1", n, err)
		}
		if n, err := st.Devices.Delete(ctx, db, "alice", nil); err != nil || n != 0 {
			t.Fatalf("Delete(nil) = %d, %v; want 0", n, err)
		}
		ids, err := st.Devices.SelectIDs(ctx, db.Reader(), "alice")
		if err != nil || !slices.Equal(ids, []string{"A1", "A3"}) {
			t.Fatalf("SelectIDs(alice) = %v, %v; want [A1 A3]", ids, err)
		}
		if n, err := st.Devices.DeleteAll(ctx, db, "alice"); err != nil || n != 2 {
			t.Fatalf("DeleteAll(alice) = %d, %v; want 2", n, err)
		}
		if ids, err := st.Devices.SelectIDs(ctx, db.Reader(), "bob"); err != nil || !slices.Equal(ids, []string{"A1"}) {
			t.Fatalf("SelectIDs(bob) = %v, %v; want [A1] (untouched)", ids, err)
		}

		// Deactivated accounts' tokens resolve to nothing.
		if _, err := db.ExecContext(ctx, `UPDATE userapi_accounts SET deactivated = TRUE WHERE localpart = $1`, "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Devices.SelectByTokenHash(ctx, db.Reader(), hash("t4")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("token of deactivated account: err = %v, want ErrNotFound", err)
		}
	})
}

func TestProfiles(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		p := Profile{Localpart: "alice", DisplayName: "Alice", AvatarURL: "mxc://x/y"}
		if err := st.Profiles.Insert(ctx, db, p); err != nil {
			t.Fatal(err)
		}
		if err := st.Profiles.Insert(ctx, db, Profile{Localpart: "alice", DisplayName: "other"}); err != nil {
			t.Fatalf("second Insert: %v", err)
		}
		if got, err := st.Profiles.Select(ctx, db.Reader(), "alice"); err != nil || got != p {
			t.Fatalf("Select(alice) = %+v, %v; want %+v (first insert kept)", got, err, p)
		}
		if _, err := st.Profiles.Select(ctx, db.Reader(), "bob"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Select(bob) err = %v, want ErrNotFound", err)
		}
	})
}

func TestUIASessions(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		for _, s := range []UIASession{{ID: "old", Purpose: "register", CreatedMS: 100}, {ID: "new", Purpose: "register", CreatedMS: 200}} {
			if err := st.UIASessions.Insert(ctx, db, s); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.UIASessions.Select(ctx, db, "new")
		if err != nil || got.Purpose != "register" || got.CreatedMS != 200 || len(got.Completed) != 0 {
			t.Fatalf("Select(new) = %+v, %v", got, err)
		}
		steps := []struct {
			prev, next []string
			want       bool
		}{
			{nil, []string{"m.login.dummy"}, true},
			{nil, []string{"m.login.terms"}, false}, // stale prev: lost the race
			{[]string{"m.login.dummy"}, []string{"m.login.dummy", "m.login.terms"}, true},
		}
		for i, s := range steps {
			if ok, err := st.UIASessions.UpdateCompleted(ctx, db, "new", s.prev, s.next); err != nil || ok != s.want {
				t.Fatalf("UpdateCompleted #%d(%v → %v) = %v, %v; want %v", i+1, s.prev, s.next, ok, err, s.want)
			}
		}
		if got, err := st.UIASessions.Select(ctx, db, "new"); err != nil || !slices.Equal(got.Completed, []string{"m.login.dummy", "m.login.terms"}) {
			t.Fatalf("Completed = %v, %v", got.Completed, err)
		}
		if n, err := st.UIASessions.DeleteCreatedBefore(ctx, db, 150); err != nil || n != 1 {
			t.Fatalf("DeleteCreatedBefore(150) = %d, %v; want 1", n, err)
		}
		if _, err := st.UIASessions.Select(ctx, db, "old"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Select(old) err = %v, want ErrNotFound", err)
		}
		if ok, err := st.UIASessions.UpdateCompleted(ctx, db, "old", nil, []string{"x"}); err != nil || ok {
			t.Fatalf("UpdateCompleted(deleted) = %v, %v; want false", ok, err)
		}
	})
}

func TestNonces(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		if err := st.Nonces.Insert(ctx, db, "n1", 1000); err != nil {
			t.Fatal(err)
		}
		if err := st.Nonces.Insert(ctx, db, "n2", 5000); err != nil {
			t.Fatal(err)
		}
		if created, err := st.Nonces.Consume(ctx, db, "n1"); err != nil || created != 1000 {
			t.Fatalf("Consume(n1) = %d, %v; want 1000", created, err)
		}
		if _, err := st.Nonces.Consume(ctx, db, "n1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Consume(n1) err = %v, want ErrNotFound", err)
		}

		// Concurrent consumers: exactly one wins.
		if err := st.Nonces.Insert(ctx, db, "race", 1000); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 10 {
			wg.Go(func() {
				_, err := st.Nonces.Consume(ctx, db, "race")
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Consume(race): %v", err)
				}
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("concurrent Consume: %d winners, want 1", wins)
		}

		if n, err := st.Nonces.DeleteCreatedBefore(ctx, db, 6000); err != nil || n != 1 {
			t.Fatalf("DeleteCreatedBefore(6000) = %d, %v; want 1 (n2)", n, err)
		}
	})
}
