// Package storagetest runs storage tests on every engine: SQLite in a
// temporary directory and the PostgreSQL server the test command started
// (its URL in AXON_TEST_POSTGRES). A missing PostgreSQL fails the test: a
// storage test that silently ran on one engine would hide dialect bugs.
package storagetest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/axon-hs/axon/internal/sqlutil"
)

// EnvPostgres names the variable holding a PostgreSQL URL whose user may
// create databases.
const EnvPostgres = "AXON_TEST_POSTGRES"

// Each runs f once per engine with a fresh, empty database.
func Each(t *testing.T, f func(t *testing.T, db *sqlutil.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(t)) })
}

// EachBench runs f once per engine with a fresh, empty database.
func EachBench(b *testing.B, f func(b *testing.B, db *sqlutil.DB)) {
	b.Helper()
	b.Run("sqlite", func(b *testing.B) { f(b, SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { f(b, Postgres(b)) })
}

// SQLite opens a fresh SQLite database in t.TempDir().
func SQLite(t testing.TB) *sqlutil.DB {
	t.Helper()
	db, err := sqlutil.Open(t.Context(), filepath.Join(t.TempDir(), "test.db"), sqlutil.Options{Name: "test"})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Postgres creates a fresh database on the test PostgreSQL server and opens
// it; the database is dropped when the test ends.
func Postgres(t testing.TB) *sqlutil.DB {
	t.Helper()
	dsn := PostgresDSN(t)
	db, err := sqlutil.Open(t.Context(), dsn, sqlutil.Options{Name: "test"})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresDSN creates a fresh, empty database and returns its URL (for tests
// that start servers on PostgreSQL).
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Fatalf("%s is not set: run the tests with ./scripts/test, which starts a PostgreSQL server", EnvPostgres)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres admin connection: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "axon_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + name
	return u.String()
}
