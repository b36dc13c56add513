package sqlstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-uem/custos/websession"
	"github.com/custos-uem/custos/websession/websessiontest"
)

func TestWebSessionStore(t *testing.T) { forEachBackend[websession.Store](t, websessiontest.Run) }

// TestWebSessionMigrationsMatch keeps the two dialects of the websession
// migration in step: they may differ only in the byte type.
func TestWebSessionMigrationsMatch(t *testing.T) {
	read := func(backend string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("migrations", backend, "0011_websession.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "BYTEA", "BLOB")
	}
	if lite, pg := read("sqlite"), read("postgres"); lite != pg {
		t.Fatalf("0011_websession.sql differs between backends beyond BLOB/BYTEA:\n--- sqlite\n%s\n--- postgres\n%s", lite, pg)
	}
}
