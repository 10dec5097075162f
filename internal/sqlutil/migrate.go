package sqlutil

import (
	"context"
	"database/sql"
	"fmt"
)

// Migration is one step of a component's schema history. Versions start at 1
// and never change once released; a new schema change is a new entry.
type Migration struct {
	Version int
	Name    string
	// Up applies the step inside the migration transaction.
	Up func(ctx context.Context, tx *sql.Tx, d Dialect) error
}

// Exec returns an Up that runs statements (each may use the dialect).
func Exec(stmts ...func(d Dialect) string) func(ctx context.Context, tx *sql.Tx, d Dialect) error {
	return func(ctx context.Context, tx *sql.Tx, d Dialect) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s(d)); err != nil {
				return err
			}
		}
		return nil
	}
}

// Static wraps SQL that is the same on both engines for Exec.
func Static(s string) func(Dialect) string { return func(Dialect) string { return s } }

const migrationsSchema = `CREATE TABLE IF NOT EXISTS axon_migrations (
	component  TEXT NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT NOT NULL,
	applied_ms BIGINT NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate applies the migrations of component that db has not seen, each in
// its own transaction. Processes starting at once against one PostgreSQL
// database serialise on an advisory lock.
func Migrate(ctx context.Context, db *DB, component string, ms []Migration) error {
	for _, m := range ms {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if db.Dialect.Engine == Postgres {
				// A fixed key: migrations of all components are serialised, which is cheap and avoids
				// concurrent CREATE TABLE IF NOT EXISTS races on the catalog.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7301999)`); err != nil {
					return fmt.Errorf("lock migrations: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, migrationsSchema); err != nil {
				return fmt.Errorf("create migrations table: %w", err)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM axon_migrations WHERE component = $1 AND version = $2`,
				component, m.Version).Scan(&n); err != nil {
				return fmt.Errorf("read migrations: %w", err)
			}
			if n > 0 {
				return nil
			}
			if err := m.Up(ctx, tx, db.Dialect); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO axon_migrations (component, version, name, applied_ms) VALUES ($1, $2, $3, $4)`,
				component, m.Version, m.Name, nowMS())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
	}
	return nil
}
