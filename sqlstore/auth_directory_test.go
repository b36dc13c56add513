package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// TestDirectoryAdminStore: administrators tied to a directory entry are
// found by it and updated only as such; the tie is unique.
func TestDirectoryAdminStore(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, backend)
			now := time.Now().UTC().Truncate(time.Microsecond)
			local := &auth.Admin{ID: "a-local", Username: "local", Role: auth.RoleSecurityAdmin, CreatedAt: now}
			dir := &auth.Admin{ID: "a-dir", Username: "ada", Role: auth.RoleHelpDesk, CreatedAt: now, ExternalID: "entry-1"}
			for _, a := range []*auth.Admin{local, dir} {
				if err := db.CreateAdmin(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.AdminByExternalID(ctx, "entry-2"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("fail/unknown entry: %v", err)
			}
			if err := db.CreateAdmin(ctx, &auth.Admin{ID: "a-dup", Username: "ada2", Role: auth.RoleHelpDesk, CreatedAt: now, ExternalID: "entry-1"}); !errors.Is(err, errs.ErrConflict) {
				t.Fatalf("fail/two administrators for one entry: %v", err)
			}
			local.Role = auth.RoleJuniorHelpDesk
			if err := db.UpdateDirectoryAdmin(ctx, local); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("fail/a local administrator updated as a directory one: %v", err)
			}
			got, err := db.AdminByExternalID(ctx, "entry-1")
			if err != nil || got.ID != dir.ID || got.ExternalID != "entry-1" {
				t.Fatalf("ok/by entry: %+v %v", got, err)
			}
			got.Role, got.ScopeGroups, got.DisplayName = auth.RoleEnterpriseAdmin, []string{"g1"}, "Ada L."
			if err := db.UpdateDirectoryAdmin(ctx, got); err != nil {
				t.Fatal(err)
			}
			again, _ := db.Admin(ctx, dir.ID)
			if again.Role != auth.RoleEnterpriseAdmin || len(again.ScopeGroups) != 1 || again.DisplayName != "Ada L." {
				t.Fatalf("ok/updated: %+v", again)
			}
			if l, _ := db.Admin(ctx, local.ID); l.Role != auth.RoleSecurityAdmin || l.ExternalID != "" {
				t.Fatalf("the local administrator changed: %+v", l)
			}
		})
	}
}
