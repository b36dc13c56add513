package sqlstore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/audit/audittest"
	"github.com/custos-uem/custos/auth/authtest"
	"github.com/custos-uem/custos/device/devicetest"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki/pkitest"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/user/usertest"
)

// forEachBackend runs a conformance suite once per backend, as subtests
// named by backend, handing it fresh databases. S is the suite's Stores
// interface; the compile-time assertions in package sqlstore guarantee
// that *sqlstore.DB implements it.
func forEachBackend[S any](t *testing.T, suite func(*testing.T, func(*testing.T) S)) {
	t.Helper()
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			suite(t, func(t *testing.T) S { return any(sqltest.Open(t, backend)).(S) })
		})
	}
}

func TestUserStores(t *testing.T)       { forEachBackend(t, usertest.Run) }
func TestActivationStores(t *testing.T) { forEachBackend(t, activationtest.Run) }
func TestDeviceStores(t *testing.T)     { forEachBackend(t, devicetest.Run) }
func TestRevocationStore(t *testing.T)  { forEachBackend(t, pkitest.Run) }
func TestAuthStores(t *testing.T)       { forEachBackend(t, authtest.Run) }
func TestAuditStore(t *testing.T)       { forEachBackend[audit.Store](t, audittest.Run) }

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(p))
	return len(p), nil
}

func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

func open(t *testing.T, dsn, dataDir string, log *slog.Logger) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, dataDir, log)
	if err != nil {
		t.Fatalf("Open(%q, %q): %v", dsn, dataDir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func wantMigrated(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	ok, err := db.Migrated(context.Background())
	if err != nil || !ok {
		t.Fatalf("Migrated = %v, %v; want true", ok, err)
	}
}

func TestOpenTwiceAppliesNothing(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			dsn := sqltest.DSN(t, backend)
			var first, second logRecorder
			db := open(t, dsn, "", first.logger())
			if db.Backend() != backend {
				t.Fatalf("Backend() = %q, want %q", db.Backend(), backend)
			}
			wantMigrated(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			again := open(t, dsn, "", second.logger())
			wantMigrated(t, again)
			if first.count("migration applied") == 0 || second.count("migration applied") != 0 {
				t.Fatalf("migrations applied: %d by the first Open, %d by the second; want some, then none",
					first.count("migration applied"), second.count("migration applied"))
			}
		})
	}
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	const processes = 4
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			dsn := sqltest.DSN(t, backend)
			var rec logRecorder
			var wg sync.WaitGroup
			dbs := make([]*sqlstore.DB, processes)
			errs := make([]error, processes)
			for i := range processes {
				wg.Go(func() { dbs[i], errs[i] = sqlstore.Open(context.Background(), dsn, "", rec.logger()) })
			}
			wg.Wait()
			opened := 0
			for i, err := range errs {
				// On SQLite one process owns the file: the others are
				// refused at Open, never left contending for writes.
				if err != nil && backend == sqlstore.SQLite && strings.Contains(err.Error(), "in use by another process") {
					continue
				}
				if err != nil {
					t.Fatalf("Open #%d: %v", i, err)
				}
				opened++
				t.Cleanup(func() { dbs[i].Close() })
				wantMigrated(t, dbs[i])
			}
			if backend == sqlstore.SQLite && opened != 1 {
				t.Fatalf("%d processes opened one SQLite file, want exactly 1", opened)
			}
			all, err := os.ReadDir(filepath.Join("migrations", backend))
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.count("migration applied"); got != len(all) {
				t.Fatalf("%d concurrent Opens applied %d migrations, want %d", processes, got, len(all))
			}
		})
	}
}

func TestSQLiteSecondProcessRefusedThenAllowedAfterClose(t *testing.T) {
	dsn := sqltest.DSN(t, sqlstore.SQLite)
	first, err := sqlstore.Open(context.Background(), dsn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlstore.Open(context.Background(), dsn, "", nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open on the same SQLite file: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlstore.Open(context.Background(), dsn, "", nil)
	if err != nil {
		t.Fatalf("Open after the first process closed: %v", err)
	}
	again.Close()
}

func TestOpenRefusesUnknownDSN(t *testing.T) {
	for _, dsn := range []string{
		"mysql://root@127.0.0.1/custos",
		"host=127.0.0.1 dbname=custos",
		"postgres:/127.0.0.1/missing-slash=1",
	} {
		t.Run("fail/"+dsn, func(t *testing.T) {
			dir := t.TempDir()
			db, err := sqlstore.Open(context.Background(), dsn, dir, nil)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", dsn)
			}
			if entries, _ := os.ReadDir("."); len(entries) > 0 {
				for _, e := range entries {
					if strings.Contains(e.Name(), "dbname") {
						t.Fatalf("a file %q was created", e.Name())
					}
				}
			}
		})
	}
}

func TestClaimSettingFirstWriterWins(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			ctx := context.Background()
			got, err := db.ClaimSetting(ctx, "ca_fingerprint", "aaa")
			if err != nil || got != "aaa" {
				t.Fatalf("first claim: %q %v", got, err)
			}
			got, err = db.ClaimSetting(ctx, "ca_fingerprint", "bbb")
			if err != nil || got != "aaa" {
				t.Fatalf("second claim: %q %v, want the first value", got, err)
			}
		})
	}
}

func TestMigrationsMatchAcrossBackends(t *testing.T) {
	names := func(backend string) []string {
		entries, err := os.ReadDir(filepath.Join("migrations", backend))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	lite, pg := names(sqlstore.SQLite), names(sqlstore.Postgres)
	if strings.Join(lite, ",") != strings.Join(pg, ",") {
		t.Fatalf("migrations differ between backends:\n sqlite   %v\n postgres %v", lite, pg)
	}
}

func TestOpenSQLiteLocations(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, dsn, dataDir, file string
		fail                     bool
	}{
		{"fail/question mark in path", filepath.Join(dir, "a?b.db"), "", "", true},
		{"fail/missing directory", filepath.Join(dir, "missing", "x.db"), "", "", true},
		{"ok/default in data directory", "", filepath.Join(dir, "data"), filepath.Join(dir, "data", sqlstore.FileName), false},
		{"ok/sqlite URL", "sqlite://" + filepath.Join(dir, "url.db"), "", filepath.Join(dir, "url.db"), false},
		{"ok/plain path", filepath.Join(dir, "plain.db"), "", filepath.Join(dir, "plain.db"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlstore.Open(context.Background(), tc.dsn, tc.dataDir, nil)
			if tc.fail {
				if err == nil {
					db.Close()
					t.Fatalf("Open(%q) succeeded, want an error", tc.dsn)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q, %q): %v", tc.dsn, tc.dataDir, err)
			}
			defer db.Close()
			if db.Backend() != sqlstore.SQLite {
				t.Fatalf("Backend() = %q", db.Backend())
			}
			fi, err := os.Stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s has mode %v, want 0600 (it holds password hashes)", tc.file, fi.Mode().Perm())
			}
		})
	}
}

func TestOpenPostgresUnreachableFails(t *testing.T) {
	// Port 1 on loopback refuses at once.
	db, err := sqlstore.Open(context.Background(), "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "", nil)
	if err == nil {
		db.Close()
		t.Fatal("Open of an unreachable PostgreSQL succeeded")
	}
}

func TestPingAndCollector(t *testing.T) {
	want := map[string][]string{
		sqlstore.SQLite:   {"sqlite_reader", "sqlite_writer"},
		sqlstore.Postgres: {"postgres"},
	}
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			if err := db.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			reg := prometheus.NewRegistry()
			if err := reg.Register(db.Collector()); err != nil {
				t.Fatalf("Register: %v", err)
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			var pools []string
			for _, f := range families {
				if f.GetName() == "go_sql_open_connections" {
					for _, m := range f.GetMetric() {
						pools = append(pools, m.GetLabel()[0].GetValue())
					}
				}
			}
			if strings.Join(pools, ",") != strings.Join(want[backend], ",") {
				t.Fatalf("go_sql_open_connections pools = %v, want %v", pools, want[backend])
			}
		})
	}
}

// TestConcurrentWritesFailAlone has many writes in flight at once, some of
// which break a unique index: exactly those fail, and every other one is
// stored (on SQLite they share commits, see writeQueue).
func TestConcurrentWritesFailAlone(t *testing.T) {
	const writers = 40
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, backend)
			taken := usertest.CreateUser(t, db, "taken")
			var wg sync.WaitGroup
			results := make([]error, writers)
			for i := range writers {
				wg.Go(func() {
					u := usertest.NewUser("u")
					if i%4 == 0 {
						u.Email = taken.Email
					}
					results[i] = db.CreateUser(ctx, u)
				})
			}
			wg.Wait()
			stored := 1
			for i, err := range results {
				switch {
				case i%4 == 0 && !errors.Is(err, errs.ErrConflict):
					t.Errorf("write %d (duplicate email): %v, want ErrConflict", i, err)
				case i%4 != 0 && err != nil:
					t.Errorf("write %d: %v", i, err)
				case err == nil:
					stored++
				}
			}
			all, err := db.ListUsers(ctx, user.Page{})
			if err != nil || len(all) != stored {
				t.Fatalf("ListUsers = %d users, %v; want %d", len(all), err, stored)
			}
		})
	}
}

func TestWriteWithEndedContextChangesNothing(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			u := usertest.NewUser("late")
			if err := db.CreateUser(ctx, u); !errors.Is(err, context.Canceled) {
				t.Fatalf("CreateUser with a cancelled context: %v, want context.Canceled", err)
			}
			if _, err := db.User(context.Background(), u.ID); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("User after the cancelled write: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateUser(context.Background(), usertest.NewUser("late")); err == nil {
				t.Fatal("CreateUser after Close succeeded")
			}
		})
	}
}
