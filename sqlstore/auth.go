package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
)

var (
	_ auth.AdminStore = (*DB)(nil)
	_ auth.TokenStore = (*DB)(nil)
	_ auth.ScopeStore = (*DB)(nil)
)

const adminColumns = `id, username, display_name, role, scope_groups, created_at, external_id`

func scanAdmin(s scanner) (*auth.Admin, error) {
	a := new(auth.Admin)
	if err := s.Scan(&a.ID, &a.Username, &a.DisplayName, &a.Role, jsonDest{&a.ScopeGroups}, timeDest{&a.CreatedAt}, textDest{&a.ExternalID}); err != nil {
		return nil, err
	}
	if len(a.ScopeGroups) == 0 {
		a.ScopeGroups = nil // '[]': unscoped, read back as the zero value
	}
	return a, nil
}

// CreateAdmin implements auth.AdminStore. A custom role is checked (and,
// on PostgreSQL, its row locked against DeleteRole) in the transaction of
// the insert.
func (db *DB) CreateAdmin(ctx context.Context, a *auth.Admin) error {
	op := "create admin " + a.ID
	scope := a.ScopeGroups
	if scope == nil {
		scope = []string{}
	}
	scopeJSON, err := jsonText(op, scope)
	if err != nil {
		return err
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := db.referenceRole(ctx, r, op, a.Role); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO admins (`+adminColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, a.Username, a.DisplayName, a.Role, scopeJSON, micros(a.CreatedAt), nullText(a.ExternalID))
		return err
	})
}

// AdminByExternalID implements auth.DirectoryAdminStore.
func (db *DB) AdminByExternalID(ctx context.Context, externalID string) (*auth.Admin, error) {
	return one(ctx, db.reader(), scanAdmin, "admin of directory entry", `SELECT `+adminColumns+` FROM admins WHERE external_id = $1`, externalID)
}

// UpdateDirectoryAdmin implements auth.DirectoryAdminStore.
func (db *DB) UpdateDirectoryAdmin(ctx context.Context, a *auth.Admin) error {
	op := "update directory admin " + a.ID
	scope := a.ScopeGroups
	if scope == nil {
		scope = []string{}
	}
	scopeJSON, err := jsonText(op, scope)
	if err != nil {
		return err
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := db.referenceRole(ctx, r, op, a.Role); err != nil {
			return err
		}
		n, err := exec(ctx, r, op, `UPDATE admins SET display_name = $2, role = $3, scope_groups = $4
			WHERE id = $1 AND external_id IS NOT NULL`, a.ID, a.DisplayName, a.Role, scopeJSON)
		if err == nil && n == 0 {
			return fmt.Errorf("%s: %w", op, errs.ErrNotFound)
		}
		return err
	})
}

// Admin implements auth.AdminStore.
func (db *DB) Admin(ctx context.Context, id string) (*auth.Admin, error) {
	return one(ctx, db.reader(), scanAdmin, "admin "+id, `SELECT `+adminColumns+` FROM admins WHERE id = $1`, id)
}

// ListAdmins implements auth.AdminStore.
func (db *DB) ListAdmins(ctx context.Context) ([]*auth.Admin, error) {
	return list(ctx, db.reader(), scanAdmin, "list admins", `SELECT `+adminColumns+` FROM admins ORDER BY id`)
}

const tokenColumns = `id, admin_id, name, hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(s scanner) (*auth.Token, error) {
	t := new(auth.Token)
	return t, s.Scan(&t.ID, &t.AdminID, &t.Name, &t.Hash, timeDest{&t.CreatedAt}, nullTimeDest{&t.ExpiresAt},
		nullTimeDest{&t.LastUsedAt}, nullTimeDest{&t.RevokedAt})
}

// CreateToken implements auth.TokenStore. A token of an administrator that
// does not exist is errs.ErrNotFound; a hash that is already stored (which
// 256 random bits make a bug, not chance) is errs.ErrConflict.
func (db *DB) CreateToken(ctx context.Context, t *auth.Token) error {
	_, err := db.exec(ctx, "create token "+t.ID, `INSERT INTO api_tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.ID, t.AdminID, t.Name, t.Hash, micros(t.CreatedAt),
		nullMicros(t.ExpiresAt), nullMicros(t.LastUsedAt), nullMicros(t.RevokedAt))
	return err
}

// TokenByHash implements auth.TokenStore.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (*auth.Token, error) {
	return one(ctx, db.reader(), scanToken, "token by hash", `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = $1`, hash)
}

// ListTokens implements auth.TokenStore.
func (db *DB) ListTokens(ctx context.Context) ([]*auth.Token, error) {
	return list(ctx, db.reader(), scanToken, "list tokens", `SELECT `+tokenColumns+` FROM api_tokens ORDER BY id`)
}

// RevokeToken implements auth.TokenStore.
func (db *DB) RevokeToken(ctx context.Context, id string, now time.Time) error {
	return db.execOne(ctx, "revoke token "+id,
		`UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, micros(now))
}

// TouchToken implements auth.TokenStore.
func (db *DB) TouchToken(ctx context.Context, id string, now time.Time) error {
	_, err := db.exec(ctx, "touch token "+id, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, id, micros(now))
	return err
}

// textSet binds ids as one parameter of f and returns the condition
// "column is one of them": an array on PostgreSQL, a JSON array walked by
// json_each on SQLite, so that the statement text does not vary with the
// number of IDs (see idSet).
func (db *DB) textSet(f *filter, column string, ids []string) (string, error) {
	if db.backend == Postgres {
		return column + ` = ANY(` + f.param(ids) + `::text[])`, nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return "", err
	}
	return column + ` IN (SELECT value FROM json_each(` + f.param(string(b)) + `))`, nil
}

// scopeUsers starts f with the scope's groups and returns a WITH clause
// naming as "scope_users" the users who are members of one of them or of a
// subgroup at any depth. UNION drops repeats, so a diamond is walked once
// and a cycle (which AddSubgroup prevents anyway) would end.
func (db *DB) scopeUsers(f *filter, groups []string) (string, error) {
	cond, err := db.textSet(f, "id", groups)
	if err != nil {
		return "", err
	}
	return `WITH RECURSIVE scope_groups (id) AS (
		SELECT id FROM groups WHERE ` + cond + `
		UNION
		SELECT s.child_id FROM group_subgroups s JOIN scope_groups ON s.parent_id = scope_groups.id
	), scope_users (id) AS (
		SELECT DISTINCT user_id FROM group_members WHERE group_id IN (SELECT id FROM scope_groups)
	) `, nil
}

// UserInScope implements auth.ScopeStore.
func (db *DB) UserInScope(ctx context.Context, groups []string, userID string) (bool, error) {
	op := "user " + userID + " in scope"
	var f filter
	with, err := db.scopeUsers(&f, groups)
	if err != nil {
		return false, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	n, err := one(ctx, db.reader(), scanNestingCount, op, with+`SELECT count(*) FROM scope_users WHERE id = `+f.param(userID), f.args...)
	return n > 0, err
}

// ScopedDevices implements auth.ScopeStore.
func (db *DB) ScopedDevices(ctx context.Context, groups []string, q device.Query) ([]*device.Device, error) {
	op := "list scoped devices"
	var f filter
	with, err := db.scopeUsers(&f, groups)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	f.conds = append(f.conds, `user_id IN (SELECT id FROM scope_users)`)
	f.add("id > ?", q.After)
	if q.UserID != "" {
		f.add("user_id = ?", q.UserID)
	}
	if q.HardwareID != "" {
		f.add("hardware_id = ?", q.HardwareID)
	}
	if q.State != "" {
		f.add("state = ?", string(q.State))
	}
	query := with + `SELECT ` + deviceColumns + ` FROM devices` + f.where() +
		` ORDER BY id LIMIT ` + f.param(pageSize(q.Limit, device.MaxPage))
	return list(ctx, db.reader(), scanDevice, op, query, f.args...)
}

// DevicesInScope implements auth.ScopeStore.
func (db *DB) DevicesInScope(ctx context.Context, groups []string, ids []string) ([]string, error) {
	op := fmt.Sprintf("%d devices in scope", len(ids))
	var f filter
	with, err := db.scopeUsers(&f, groups)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	cond, err := db.textSet(&f, "id", ids)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	return list(ctx, db.reader(), scanString, op, with+`SELECT id FROM devices WHERE `+cond+
		` AND user_id IN (SELECT id FROM scope_users)`, f.args...)
}
