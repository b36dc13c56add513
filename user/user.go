// Package user owns the people Custos manages devices for: user accounts
// (local, or from the company directory) and the groups they belong to.
//
// Logins (email and username) are unique case-insensitively and stored in
// lower case. The Store contracts below are implemented by sqlstore and
// checked against both database backends by usertest.
package user

import (
	"context"
	"time"

	"github.com/custos-uem/custos/errs"
)

// Source says where an account comes from.
const (
	SourceLocal = "local"
	// SourceDirectory marks an account created and kept up to date by the
	// company-directory sync (package directory). Its ExternalID links it
	// to the directory entry.
	SourceDirectory = "directory"
)

// User is a person who may own devices.
type User struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Source      string `json:"source"`
	// ActivationProfileID is the activation profile assigned to the user
	// directly; empty when none is (groups or the default then decide).
	ActivationProfileID string `json:"activation_profile_id,omitempty"`
	// FailedActivations counts consecutive failed activation attempts;
	// ActivationLockedUntil is set when they reach the limit.
	FailedActivations     int        `json:"failed_activations"`
	ActivationLockedUntil *time.Time `json:"activation_locked_until,omitempty"`
	CreatedAt             time.Time  `json:"created_at"`
	UpdatedAt             time.Time  `json:"updated_at"`
	// ExternalID is the company directory's stable identifier of the
	// account (entryUUID or objectGUID), unique when set; empty for local
	// accounts. The DN is not used: it changes on a rename or move.
	ExternalID string `json:"external_id,omitempty"`
	// DirectoryMissingSince is set when the directory sync no longer
	// finds the account, and cleared when it reappears. Such a user is
	// kept, with their devices, until an administrator deletes them.
	DirectoryMissingSince *time.Time `json:"directory_missing_since,omitempty"`
}

// Group is a named set of users. Groups carry assignments (an activation
// profile now; policies and profiles later) to all their members.
type Group struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	Description         string    `json:"description"`
	ActivationProfileID string    `json:"activation_profile_id,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	// ExternalID links the group to a company-directory group (its
	// entryUUID or objectGUID), unique when set; empty for local groups.
	// The directory sync then keeps the group's directory members in step;
	// what is assigned to the group (activation profile, policies) stays.
	ExternalID string `json:"external_id,omitempty"`
}

// Page selects a slice of an ordered listing: items whose ID sorts after
// After, at most Limit of them (a store caps Limit at MaxPage).
type Page struct {
	After string
	Limit int
}

// MaxPage caps the items returned by one listing call.
const MaxPage = 500

// Store keeps users.
type Store interface {
	// CreateUser inserts u (ID, timestamps and lower-cased logins set by the
	// caller). A duplicate email, username or non-empty ExternalID returns
	// errs.ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	// User returns the user with id, or errs.ErrNotFound.
	User(ctx context.Context, id string) (*User, error)
	// UserByLogin returns the user whose email or username equals login
	// (compared in lower case), or errs.ErrNotFound.
	UserByLogin(ctx context.Context, login string) (*User, error)
	// ListUsers returns users in ID order (IDs are time-ordered UUIDv7).
	ListUsers(ctx context.Context, p Page) ([]*User, error)
	// UpdateUser stores the mutable fields of u (email, username, display
	// name, activation profile, UpdatedAt, ExternalID, DirectoryMissingSince).
	// errs.ErrNotFound if u.ID does not exist; errs.ErrConflict on a
	// duplicate login or external ID.
	UpdateUser(ctx context.Context, u *User) error
	// UserByExternalID returns the user linked to the directory entry with
	// externalID, or errs.ErrNotFound (always for an empty one).
	UserByExternalID(ctx context.Context, externalID string) (*User, error)
	// DeleteUser removes the user together with their activation passwords,
	// enrollment sessions, group memberships and device history; the caller
	// must have removed (and so revoked) their devices first. errs.ErrNotFound.
	// A user who still has an enrolled or active device is kept and
	// errs.ErrConflict returned, so no valid certificate outlives its owner.
	DeleteUser(ctx context.Context, id string) error
}

// GroupStore keeps groups and their members.
type GroupStore interface {
	// CreateGroup inserts g; a duplicate name or non-empty ExternalID
	// returns errs.ErrConflict.
	CreateGroup(ctx context.Context, g *Group) error
	// Group returns the group with id, or errs.ErrNotFound.
	Group(ctx context.Context, id string) (*Group, error)
	// GroupByExternalID returns the group linked to the directory group
	// with externalID, or errs.ErrNotFound (always for an empty one).
	GroupByExternalID(ctx context.Context, externalID string) (*Group, error)
	// ListGroups returns groups in ID order.
	ListGroups(ctx context.Context, p Page) ([]*Group, error)
	// UpdateGroup stores name, description, activation profile, ExternalID
	// and UpdatedAt. errs.ErrNotFound; errs.ErrConflict on a duplicate name
	// or external ID.
	UpdateGroup(ctx context.Context, g *Group) error
	// DeleteGroup removes the group and its memberships. errs.ErrNotFound.
	DeleteGroup(ctx context.Context, id string) error
}

// MemberStore keeps group membership.
type MemberStore interface {
	// AddMember adds the user to the group; adding twice is not an error.
	// errs.ErrNotFound if either does not exist.
	AddMember(ctx context.Context, groupID, userID string) error
	// RemoveMember removes the user from the group. errs.ErrNotFound if the
	// user was not a member.
	RemoveMember(ctx context.Context, groupID, userID string) error
	// Members returns the users of a group in ID order.
	Members(ctx context.Context, groupID string) ([]*User, error)
	// GroupsOf returns the groups the user belongs to, in ID order.
	GroupsOf(ctx context.Context, userID string) ([]*Group, error)
}

// ErrCycle is returned by NestingStore.AddSubgroup (and the Service) when
// the nesting asked for would make a group contain itself.
var ErrCycle = errs.E(errs.Invalid, "group_cycle", "a group cannot contain itself, directly or through its subgroups")

// NestingStore keeps groups inside groups: the members of a subgroup are
// members of every group that contains it, at any depth. Everything
// assigned to a group (policies, profiles) reaches them.
type NestingStore interface {
	// AddSubgroup makes child a subgroup of parent; adding twice is not an
	// error. errs.ErrNotFound if either group does not exist. A child equal
	// to parent, or one that contains parent already (at any depth), is
	// refused with ErrCycle. The check runs in the transaction of the
	// insert, serialised against every other nesting change, so that two
	// concurrent adds cannot close a cycle between them.
	AddSubgroup(ctx context.Context, parentID, childID string) error
	// RemoveSubgroup undoes AddSubgroup. errs.ErrNotFound if child is not a
	// direct subgroup of parent.
	RemoveSubgroup(ctx context.Context, parentID, childID string) error
	// Subgroups returns the direct subgroups of parent in ID order; an
	// unknown parent has none.
	Subgroups(ctx context.Context, parentID string) ([]*Group, error)
	// UserGroupsAll returns every group that reaches the user: the groups
	// the user is a member of and every group containing one of them, at
	// any depth, each once, in ID order. An unknown user is in no group.
	UserGroupsAll(ctx context.Context, userID string) ([]*Group, error)
}
