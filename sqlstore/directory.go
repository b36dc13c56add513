package sqlstore

import (
	"context"

	"github.com/custos-uem/custos/user"
)

// UserByExternalID implements user.Store. External IDs are compared as
// given (entryUUID and objectGUID strings are produced in one canonical
// form by package directory); an empty one names no user, because local
// accounts store none.
func (db *DB) UserByExternalID(ctx context.Context, externalID string) (*user.User, error) {
	if externalID == "" {
		return nil, notFound("user by empty external ID")
	}
	return one(ctx, db.reader(), scanUser, "user by external ID", `SELECT `+userColumns+` FROM users
		WHERE external_id = $1`, externalID)
}

// GroupByExternalID implements user.GroupStore, with the same rules as
// UserByExternalID.
func (db *DB) GroupByExternalID(ctx context.Context, externalID string) (*user.Group, error) {
	if externalID == "" {
		return nil, notFound("group by empty external ID")
	}
	return one(ctx, db.reader(), scanGroup, "group by external ID", `SELECT `+groupColumns+` FROM groups
		WHERE external_id = $1`, externalID)
}
