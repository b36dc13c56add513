package sqlstore

import (
	"context"
	"fmt"

	"github.com/custos-uem/custos/user"
)

var _ user.NestingStore = (*DB)(nil)

// userGroupsCTE names as "up" every group that reaches user $1: the groups
// it is a member of, then, repeatedly, the groups containing one already
// found. UNION (not UNION ALL) drops repeats, so a diamond is walked once.
const userGroupsCTE = `up (id) AS (
		SELECT group_id FROM group_members WHERE user_id = $1
		UNION
		SELECT s.parent_id FROM group_subgroups s JOIN up ON s.child_id = up.id
	)`

// AddSubgroup implements user.NestingStore. The cycle check and the insert
// share one transaction. On PostgreSQL two transactions under READ
// COMMITTED could each check before the other inserts and together close a
// cycle (A→B and B→A, or a longer ring made of edges between different
// groups, which locking the two groups' rows would not catch), so the
// transaction first takes an EXCLUSIVE lock on group_subgroups: nesting
// changes run one at a time (they are rare administrator actions) while
// readers go on. Its next statement sees every nesting committed before.
// On SQLite the single writer already runs writes one at a time.
func (db *DB) AddSubgroup(ctx context.Context, parentID, childID string) error {
	op := "add subgroup " + childID + " to group " + parentID
	if parentID == childID {
		return fmt.Errorf("sqlstore: %s: %w", op, user.ErrCycle)
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if db.backend == Postgres {
			if _, err := r.tx.ExecContext(ctx, `LOCK TABLE group_subgroups IN EXCLUSIVE MODE`); err != nil {
				return dbErr(op, err)
			}
		}
		// Does child contain parent already? Walk down from child.
		n, err := one(ctx, r, scanNestingCount, op, `WITH RECURSIVE down (id) AS (
				SELECT CAST($1 AS TEXT)
				UNION
				SELECT s.child_id FROM group_subgroups s JOIN down ON s.parent_id = down.id
			) SELECT count(*) FROM down WHERE id = $2`, childID, parentID)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("sqlstore: %s: %w", op, user.ErrCycle)
		}
		_, err = exec(ctx, r, op, `INSERT INTO group_subgroups (parent_id, child_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, parentID, childID)
		return err
	})
}

func scanNestingCount(s scanner) (int, error) {
	var v int
	return v, s.Scan(&v)
}

// RemoveSubgroup implements user.NestingStore. Removing an edge cannot make
// a cycle, so it needs no lock.
func (db *DB) RemoveSubgroup(ctx context.Context, parentID, childID string) error {
	return db.execOne(ctx, "remove subgroup "+childID+" from group "+parentID,
		`DELETE FROM group_subgroups WHERE parent_id = $1 AND child_id = $2`, parentID, childID)
}

// Subgroups implements user.NestingStore.
func (db *DB) Subgroups(ctx context.Context, parentID string) ([]*user.Group, error) {
	return list(ctx, db.reader(), scanGroup, "subgroups of group "+parentID, `SELECT `+groupColumns+` FROM groups
		WHERE id IN (SELECT child_id FROM group_subgroups WHERE parent_id = $1) ORDER BY id`, parentID)
}

// UserGroupsAll implements user.NestingStore.
func (db *DB) UserGroupsAll(ctx context.Context, userID string) ([]*user.Group, error) {
	return list(ctx, db.reader(), scanGroup, "all groups of user "+userID, `WITH RECURSIVE `+userGroupsCTE+`
		SELECT `+groupColumns+` FROM groups WHERE id IN (SELECT id FROM up) ORDER BY id`, userID)
}
