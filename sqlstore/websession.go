package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-uem/custos/websession"
)

var _ websession.Store = (*DB)(nil)

const webCredentialColumns = `realm, principal_id, hash, updated_at`

func scanWebCredential(s scanner) (*websession.Credential, error) {
	c := new(websession.Credential)
	return c, s.Scan(&c.Realm, &c.PrincipalID, &c.Hash, timeDest{&c.UpdatedAt})
}

// Credential implements websession.CredentialStore.
func (db *DB) WebCredential(ctx context.Context, realm websession.Realm, principalID string) (*websession.Credential, error) {
	return one(ctx, db.reader(), scanWebCredential, fmt.Sprintf("web credential %s/%s", realm, principalID),
		`SELECT `+webCredentialColumns+` FROM web_credentials WHERE realm = $1 AND principal_id = $2`, string(realm), principalID)
}

// SetWebCredential implements websession.CredentialStore: an upsert and the
// lockout's removal in one write.
func (db *DB) SetWebCredential(ctx context.Context, c *websession.Credential) error {
	op := fmt.Sprintf("set web credential %s/%s", c.Realm, c.PrincipalID)
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, `INSERT INTO web_credentials (`+webCredentialColumns+`) VALUES ($1, $2, $3, $4)
			ON CONFLICT (realm, principal_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at`,
			string(c.Realm), c.PrincipalID, c.Hash, micros(c.UpdatedAt)); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `DELETE FROM web_signin_failures WHERE realm = $1 AND principal_id = $2`,
			string(c.Realm), c.PrincipalID)
		return err
	})
}

// RehashWebCredential implements websession.CredentialStore; the condition on
// the old hash is part of the UPDATE, so a concurrent SetWebCredential wins.
func (db *DB) RehashWebCredential(ctx context.Context, realm websession.Realm, principalID, oldHash, newHash string, now time.Time) error {
	return db.execOne(ctx, fmt.Sprintf("rehash web credential %s/%s", realm, principalID),
		`UPDATE web_credentials SET hash = $4, updated_at = $5 WHERE realm = $1 AND principal_id = $2 AND hash = $3`,
		string(realm), principalID, oldHash, newHash, micros(now))
}

func scanLockout(s scanner) (websession.Lockout, error) {
	var l websession.Lockout
	return l, s.Scan(&l.Failures, &l.Locks, nullTimeDest{&l.LockedUntil}, timeDest{&l.LastFailureAt})
}

// Lockout implements websession.FailureStore.
func (db *DB) WebLockout(ctx context.Context, realm websession.Realm, principalID string) (websession.Lockout, error) {
	rows, err := list(ctx, db.reader(), scanLockout, fmt.Sprintf("web lockout %s/%s", realm, principalID),
		`SELECT failures, locks, locked_until, last_failure_at FROM web_signin_failures WHERE realm = $1 AND principal_id = $2`,
		string(realm), principalID)
	if err != nil || len(rows) == 0 {
		return websession.Lockout{}, err
	}
	return rows[0], nil
}

// RecordWebFailure implements websession.FailureStore. The upsert takes the
// row's lock on PostgreSQL (and SQLite has one writer), so concurrent
// failures count one after the other; the lock, when the count reaches
// the limit, is set in the same transaction.
func (db *DB) RecordWebFailure(ctx context.Context, realm websession.Realm, principalID string, now time.Time, p websession.FailurePolicy) (websession.Lockout, error) {
	op := fmt.Sprintf("record web sign-in failure %s/%s", realm, principalID)
	// A failure more than p.Window after the previous one starts again at
	// one; with no window, restartBefore is older than any failure.
	restartBefore := int64(-1 << 62)
	if p.Window > 0 {
		restartBefore = micros(now.Add(-p.Window))
	}
	var l websession.Lockout
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		var err error
		l, err = scanLockout(r.row(ctx, `INSERT INTO web_signin_failures (realm, principal_id, failures, locks, locked_until, last_failure_at)
			VALUES ($1, $2, 1, 0, NULL, $3)
			ON CONFLICT (realm, principal_id) DO UPDATE SET
				failures = CASE WHEN web_signin_failures.last_failure_at < $4 THEN 1 ELSE web_signin_failures.failures + 1 END,
				last_failure_at = excluded.last_failure_at
			RETURNING failures, locks, locked_until, last_failure_at`,
			string(realm), principalID, micros(now), restartBefore))
		if err != nil {
			return dbErr(op, err)
		}
		if p.Limit <= 0 || l.Failures < p.Limit {
			return nil
		}
		until := now.Add(p.LockFor(l.Locks + 1))
		l.Failures, l.Locks, l.LockedUntil = 0, l.Locks+1, &until
		_, err = exec(ctx, r, op, `UPDATE web_signin_failures SET failures = 0, locks = $3, locked_until = $4
			WHERE realm = $1 AND principal_id = $2`, string(realm), principalID, l.Locks, micros(until))
		return err
	})
	if err != nil {
		return websession.Lockout{}, err
	}
	return l, nil
}

// ResetWebFailures implements websession.FailureStore.
func (db *DB) ResetWebFailures(ctx context.Context, realm websession.Realm, principalID string) error {
	_, err := db.exec(ctx, fmt.Sprintf("reset web sign-in failures %s/%s", realm, principalID),
		`DELETE FROM web_signin_failures WHERE realm = $1 AND principal_id = $2`, string(realm), principalID)
	return err
}

const webSessionColumns = `id_hash, realm, principal_id, created_at, last_seen_at, expires_at`

func scanWebSession(s scanner) (*websession.Session, error) {
	x := new(websession.Session)
	return x, s.Scan(&x.IDHash, &x.Realm, &x.PrincipalID, timeDest{&x.CreatedAt}, timeDest{&x.LastSeenAt}, timeDest{&x.ExpiresAt})
}

// CreateWebSession implements websession.SessionStore.
func (db *DB) CreateWebSession(ctx context.Context, s *websession.Session) error {
	_, err := db.exec(ctx, "create web session", `INSERT INTO web_sessions (`+webSessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.IDHash, string(s.Realm), s.PrincipalID, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt))
	return err
}

// Session implements websession.SessionStore.
func (db *DB) WebSession(ctx context.Context, idHash []byte) (*websession.Session, error) {
	return one(ctx, db.reader(), scanWebSession, "web session",
		`SELECT `+webSessionColumns+` FROM web_sessions WHERE id_hash = $1`, idHash)
}

// TouchWebSession implements websession.SessionStore. The row is matched
// whether or not last_seen_at changes, so "no such session" is told apart
// from "already later".
func (db *DB) TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error {
	return db.execOne(ctx, "touch web session",
		`UPDATE web_sessions SET last_seen_at = CASE WHEN last_seen_at < $2 THEN $2 ELSE last_seen_at END WHERE id_hash = $1`,
		idHash, micros(at))
}

// DeleteWebSession implements websession.SessionStore.
func (db *DB) DeleteWebSession(ctx context.Context, idHash []byte) error {
	_, err := db.exec(ctx, "delete web session", `DELETE FROM web_sessions WHERE id_hash = $1`, idHash)
	return err
}

// DeleteWebSessions implements websession.SessionStore.
func (db *DB) DeleteWebSessions(ctx context.Context, realm websession.Realm, principalID string) (int, error) {
	n, err := db.exec(ctx, fmt.Sprintf("delete web sessions of %s/%s", realm, principalID),
		`DELETE FROM web_sessions WHERE realm = $1 AND principal_id = $2`, string(realm), principalID)
	return int(n), err
}

// DeleteExpiredWebSessions implements websession.Sweeper. Two statements,
// each on its own index, rather than one with OR.
func (db *DB) DeleteExpiredWebSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		a, err := exec(ctx, r, "delete expired web sessions", `DELETE FROM web_sessions WHERE expires_at <= $1`, micros(now))
		if err != nil {
			return err
		}
		b, err := exec(ctx, r, "delete idle web sessions", `DELETE FROM web_sessions WHERE last_seen_at <= $1`, micros(idleBefore))
		n = a + b
		return err
	})
	return int(n), err
}

// DeleteStaleWebFailures implements websession.Sweeper.
func (db *DB) DeleteStaleWebFailures(ctx context.Context, now, before time.Time) (int, error) {
	n, err := db.exec(ctx, "delete stale web sign-in failures",
		`DELETE FROM web_signin_failures WHERE last_failure_at <= $1 AND (locked_until IS NULL OR locked_until <= $2)`,
		micros(before), micros(now))
	return int(n), err
}
