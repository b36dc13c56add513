package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-uem/custos/platform/windows/mde"
)

var _ mde.TokenStore = (*DB)(nil)

const federatedTokenColumns = `hash, login, sealed_password, created_at, expires_at, used_at`

func scanFederatedToken(s scanner) (*mde.FederatedToken, error) {
	t := new(mde.FederatedToken)
	return t, s.Scan(&t.Hash, &t.Login, &t.SealedPassword, timeDest{&t.CreatedAt}, timeDest{&t.ExpiresAt}, nullTimeDest{&t.UsedAt})
}

// CreateFederatedToken implements mde.TokenStore.
func (db *DB) CreateFederatedToken(ctx context.Context, t *mde.FederatedToken) error {
	op := "create federated token"
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, `DELETE FROM windows_federated_tokens WHERE expires_at < $1`, micros(t.CreatedAt)); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO windows_federated_tokens (`+federatedTokenColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			t.Hash, t.Login, t.SealedPassword, micros(t.CreatedAt), micros(t.ExpiresAt), nullMicros(t.UsedAt))
		return err
	})
}

// FederatedToken implements mde.TokenStore.
func (db *DB) FederatedToken(ctx context.Context, hash []byte) (*mde.FederatedToken, error) {
	return one(ctx, db.reader(), scanFederatedToken, "federated token",
		`SELECT `+federatedTokenColumns+` FROM windows_federated_tokens WHERE hash = $1`, hash)
}

// UseFederatedToken implements mde.TokenStore: one UPDATE whose WHERE
// holds the rule, so of concurrent uses exactly one changes the row.
func (db *DB) UseFederatedToken(ctx context.Context, hash []byte, now time.Time) (*mde.FederatedToken, error) {
	op := "use federated token"
	var t *mde.FederatedToken
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		var err error
		t, err = scanFederatedToken(r.row(ctx, `UPDATE windows_federated_tokens SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING `+federatedTokenColumns, hash, micros(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: %s: %w", op, mde.ErrTokenClosed)
		}
		return dbErr(op, err)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}
