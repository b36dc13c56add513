package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-uem/custos/policy"
)

var _ policy.Store = (*DB)(nil)

const policyColumns = `p.id, p.kind, p.name, p.description, p.rank, p.platforms, p.settings, p.revision, p.created_at, p.updated_at`

func scanPolicy(s scanner, extra ...any) (*policy.Policy, error) {
	p := new(policy.Policy)
	var settings string
	err := s.Scan(append([]any{&p.ID, &p.Kind, &p.Name, &p.Description, &p.Rank, jsonDest{&p.Platforms},
		&settings, &p.Revision, timeDest{&p.CreatedAt}, timeDest{&p.UpdatedAt}}, extra...)...)
	if p.Platforms == nil {
		p.Platforms = []string{}
	}
	p.Settings = []byte(settings)
	return p, err
}

func scanPolicyRow(s scanner) (*policy.Policy, error) { return scanPolicy(s) }

func platformsJSON(op string, ps []string) (string, error) {
	if ps == nil {
		ps = []string{}
	}
	return jsonText(op, ps)
}

// CreatePolicy implements policy.PolicyStore.
func (db *DB) CreatePolicy(ctx context.Context, p *policy.Policy) error {
	op := "create policy " + p.ID
	platforms, err := platformsJSON(op, p.Platforms)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, op, `INSERT INTO policies (id, kind, name, description, rank, platforms, settings,
		revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.ID, string(p.Kind), p.Name, p.Description, p.Rank, platforms, string(p.Settings), p.Revision,
		micros(p.CreatedAt), micros(p.UpdatedAt))
	return err
}

// Policy implements policy.PolicyStore.
func (db *DB) Policy(ctx context.Context, id string) (*policy.Policy, error) {
	return one(ctx, db.reader(), scanPolicyRow, "policy "+id, `SELECT `+policyColumns+` FROM policies p WHERE p.id = $1`, id)
}

// ListPolicies implements policy.PolicyStore.
func (db *DB) ListPolicies(ctx context.Context, q policy.ListQuery) ([]*policy.Policy, error) {
	var f filter
	f.add("p.id > ?", q.After)
	if q.Kind != "" {
		f.add("p.kind = ?", string(q.Kind))
	}
	query := `SELECT ` + policyColumns + ` FROM policies p` + f.where() +
		` ORDER BY p.id LIMIT ` + f.param(pageSize(q.Limit, policy.MaxPage))
	return list(ctx, db.reader(), scanPolicyRow, "list policies", query, f.args...)
}

// UpdatePolicy implements policy.PolicyStore. The revision is computed by
// the UPDATE itself from the row it changes, so two concurrent updates of
// the settings bump it twice. Settings are compared as stored text, which
// works because the service stores them in canonical form.
func (db *DB) UpdatePolicy(ctx context.Context, p *policy.Policy) error {
	op := "update policy " + p.ID
	platforms, err := platformsJSON(op, p.Platforms)
	if err != nil {
		return err
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		rev, err := one(ctx, r, scanNestingCount, op, `UPDATE policies SET name = $2, description = $3, rank = $4,
			revision = CASE WHEN platforms <> $5 OR settings <> $6 THEN revision + 1 ELSE revision END,
			platforms = $5, settings = $6, updated_at = $7 WHERE id = $1 RETURNING revision`,
			p.ID, p.Name, p.Description, p.Rank, platforms, string(p.Settings), micros(p.UpdatedAt))
		if err == nil {
			p.Revision = rev
		}
		return err
	})
}

// DeletePolicy implements policy.PolicyStore; assignments and item states
// go with it (ON DELETE CASCADE).
func (db *DB) DeletePolicy(ctx context.Context, id string) error {
	return db.execOne(ctx, "delete policy "+id, `DELETE FROM policies WHERE id = $1`, id)
}

// assignmentTable names the table of a target kind, and its target column.
func assignmentTable(kind string) (table, column string, ok bool) {
	switch kind {
	case policy.TargetUser:
		return "policy_users", "user_id", true
	case policy.TargetGroup:
		return "policy_groups", "group_id", true
	}
	return "", "", false
}

// Assign implements policy.AssignmentStore; the foreign keys report a
// missing policy or target.
func (db *DB) Assign(ctx context.Context, a policy.Assignment) error {
	op := "assign policy " + a.PolicyID + " to " + a.TargetKind + " " + a.TargetID
	table, column, ok := assignmentTable(a.TargetKind)
	if !ok {
		return notFound(op)
	}
	_, err := db.exec(ctx, op, `INSERT INTO `+table+` (policy_id, `+column+`, created_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, a.PolicyID, a.TargetID, micros(a.CreatedAt))
	return err
}

// Unassign implements policy.AssignmentStore.
func (db *DB) Unassign(ctx context.Context, policyID, targetKind, targetID string) error {
	op := "unassign policy " + policyID + " from " + targetKind + " " + targetID
	table, column, ok := assignmentTable(targetKind)
	if !ok {
		return notFound(op)
	}
	return db.execOne(ctx, op, `DELETE FROM `+table+` WHERE policy_id = $1 AND `+column+` = $2`, policyID, targetID)
}

// Assignments implements policy.AssignmentStore.
func (db *DB) Assignments(ctx context.Context, policyID string) ([]policy.Assignment, error) {
	return list(ctx, db.reader(), func(s scanner) (policy.Assignment, error) {
		var a policy.Assignment
		return a, s.Scan(&a.PolicyID, &a.TargetKind, &a.TargetID, timeDest{&a.CreatedAt})
	}, "assignments of policy "+policyID, `SELECT policy_id, 'user', user_id, created_at FROM policy_users WHERE policy_id = $1
		UNION ALL SELECT policy_id, 'group', group_id, created_at FROM policy_groups WHERE policy_id = $1
		ORDER BY 2 DESC, 3`, policyID)
}

// PoliciesForUser implements policy.AssignmentStore in one statement: the
// direct assignments, and the assignments to every group reaching the
// user (userGroupsCTE). A direct row carries an empty group ID, which sorts
// first.
func (db *DB) PoliciesForUser(ctx context.Context, userID string) ([]policy.Assigned, error) {
	return list(ctx, db.reader(), func(s scanner) (policy.Assigned, error) {
		var a policy.Assigned
		var err error
		a.Policy, err = scanPolicy(s, &a.GroupID)
		return a, err
	}, "policies of user "+userID, `WITH RECURSIVE `+userGroupsCTE+`
		SELECT `+policyColumns+`, '' AS via FROM policy_users a JOIN policies p ON p.id = a.policy_id WHERE a.user_id = $1
		UNION ALL
		SELECT `+policyColumns+`, a.group_id AS via FROM policy_groups a JOIN policies p ON p.id = a.policy_id
			WHERE a.group_id IN (SELECT id FROM up)
		ORDER BY 1, 11`, userID)
}

// reachedDevices selects the enrolled or active devices of the users in
// the CTE "users".
const reachedDevices = `SELECT d.id FROM devices d WHERE d.user_id IN (SELECT id FROM users_reached)
	AND d.state IN ('enrolled', 'active') ORDER BY d.id`

// groupsDownCTE names as "down" the groups $1 (a list given by the query
// that starts it) and every subgroup below them.
const groupsDown = `down (id) AS (
		%s
		UNION
		SELECT s.child_id FROM group_subgroups s JOIN down ON s.parent_id = down.id
	)`

// AffectedDevices implements policy.ReachStore: one statement walks down
// from the groups the policy is assigned to, collects their members and
// the users assigned directly, and selects their devices (by the
// devices_user index).
func (db *DB) AffectedDevices(ctx context.Context, policyID string) ([]string, error) {
	return list(ctx, db.reader(), scanString, "devices reached by policy "+policyID, `WITH RECURSIVE `+
		fmt.Sprintf(groupsDown, `SELECT group_id FROM policy_groups WHERE policy_id = $1`)+`,
		users_reached (id) AS (
			SELECT user_id FROM policy_users WHERE policy_id = $1
			UNION
			SELECT user_id FROM group_members WHERE group_id IN (SELECT id FROM down)
		) `+reachedDevices, policyID)
}

// DevicesOfTargets implements policy.ReachStore.
func (db *DB) DevicesOfTargets(ctx context.Context, targetKind, targetID string) ([]string, error) {
	op := "devices of " + targetKind + " " + targetID
	switch targetKind {
	case policy.TargetUser:
		return list(ctx, db.reader(), scanString, op, `SELECT id FROM devices WHERE user_id = $1
			AND state IN ('enrolled', 'active') ORDER BY id`, targetID)
	case policy.TargetGroup:
		return list(ctx, db.reader(), scanString, op, `WITH RECURSIVE `+
			fmt.Sprintf(groupsDown, `SELECT CAST($1 AS TEXT)`)+`,
			users_reached (id) AS (SELECT user_id FROM group_members WHERE group_id IN (SELECT id FROM down)) `+
			reachedDevices, targetID)
	}
	return nil, notFound(op)
}

// SaveItemStates implements policy.StatusStore. The report row is written
// only for a device that is enrolled or active; when none was written the
// whole write is rolled back as errs.ErrNotFound. A state of a deleted
// policy is skipped by the EXISTS condition instead of failing the foreign
// key, so one stale item cannot lose the rest of a report.
func (db *DB) SaveItemStates(ctx context.Context, deviceID, version string, states []policy.ItemState, now time.Time) error {
	op := "save item states of device " + deviceID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		n, err := exec(ctx, r, op, `INSERT INTO device_policy_reports (device_id, version, reported_at)
			SELECT id, CAST($2 AS TEXT), CAST($3 AS BIGINT) FROM devices WHERE id = $1 AND state IN ('enrolled', 'active')
			ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, reported_at = excluded.reported_at`,
			deviceID, version, micros(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound(op)
		}
		for _, st := range states {
			if _, err := exec(ctx, r, op, `INSERT INTO device_policy_states (device_id, policy_id, revision, status, error, at)
				SELECT CAST($1 AS TEXT), id, CAST($3 AS INTEGER), CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS BIGINT) FROM policies WHERE id = $2
				ON CONFLICT (device_id, policy_id) DO UPDATE SET revision = excluded.revision, status = excluded.status,
					error = excluded.error, at = excluded.at`,
				deviceID, st.ID, st.Revision, st.Status, st.Error, micros(st.At)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ItemStates implements policy.StatusStore.
func (db *DB) ItemStates(ctx context.Context, deviceID string) (string, []policy.ItemState, error) {
	op := "item states of device " + deviceID
	// One statement, so the version and the states come from one snapshot:
	// the report row joined to its states, or alone when it has none.
	var version string
	rows, err := list(ctx, db.reader(), func(s scanner) (policy.ItemState, error) {
		var st policy.ItemState
		var at *time.Time
		err := s.Scan(&version, textDest{&st.ID}, nullIntDest{&st.Revision}, textDest{&st.Status}, textDest{&st.Error}, nullTimeDest{&at})
		if at != nil {
			st.At = *at
		}
		return st, err
	}, op, `SELECT r.version, s.policy_id, s.revision, s.status, s.error, s.at FROM device_policy_reports r
		LEFT JOIN device_policy_states s ON s.device_id = r.device_id WHERE r.device_id = $1 ORDER BY s.policy_id`, deviceID)
	if err != nil {
		return "", nil, err
	}
	states := rows[:0]
	for _, st := range rows {
		if st.ID != "" {
			states = append(states, st)
		}
	}
	return version, states, nil
}

// nullIntDest scans a nullable integer, NULL becoming 0.
type nullIntDest struct{ p *int }

func (d nullIntDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.p = 0
	case int64:
		*d.p = int(v)
	default:
		return fmt.Errorf("integer: got %T", src)
	}
	return nil
}
