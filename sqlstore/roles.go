package sqlstore

import (
	"context"
	"fmt"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
)

var (
	_ auth.RoleStore        = (*DB)(nil)
	_ auth.RoleBindingStore = (*DB)(nil)
)

// Roles and the references to them (admins.role, role_group_bindings) have
// no foreign key: built-in roles have no row. Instead, on PostgreSQL, a
// writer that adds a reference to a custom role locks its row FOR SHARE
// first, and DeleteRole locks it FOR UPDATE before it counts the
// references: whichever comes second waits for the first to commit, and
// then (READ COMMITTED: a new snapshot per statement) sees what it did. On
// SQLite the single writer already runs them one at a time.

const roleColumns = `id, name, description, permissions, created_at, updated_at`

func scanRole(s scanner) (*auth.Role, error) {
	r := new(auth.Role)
	if err := s.Scan(&r.ID, &r.Name, &r.Description, jsonDest{&r.Permissions}, timeDest{&r.CreatedAt}, timeDest{&r.UpdatedAt}); err != nil {
		return nil, err
	}
	if r.Permissions == nil {
		r.Permissions = []auth.Permission{}
	}
	return r, nil
}

func rolePermissions(op string, r *auth.Role) (string, error) {
	ps := r.Permissions
	if ps == nil {
		ps = []auth.Permission{}
	}
	return jsonText(op, ps)
}

// CreateRole implements auth.RoleStore.
func (db *DB) CreateRole(ctx context.Context, r *auth.Role) error {
	op := "create role " + r.ID
	perms, err := rolePermissions(op, r)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, op, `INSERT INTO roles (`+roleColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.ID, r.Name, r.Description, perms, micros(r.CreatedAt), micros(r.UpdatedAt))
	return err
}

// Role implements auth.RoleStore.
func (db *DB) Role(ctx context.Context, id string) (*auth.Role, error) {
	return one(ctx, db.reader(), scanRole, "role "+id, `SELECT `+roleColumns+` FROM roles WHERE id = $1`, id)
}

// ListRoles implements auth.RoleStore.
func (db *DB) ListRoles(ctx context.Context) ([]*auth.Role, error) {
	return list(ctx, db.reader(), scanRole, "list roles", `SELECT `+roleColumns+` FROM roles ORDER BY lower(name), id`)
}

// UpdateRole implements auth.RoleStore.
func (db *DB) UpdateRole(ctx context.Context, r *auth.Role) error {
	op := "update role " + r.ID
	perms, err := rolePermissions(op, r)
	if err != nil {
		return err
	}
	return db.execOne(ctx, op, `UPDATE roles SET name = $2, description = $3, permissions = $4, updated_at = $5 WHERE id = $1`,
		r.ID, r.Name, r.Description, perms, micros(r.UpdatedAt))
}

// lockRole checks, inside a write transaction, that the custom role id
// exists (errs.ErrNotFound otherwise), locking its row on PostgreSQL in
// mode (FOR SHARE to reference it, FOR UPDATE to delete it).
func (db *DB) lockRole(ctx context.Context, r runner, op, id, mode string) error {
	q := `SELECT count(*) FROM roles WHERE id = $1`
	if db.backend == Postgres {
		q = `SELECT count(*) FROM (SELECT id FROM roles WHERE id = $1 ` + mode + `) AS locked`
	}
	n, err := one(ctx, r, scanNestingCount, op, q, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(op + ": role " + id)
	}
	return nil
}

// referenceRole is lockRole for a writer about to store a reference to the
// role: nothing to check for a built-in role.
func (db *DB) referenceRole(ctx context.Context, r runner, op, id string) error {
	if auth.IsBuiltInRole(id) {
		return nil
	}
	return db.lockRole(ctx, r, op, id, "FOR SHARE")
}

// DeleteRole implements auth.RoleStore.
func (db *DB) DeleteRole(ctx context.Context, id string) error {
	op := "delete role " + id
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := db.lockRole(ctx, r, op, id, "FOR UPDATE"); err != nil {
			return err
		}
		n, err := one(ctx, r, scanNestingCount, op, `SELECT
			(SELECT count(*) FROM admins WHERE role = $1) + (SELECT count(*) FROM role_group_bindings WHERE role_id = $1)`, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("sqlstore: %s: held by %d administrators or bindings: %w", op, n, errs.ErrConflict)
		}
		return execOne(ctx, r, op, `DELETE FROM roles WHERE id = $1`, id)
	})
}

const bindingColumns = `id, role_id, group_external, scope_groups, created_at`

func scanBinding(s scanner) (*auth.RoleBinding, error) {
	b := new(auth.RoleBinding)
	if err := s.Scan(&b.ID, &b.RoleID, &b.Group, jsonDest{&b.ScopeGroups}, timeDest{&b.CreatedAt}); err != nil {
		return nil, err
	}
	if len(b.ScopeGroups) == 0 {
		b.ScopeGroups = nil
	}
	return b, nil
}

// AddRoleBinding implements auth.RoleBindingStore.
func (db *DB) AddRoleBinding(ctx context.Context, b *auth.RoleBinding) error {
	op := "add role binding " + b.ID
	scope := b.ScopeGroups
	if scope == nil {
		scope = []string{}
	}
	scopeJSON, err := jsonText(op, scope)
	if err != nil {
		return err
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := db.referenceRole(ctx, r, op, b.RoleID); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO role_group_bindings (`+bindingColumns+`) VALUES ($1, $2, $3, $4, $5)`,
			b.ID, b.RoleID, b.Group, scopeJSON, micros(b.CreatedAt))
		return err
	})
}

// RoleBindings implements auth.RoleBindingStore.
func (db *DB) RoleBindings(ctx context.Context, roleID string) ([]*auth.RoleBinding, error) {
	return list(ctx, db.reader(), scanBinding, "bindings of role "+roleID,
		`SELECT `+bindingColumns+` FROM role_group_bindings WHERE role_id = $1 ORDER BY id`, roleID)
}

// BindingsForGroups implements auth.RoleBindingStore: one statement,
// whatever the number of groups.
func (db *DB) BindingsForGroups(ctx context.Context, groups []string) ([]*auth.RoleBinding, error) {
	op := fmt.Sprintf("bindings of %d directory groups", len(groups))
	var f filter
	cond, err := db.textSet(&f, "group_external", groups)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	return list(ctx, db.reader(), scanBinding, op, `SELECT `+bindingColumns+` FROM role_group_bindings WHERE `+cond+` ORDER BY id`, f.args...)
}

// RemoveRoleBinding implements auth.RoleBindingStore.
func (db *DB) RemoveRoleBinding(ctx context.Context, roleID, id string) error {
	return db.execOne(ctx, "remove role binding "+id, `DELETE FROM role_group_bindings WHERE id = $1 AND role_id = $2`, id, roleID)
}
