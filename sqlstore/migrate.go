package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// Migrations are SQL files named NNNN_description.sql, one directory per
// backend with the same versions in each, applied in version order. A
// published migration is never edited: a change is a new file.
//
//go:embed migrations
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the backend's migrations in version order.
func migrations(backend string) ([]migration, error) {
	dir := path.Join("migrations", backend)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations: %w", err)
	}
	var out []migration
	for _, e := range entries { // ReadDir sorts by name, so by version
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("sqlstore: migration %s: want NNNN_name.sql", e.Name())
		}
		if len(out) > 0 && version <= out[len(out)-1].version {
			return nil, fmt.Errorf("sqlstore: migration %s: version %d repeats", e.Name(), version)
		}
		b, err := migrationFiles.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), sql: string(b)})
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`

// migrate applies the migrations the database lacks, each in its own
// transaction together with its schema_migrations row.
func (db *DB) migrate(ctx context.Context) error {
	all, err := migrations(db.backend)
	if err != nil {
		return err
	}
	for _, m := range all {
		applied, err := db.apply(ctx, m)
		if err != nil {
			return err
		}
		if applied {
			db.log.InfoContext(ctx, "sqlstore: migration applied", "backend", db.backend, "migration", m.name)
		}
	}
	return nil
}

// apply runs m unless it was applied already, and reports whether it ran.
// Its statements go straight to the transaction: a migration has several
// statements, which cannot be prepared as one, and runs once.
//
// Two processes may start at once. On PostgreSQL, a transaction-scoped
// advisory lock keyed by the schema makes the second wait and then find the
// migration applied (separate schemas, as in tests, do not wait for each
// other). On SQLite the transaction's BEGIN IMMEDIATE already excludes every
// other writer of the file.
func (db *DB) apply(ctx context.Context, m migration) (bool, error) {
	applied := false
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		if db.backend == Postgres {
			if _, err := r.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('custos.migrate'), hashtext(current_schema()))`); err != nil {
				return dbErr("lock migrations", err)
			}
		}
		if _, err := r.tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return dbErr("create schema_migrations", err)
		}
		var done int
		if err := r.tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&done); err != nil {
			return dbErr("read schema_migrations", err)
		}
		if done > 0 {
			return nil
		}
		if _, err := r.tx.ExecContext(ctx, m.sql); err != nil {
			return dbErr("migration "+m.name, err)
		}
		applied = true
		_, err := r.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, micros(time.Now()))
		return dbErr("record migration "+m.name, err)
	})
	return applied && err == nil, err
}

// Migrated reports whether every embedded migration is recorded as applied.
// Open applies them, so false means the database changed underneath the
// process (restored from an older backup, say) and it should not serve.
func (db *DB) Migrated(ctx context.Context) (bool, error) {
	all, err := migrations(db.backend)
	if err != nil {
		return false, err
	}
	versions, err := list(ctx, db.reader(), func(s scanner) (int, error) {
		var v int
		return v, s.Scan(&v)
	}, "read schema_migrations", `SELECT version FROM schema_migrations`)
	if err != nil {
		return false, err
	}
	have := make(map[int]bool, len(versions))
	for _, v := range versions {
		have[v] = true
	}
	for _, m := range all {
		if !have[m.version] {
			return false, nil
		}
	}
	return true, nil
}
