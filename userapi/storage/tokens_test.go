package storage

import (
	"errors"
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
)

func TestRegistrationTokensTable(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		tt := st.RegTokens
		// Releasing a token never used, or below zero, keeps it at zero.
		if err := tt.Release(ctx, db, "a"); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{true, true, false} {
			ok, err := tt.Use(ctx, db, "a", 2)
			if err != nil || ok != want {
				t.Fatalf("Use #%d = %v, %v; want %v", i+1, ok, err, want)
			}
		}
		if n, err := tt.Completed(ctx, db, "a"); err != nil || n != 2 {
			t.Fatalf("Completed = %d, %v; want 2", n, err)
		}
		for range 3 {
			if err := tt.Release(ctx, db, "a"); err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := tt.Completed(ctx, db, "a"); n != 0 {
			t.Fatalf("Completed after over-release = %d, want 0", n)
		}
		// A limit lowered below the uses (configuration changed) refuses.
		if ok, _ := tt.Use(ctx, db, "a", 1); !ok {
			t.Fatal("Use with one allowed = false")
		}
		if ok, _ := tt.Use(ctx, db, "a", 1); ok {
			t.Fatal("Use beyond the limit = true")
		}
	})
}

func TestLoginTokensTable(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		ctx, st := t.Context(), open(t, db)
		lt := st.LoginTokens
		if err := lt.Insert(ctx, db, []byte{1, 2, 3}, "alice", 1000); err != nil {
			t.Fatal(err)
		}
		if err := lt.Insert(ctx, db, []byte{4}, "bob", 2000); err != nil {
			t.Fatal(err)
		}
		if err := lt.DeleteExpired(ctx, db, 1000); err != nil {
			t.Fatal(err)
		}
		if _, _, err := lt.Consume(ctx, db, []byte{1, 2, 3}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Consume(expired and swept) = %v, want ErrNotFound", err)
		}
		local, exp, err := lt.Consume(ctx, db, []byte{4})
		if err != nil || local != "bob" || exp != 2000 {
			t.Fatalf("Consume = %q, %d, %v", local, exp, err)
		}
		if _, _, err := lt.Consume(ctx, db, []byte{4}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Consume = %v, want ErrNotFound", err)
		}
	})
}
