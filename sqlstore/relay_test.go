package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/relay/relaytest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

func TestRelayStore(t *testing.T) { forEachBackend(t, relaytest.Run) }

// TestRelayMigrationsMatch keeps the two dialects of the relay migration
// in step: they may differ only in the byte type.
func TestRelayMigrationsMatch(t *testing.T) {
	read := func(backend string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("migrations", backend, "0008_relay.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "BYTEA", "BLOB")
	}
	if lite, pg := read("sqlite"), read("postgres"); lite != pg {
		t.Fatalf("0008_relay.sql differs between backends beyond BLOB/BYTEA:\n--- sqlite\n%s\n--- postgres\n%s", lite, pg)
	}
}

// benchRoutes is one domain and n-1 addresses of prefix.
func benchRoutes(prefix string, n int) []relay.Route {
	out := make([]relay.Route, 0, n)
	out = append(out, relaytest.Domain(prefix+".example"))
	for i := range n - 1 {
		out = append(out, relaytest.Address(fmt.Sprintf("user-%d@%s.example", i, prefix)))
	}
	return out
}

// BenchmarkReplaceRoutes100k replaces the routes of a company of
// relay.MaxRoutesPerCall users in one call: "unchanged" stores the set
// the server has already (a directory sync with nothing new), "disjoint"
// swaps it for one with no route in common (every route deleted and
// inserted, the worst case).
func BenchmarkReplaceRoutes100k(b *testing.B) {
	ctx := context.Background()
	sets := [2][]relay.Route{benchRoutes("one", relay.MaxRoutesPerCall), benchRoutes("two", relay.MaxRoutesPerCall)}
	for _, backend := range sqltest.Backends(b) {
		for _, mode := range []string{"unchanged", "disjoint"} {
			b.Run(backend+"/"+mode, func(b *testing.B) {
				db := sqltest.Open(b, backend)
				relaytest.MustCreateServer(b, db, "core-bench")
				relaytest.MustReplaceRoutes(b, db, "core-bench", sets[0]...)
				var elapsed time.Duration
				i := 0
				for b.Loop() {
					if mode == "disjoint" {
						i++
					}
					start := time.Now()
					if err := db.ReplaceRoutes(ctx, "core-bench", sets[i%2]); err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(start)
				}
				b.ReportMetric(float64(b.N*relay.MaxRoutesPerCall)/elapsed.Seconds(), "routes/s")
			})
		}
	}
}
