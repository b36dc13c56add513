// Package auth owns administrators and the API tokens they use against the
// REST API.
//
// A token is shown once, when it is created; only its SHA-256 hash is
// stored. Tokens carry 256 bits of randomness, so a fast hash is enough and
// lookups by hash need no per-token salt.
package auth

import (
	"context"
	"time"

	"github.com/custos-uem/custos/device"
)

// Admin is an administrator account.
type Admin struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	// Role is the ID of the administrator's role, built in (RoleSecurityAdmin
	// …) or custom; it decides what they may do (Service.PermissionsOf).
	Role string `json:"role"`
	// ScopeGroups limits the administrator to the devices of users who
	// are members of these groups, directly or through subgroups at any
	// depth. Empty means every device. A deleted group stays listed and
	// matches nobody, so deleting a group narrows a scope, never widens
	// it.
	ScopeGroups []string `json:"scope_groups"`
	// ExternalID is the directory entry of an administrator who signs in
	// through the company directory (their role comes from the directory
	// groups bound to roles); empty for a local administrator.
	ExternalID string    `json:"external_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Scoped reports whether a is limited to some groups' devices.
func (a *Admin) Scoped() bool { return len(a.ScopeGroups) > 0 }

// Token is an API token of an administrator.
type Token struct {
	ID         string     `json:"id"`
	AdminID    string     `json:"admin_id"`
	Name       string     `json:"name"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// AdminStore keeps administrators.
type AdminStore interface {
	// CreateAdmin inserts a (ScopeGroups included: nil and empty are
	// stored alike and read back as nil); a duplicate username returns
	// errs.ErrConflict. A.Role must be built in or a stored custom role,
	// checked in the transaction of the insert (else errs.ErrNotFound), so
	// that a concurrent RoleStore.DeleteRole cannot leave the
	// administrator without a role.
	CreateAdmin(ctx context.Context, a *Admin) error
	// Admin returns the administrator with id, or errs.ErrNotFound.
	Admin(ctx context.Context, id string) (*Admin, error)
	// ListAdmins returns every administrator in ID order.
	ListAdmins(ctx context.Context) ([]*Admin, error)
}

// TokenStore keeps API tokens.
type TokenStore interface {
	// CreateToken inserts t.
	CreateToken(ctx context.Context, t *Token) error
	// TokenByHash returns the token whose hash is hash, revoked or not, or
	// errs.ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// ListTokens returns every token (revoked ones too) in ID order.
	ListTokens(ctx context.Context) ([]*Token, error)
	// RevokeToken sets RevokedAt on an unrevoked token. errs.ErrNotFound if
	// there is no such token or it is already revoked.
	RevokeToken(ctx context.Context, id string, now time.Time) error
	// TouchToken sets LastUsedAt. Unknown IDs are ignored.
	TouchToken(ctx context.Context, id string, now time.Time) error
}

// ScopeStore answers which devices lie in a scope: the devices of the
// users who are members of one of a set of groups, directly or through
// subgroups at any depth. groups is never empty (an unscoped administrator
// needs no store); unknown group IDs match nobody. Each method is one
// statement, whatever the number of groups or devices.
type ScopeStore interface {
	// UserInScope reports whether the user is in scope. An unknown user is
	// not.
	UserInScope(ctx context.Context, groups []string, userID string) (bool, error)
	// ScopedDevices returns the devices in scope matching q, in ID order,
	// paged as device.Store.ListDevices.
	ScopedDevices(ctx context.Context, groups []string, q device.Query) ([]*device.Device, error)
	// DevicesInScope returns those of ids (distinct) that name a device in
	// scope, in no particular order; unknown IDs are left out.
	DevicesInScope(ctx context.Context, groups []string, ids []string) ([]string, error)
}
