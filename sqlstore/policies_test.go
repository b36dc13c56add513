package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/policy/policytest"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

func TestPolicyStores(t *testing.T) { forEachBackend(t, policytest.Run) }

// TestPolicyMigrationsIdentical keeps the two dialects of the policies
// migration in step: they may differ only in the byte type.
func TestPolicyMigrationsIdentical(t *testing.T) {
	read := func(backend string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("migrations", backend, "0004_policies.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	lite, pg := read(sqlstore.SQLite), read(sqlstore.Postgres)
	if strings.ReplaceAll(lite, "BLOB", "BYTEA") != pg {
		t.Fatal("migrations/sqlite/0004_policies.sql and migrations/postgres/0004_policies.sql differ beyond BLOB/BYTEA")
	}
}

// BenchmarkAffectedDevices measures the one statement that finds the
// devices a policy reaches: benchUsers users with one device each, in
// benchGroups groups nested three deep under the group the policy is
// assigned to.
func BenchmarkAffectedDevices(b *testing.B) {
	const benchUsers, benchGroups = 20_000, 100
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			db := sqltest.Open(b, backend)
			top := usertest.CreateGroup(b, db, "top")
			groups := make([]string, benchGroups)
			for i := range groups {
				g := usertest.CreateGroup(b, db, fmt.Sprintf("g%d", i))
				groups[i] = g.ID
				parent := top.ID
				if i >= 10 { // g10… sit below g0…g9, which sit below top
					parent = groups[i%10]
				}
				usertest.AddSubgroup(b, db, parent, g.ID)
			}
			var wg sync.WaitGroup
			work := make(chan int)
			for range 32 {
				wg.Go(func() {
					for i := range work {
						u := usertest.CreateUser(b, db, "u")
						usertest.AddMember(b, db, groups[i%benchGroups], u.ID)
						activationtest.Enroll(b, db, u.ID, fmt.Sprintf("hw-%d", i), activationtest.T0)
					}
				})
			}
			for i := range benchUsers {
				work <- i
			}
			close(work)
			wg.Wait()
			p := policytest.CreatePolicy(b, db, "office", policy.WiFi, 1, `{}`)
			policytest.Assign(b, db, p.ID, policy.TargetGroup, top.ID)
			b.ResetTimer()
			for b.Loop() {
				ids, err := db.AffectedDevices(ctx, p.ID)
				if err != nil || len(ids) != benchUsers {
					b.Fatalf("AffectedDevices = %d, %v; want %d", len(ids), err, benchUsers)
				}
			}
		})
	}
}
