package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user"
)

var (
	_ user.Store       = (*DB)(nil)
	_ user.GroupStore  = (*DB)(nil)
	_ user.MemberStore = (*DB)(nil)
)

const userColumns = `id, email, username, display_name, source, activation_profile_id,
	failed_activations, activation_locked_until, created_at, updated_at, external_id, directory_missing_since`

func scanUser(s scanner) (*user.User, error) {
	u := new(user.User)
	return u, s.Scan(&u.ID, textDest{&u.Email}, textDest{&u.Username}, &u.DisplayName, &u.Source,
		textDest{&u.ActivationProfileID}, &u.FailedActivations, nullTimeDest{&u.ActivationLockedUntil},
		timeDest{&u.CreatedAt}, timeDest{&u.UpdatedAt}, textDest{&u.ExternalID}, nullTimeDest{&u.DirectoryMissingSince})
}

// CreateUser implements user.Store. An empty email or username is stored as
// none, so several accounts may lack one; an ActivationProfileID naming no
// profile is errs.ErrNotFound. An empty ExternalID is stored as none
// (NULL), so only linked accounts are bound by its uniqueness.
func (db *DB) CreateUser(ctx context.Context, u *user.User) error {
	_, err := db.exec(ctx, "create user "+u.ID, `INSERT INTO users (`+userColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		u.ID, nullText(u.Email), nullText(u.Username), u.DisplayName, u.Source, nullText(u.ActivationProfileID),
		u.FailedActivations, nullMicros(u.ActivationLockedUntil), micros(u.CreatedAt), micros(u.UpdatedAt),
		nullText(u.ExternalID), nullMicros(u.DirectoryMissingSince))
	return err
}

// User implements user.Store.
func (db *DB) User(ctx context.Context, id string) (*user.User, error) {
	return one(ctx, db.reader(), scanUser, "user "+id, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
}

// UserByLogin implements user.Store. The login is lower-cased in Go, not in
// SQL, because SQLite's lower() folds ASCII only. Should one account's
// email equal another's username, the email match wins.
func (db *DB) UserByLogin(ctx context.Context, login string) (*user.User, error) {
	login = strings.ToLower(login)
	if login == "" {
		return nil, notFound("user by empty login")
	}
	return one(ctx, db.reader(), scanUser, "user by login", `SELECT `+userColumns+` FROM users
		WHERE email = $1 OR username = $1 ORDER BY CASE WHEN email = $1 THEN 0 ELSE 1 END LIMIT 1`, login)
}

// ListUsers implements user.Store.
func (db *DB) ListUsers(ctx context.Context, p user.Page) ([]*user.User, error) {
	return list(ctx, db.reader(), scanUser, "list users", `SELECT `+userColumns+` FROM users
		WHERE id > $1 ORDER BY id LIMIT $2`, p.After, pageSize(p.Limit, user.MaxPage))
}

// UpdateUser implements user.Store.
func (db *DB) UpdateUser(ctx context.Context, u *user.User) error {
	return db.execOne(ctx, "update user "+u.ID, `UPDATE users SET email = $2, username = $3,
		display_name = $4, activation_profile_id = $5, updated_at = $6, external_id = $7,
		directory_missing_since = $8 WHERE id = $1`,
		u.ID, nullText(u.Email), nullText(u.Username), u.DisplayName, nullText(u.ActivationProfileID), micros(u.UpdatedAt),
		nullText(u.ExternalID), nullMicros(u.DirectoryMissingSince))
}

// DeleteUser implements user.Store. The contract has the caller remove the
// user's devices first; a user who still has an enrolled or active device
// is refused with errs.ErrConflict, because deleting it would drop a valid
// certificate without ever putting it on the CRL.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	op := "delete user " + id
	return db.write(ctx, func(ctx context.Context, r runner) error {
		n, err := exec(ctx, r, op, `DELETE FROM users WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND state IN ('enrolled', 'active'))`, id)
		if err != nil || n == 1 {
			return err
		}
		if _, err := one(ctx, r, scanString, op, `SELECT id FROM users WHERE id = $1`, id); err != nil {
			return err
		}
		return fmt.Errorf("sqlstore: %s: %w: the user still has enrolled devices", op, errs.ErrConflict)
	})
}

func scanString(s scanner) (string, error) {
	var v string
	return v, s.Scan(&v)
}

const groupColumns = `id, name, description, activation_profile_id, created_at, updated_at, external_id`

func scanGroup(s scanner) (*user.Group, error) {
	g := new(user.Group)
	return g, s.Scan(&g.ID, &g.Name, &g.Description, textDest{&g.ActivationProfileID},
		timeDest{&g.CreatedAt}, timeDest{&g.UpdatedAt}, textDest{&g.ExternalID})
}

// CreateGroup implements user.GroupStore. Names are unique as given (case
// matters), the same on both backends; so are linked ExternalIDs.
func (db *DB) CreateGroup(ctx context.Context, g *user.Group) error {
	_, err := db.exec(ctx, "create group "+g.ID, `INSERT INTO groups (`+groupColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		g.ID, g.Name, g.Description, nullText(g.ActivationProfileID), micros(g.CreatedAt), micros(g.UpdatedAt),
		nullText(g.ExternalID))
	return err
}

// Group implements user.GroupStore.
func (db *DB) Group(ctx context.Context, id string) (*user.Group, error) {
	return one(ctx, db.reader(), scanGroup, "group "+id, `SELECT `+groupColumns+` FROM groups WHERE id = $1`, id)
}

// ListGroups implements user.GroupStore.
func (db *DB) ListGroups(ctx context.Context, p user.Page) ([]*user.Group, error) {
	return list(ctx, db.reader(), scanGroup, "list groups", `SELECT `+groupColumns+` FROM groups
		WHERE id > $1 ORDER BY id LIMIT $2`, p.After, pageSize(p.Limit, user.MaxPage))
}

// UpdateGroup implements user.GroupStore.
func (db *DB) UpdateGroup(ctx context.Context, g *user.Group) error {
	return db.execOne(ctx, "update group "+g.ID, `UPDATE groups SET name = $2, description = $3,
		activation_profile_id = $4, updated_at = $5, external_id = $6 WHERE id = $1`,
		g.ID, g.Name, g.Description, nullText(g.ActivationProfileID), micros(g.UpdatedAt), nullText(g.ExternalID))
}

// DeleteGroup implements user.GroupStore; memberships go with the group
// (ON DELETE CASCADE).
func (db *DB) DeleteGroup(ctx context.Context, id string) error {
	return db.execOne(ctx, "delete group "+id, `DELETE FROM groups WHERE id = $1`, id)
}

// AddMember implements user.MemberStore; the foreign keys report a missing
// group or user.
func (db *DB) AddMember(ctx context.Context, groupID, userID string) error {
	_, err := db.exec(ctx, "add user "+userID+" to group "+groupID,
		`INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, groupID, userID)
	return err
}

// RemoveMember implements user.MemberStore.
func (db *DB) RemoveMember(ctx context.Context, groupID, userID string) error {
	return db.execOne(ctx, "remove user "+userID+" from group "+groupID,
		`DELETE FROM group_members WHERE group_id = $1 AND user_id = $2`, groupID, userID)
}

// Members implements user.MemberStore; an unknown group has no members.
func (db *DB) Members(ctx context.Context, groupID string) ([]*user.User, error) {
	return list(ctx, db.reader(), scanUser, "members of group "+groupID, `SELECT `+userColumns+` FROM users
		WHERE id IN (SELECT user_id FROM group_members WHERE group_id = $1) ORDER BY id`, groupID)
}

// GroupsOf implements user.MemberStore; an unknown user is in no group.
func (db *DB) GroupsOf(ctx context.Context, userID string) ([]*user.Group, error) {
	return list(ctx, db.reader(), scanGroup, "groups of user "+userID, `SELECT `+groupColumns+` FROM groups
		WHERE id IN (SELECT group_id FROM group_members WHERE user_id = $1) ORDER BY id`, userID)
}

// UserEmails returns every user's email address (users without one are
// left out), for the relay's activation discovery.
func (db *DB) UserEmails(ctx context.Context) ([]string, error) {
	return list(ctx, db.reader(), func(s scanner) (string, error) {
		var e string
		return e, s.Scan(&e)
	}, "list user emails", `SELECT email FROM users WHERE email IS NOT NULL AND email <> '' ORDER BY email`)
}
