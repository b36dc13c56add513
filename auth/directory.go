package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/custos-uem/custos/errs"
)

// DirectoryAdminStore keeps the administrators who sign in through the
// company directory.
type DirectoryAdminStore interface {
	// AdminByExternalID returns the administrator tied to the directory
	// entry externalID, or errs.ErrNotFound.
	AdminByExternalID(ctx context.Context, externalID string) (*Admin, error)
	// UpdateDirectoryAdmin stores DisplayName, Role and ScopeGroups of a;
	// errs.ErrNotFound when a is not a directory administrator, or when
	// its custom role was deleted meanwhile.
	UpdateDirectoryAdmin(ctx context.Context, a *Admin) error
}

// ErrNotBound refuses a directory account that signed in correctly but is
// in no directory group bound to a role.
var ErrNotBound = errs.E(errs.Forbidden, "admin_not_bound", "your directory account is in no group bound to an administrator role")

// DirectoryAdmin returns the administrator of a directory account that
// has just proved its password: entryID is the entry's unique ID, groups
// the directory groups it is in (their DNs and IDs; bindings name either).
// The bindings of those groups decide: the one whose role allows the most
// wins (then the lowest binding ID), and gives the role and the scope. The
// administrator is created at the first sign-in (username login) and
// follows the bindings at every later one, so removing someone from the
// directory group takes their role away at their next sign-in.
func (s *Service) DirectoryAdmin(ctx context.Context, entryID, login, displayName string, groups []string) (*Admin, error) {
	store, ok := s.Admins.(DirectoryAdminStore)
	if !ok || entryID == "" {
		return nil, errors.New("auth: no directory administrator store")
	}
	bs, err := s.BindingsForGroups(ctx, groups)
	if err != nil {
		return nil, err
	}
	var best *RoleBinding
	bestN := -1
	for _, b := range bs {
		r, err := s.Role(ctx, b.RoleID)
		if err != nil {
			continue // a role deleted meanwhile grants nothing
		}
		n := len(r.Set().List())
		if n > bestN || n == bestN && b.ID < best.ID {
			best, bestN = b, n
		}
	}
	if best == nil {
		return nil, ErrNotBound
	}
	a, err := store.AdminByExternalID(ctx, entryID)
	if errors.Is(err, errs.ErrNotFound) {
		return s.CreateAdmin(ctx, NewAdmin{Username: login, DisplayName: displayName, Role: best.RoleID, ScopeGroups: best.ScopeGroups, ExternalID: entryID})
	}
	if err != nil {
		return nil, err
	}
	if a.Role == best.RoleID && slices.Equal(a.ScopeGroups, best.ScopeGroups) && (displayName == "" || a.DisplayName == displayName) {
		return a, nil
	}
	a.Role, a.ScopeGroups = best.RoleID, best.ScopeGroups
	if displayName != "" {
		a.DisplayName = displayName
	}
	if err := store.UpdateDirectoryAdmin(ctx, a); err != nil {
		return nil, fmt.Errorf("auth: update directory administrator: %w", err)
	}
	return a, nil
}
