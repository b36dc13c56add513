package sqlstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/custos-uem/custos/platform/apple/dep/deptest"
	"github.com/custos-uem/custos/platform/apple/pushcert/pushcerttest"
)

func TestApplePushCertificateStore(t *testing.T) { forEachBackend(t, pushcerttest.Run) }
func TestAppleDEPStore(t *testing.T)             { forEachBackend(t, deptest.RunStore) }

// TestAppleDEPMigrationsMatch keeps the two dialects of migration 0015
// identical (it uses no type that differs between them).
func TestAppleDEPMigrationsMatch(t *testing.T) {
	read := func(backend string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("migrations", backend, "0015_apple_dep.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read("sqlite") != read("postgres") {
		t.Fatal("0015_apple_dep.sql differs between backends")
	}
}
