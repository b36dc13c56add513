package policy

import (
	"context"
	"time"
)

// ListQuery selects policies: of Kind (all kinds when empty), whose ID
// sorts after After, at most Limit (capped at MaxPage; 0 takes DefaultPage).
type ListQuery struct {
	Kind  Kind
	After string
	Limit int
}

// Listing sizes.
const (
	DefaultPage = 100
	MaxPage     = 500
)

// Assigned is one way a policy reaches a user: GroupID is empty for a
// direct assignment, else the group the policy is assigned to (one the
// user is a member of, or one containing such a group at any depth).
type Assigned struct {
	Policy  *Policy
	GroupID string
}

// Store is everything the Service needs from the database.
type Store interface {
	PolicyStore
	AssignmentStore
	ReachStore
	StatusStore
}

// PolicyStore keeps policies.
type PolicyStore interface {
	// CreatePolicy inserts p as given (ID, Revision, timestamps and
	// canonical Settings set by the caller). errs.ErrConflict if another
	// policy of the same kind has the name (or the ID is taken).
	CreatePolicy(ctx context.Context, p *Policy) error
	// Policy returns the policy with id, or errs.ErrNotFound.
	Policy(ctx context.Context, id string) (*Policy, error)
	// ListPolicies returns the policies matching q in ID order.
	ListPolicies(ctx context.Context, q ListQuery) ([]*Policy, error)
	// UpdatePolicy stores p's name, description, rank, platforms, settings
	// and UpdatedAt (its kind never changes). The stored revision grows by
	// one when settings or platforms differ from the stored ones, in the
	// same statement, so concurrent updates never lose a bump; p.Revision
	// is set to the stored revision. errs.ErrNotFound if p.ID does not
	// exist; errs.ErrConflict if another policy of the kind has the name.
	UpdatePolicy(ctx context.Context, p *Policy) error
	// DeletePolicy removes the policy with its assignments and the item
	// states devices reported for it. errs.ErrNotFound.
	DeletePolicy(ctx context.Context, id string) error
}

// AssignmentStore keeps who policies are assigned to.
type AssignmentStore interface {
	// Assign gives the policy to a user or group (a.TargetKind TargetUser
	// or TargetGroup). Assigning twice is not an error and keeps the first
	// CreatedAt. errs.ErrNotFound if the policy or the target does not
	// exist, or the target kind is neither.
	Assign(ctx context.Context, a Assignment) error
	// Unassign removes an assignment; errs.ErrNotFound if there is none.
	Unassign(ctx context.Context, policyID, targetKind, targetID string) error
	// Assignments returns the assignments of a policy, users first, then
	// groups, each in target ID order; an unknown policy has none.
	Assignments(ctx context.Context, policyID string) ([]Assignment, error)
	// PoliciesForUser returns every way a policy reaches the user: one
	// entry per direct assignment and one per (policy, group) for the
	// groups reaching the user, nested groups included, ordered by policy
	// ID, then direct first, then group ID. An unknown user gets none.
	PoliciesForUser(ctx context.Context, userID string) ([]Assigned, error)
}

// ReachStore finds the devices a change reaches, so that they can be told.
// Only enrolled and active devices count: others have no configuration.
// Each answer is one statement, whatever the number of devices.
type ReachStore interface {
	// AffectedDevices returns, in ID order, the enrolled or active devices
	// of every user the policy is assigned to, directly or through a group
	// (nested groups included). An unknown policy reaches none.
	AffectedDevices(ctx context.Context, policyID string) ([]string, error)
	// DevicesOfTargets returns, in ID order, the enrolled or active devices
	// of the user (TargetUser) or of every member of the group and its
	// subgroups at any depth (TargetGroup). An unknown target reaches none;
	// an unknown target kind is errs.ErrNotFound.
	DevicesOfTargets(ctx context.Context, targetKind, targetID string) ([]string, error)
}

// StatusStore keeps what devices report about applying their configuration.
type StatusStore interface {
	// SaveItemStates records that the device reported on configuration
	// version at now, and stores each state (replacing the device's earlier
	// state of the same item). States naming no existing policy are
	// dropped: the policy was deleted while the device applied it.
	// errs.ErrNotFound if the device does not exist or is neither enrolled
	// nor active; then nothing is stored.
	SaveItemStates(ctx context.Context, deviceID, version string, states []ItemState, now time.Time) error
	// ItemStates returns the version the device last reported on ("" if
	// none) and its stored item states in item ID order; an unknown device
	// has none.
	ItemStates(ctx context.Context, deviceID string) (string, []ItemState, error)
}
