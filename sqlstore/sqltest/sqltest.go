// Package sqltest gives tests a fresh, isolated Custos database on every
// backend available: SQLite always, PostgreSQL when the environment
// variable EnvPostgres holds a DSN (CI always sets it).
//
// Each Open gets its own database: a SQLite file in the test's temporary
// directory, or a new randomly named PostgreSQL schema dropped when the
// test ends. Tests of several packages can therefore run in parallel on one
// PostgreSQL server.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for the admin connection

	"github.com/custos-uem/custos/sqlstore"
)

// EnvPostgres names the environment variable with the URL of a PostgreSQL
// database the tests may create schemas in, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvPostgres = "CUSTOS_TEST_POSTGRES"

// Backends returns the backends to test: sqlstore.SQLite, then
// sqlstore.Postgres when EnvPostgres is set.
func Backends(t testing.TB) []string {
	t.Helper()
	if os.Getenv(EnvPostgres) == "" {
		t.Logf("sqltest: %s is not set; testing SQLite only", EnvPostgres)
		return []string{sqlstore.SQLite}
	}
	return []string{sqlstore.SQLite, sqlstore.Postgres}
}

// Open returns a fresh, migrated database on backend, closed (and on
// PostgreSQL dropped) when the test ends.
func Open(t testing.TB, backend string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), DSN(t, backend), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("sqltest: open %s: %v", backend, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("sqltest: close %s: %v", backend, err)
		}
	})
	return db
}

// DSN returns the DSN of a fresh, empty database on backend, for tests that
// open it themselves (several times, or from several goroutines): a file
// in the test's temporary directory, or a new PostgreSQL schema dropped
// when the test ends.
func DSN(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case sqlstore.SQLite:
		return "sqlite://" + filepath.Join(t.TempDir(), sqlstore.FileName)
	case sqlstore.Postgres:
		return newSchema(t)
	}
	t.Fatalf("sqltest: unknown backend %q", backend)
	return ""
}

// admin is the connection that creates and drops test schemas, shared by
// all tests of the process.
var admin = sync.OnceValues(func() (*sql.DB, error) {
	return sql.Open("pgx", os.Getenv(EnvPostgres))
})

// newSchema creates a schema, registers its removal, and returns the
// EnvPostgres URL with search_path set to it.
func newSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Fatalf("sqltest: %s is not set", EnvPostgres)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("sqltest: %s: %v", EnvPostgres, err)
	}
	pool, err := admin()
	if err != nil {
		t.Fatalf("sqltest: connect to %s: %v", EnvPostgres, err)
	}
	// rand.Text is base32: letters and digits only, safe in an identifier.
	schema := "custos_test_" + strings.ToLower(rand.Text()[:16])
	if _, err := pool.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("sqltest: create schema: %v", err)
	}
	// Registered before the caller's Close, so it runs after it (cleanups
	// run last in, first out) and finds no connection using the schema.
	t.Cleanup(func() {
		if _, err := pool.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("sqltest: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
