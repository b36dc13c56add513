package sqlstore

import (
	"context"
	"time"

	"github.com/custos-uem/custos/auth"
)

var (
	_ auth.AdminStore = (*DB)(nil)
	_ auth.TokenStore = (*DB)(nil)
)

const adminColumns = `id, username, display_name, role, created_at`

func scanAdmin(s scanner) (*auth.Admin, error) {
	a := new(auth.Admin)
	return a, s.Scan(&a.ID, &a.Username, &a.DisplayName, &a.Role, timeDest{&a.CreatedAt})
}

// CreateAdmin implements auth.AdminStore.
func (db *DB) CreateAdmin(ctx context.Context, a *auth.Admin) error {
	_, err := db.exec(ctx, "create admin "+a.ID, `INSERT INTO admins (`+adminColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		a.ID, a.Username, a.DisplayName, a.Role, micros(a.CreatedAt))
	return err
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
