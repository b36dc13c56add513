package user

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-uem/custos/errs"
)

// ErrSubgroupNotFound is returned when a group is not a direct subgroup of
// another.
var ErrSubgroupNotFound = errs.E(errs.NotFound, "subgroup_not_found", "the group is not a subgroup of this group")

// AddSubgroup makes child a subgroup of parent, so that child's members
// (and its subgroups' members) receive what is assigned to parent. Adding
// twice is not an error; a self-reference or a nesting that would close a
// cycle is refused with the code "group_cycle". The store checks for the
// cycle inside its write transaction: a check here alone would let two
// concurrent adds (A into B, B into A) both pass.
func (s *Service) AddSubgroup(ctx context.Context, parentID, childID string) error {
	if parentID == childID {
		return cycleErr(nil)
	}
	if _, err := s.Group(ctx, parentID); err != nil {
		return err
	}
	if _, err := s.Group(ctx, childID); err != nil {
		return err
	}
	err := s.Store.AddSubgroup(ctx, parentID, childID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCycle):
		return cycleErr(err)
	case errors.Is(err, errs.ErrNotFound): // deleted in between
		return errs.Wrap(errs.NotFound, ErrGroupNotFound.Code, "the group or the subgroup no longer exists", err)
	}
	return fmt.Errorf("user: add subgroup: %w", err)
}

func cycleErr(cause error) error {
	e := errs.Wrap(errs.Invalid, ErrCycle.Code, ErrCycle.Message, cause)
	e.Fields = map[string]string{"group_id": "the group contains this group already, or is this group"}
	return e
}

// RemoveSubgroup takes child out of parent.
func (s *Service) RemoveSubgroup(ctx context.Context, parentID, childID string) error {
	if _, err := s.Group(ctx, parentID); err != nil {
		return err
	}
	if err := s.Store.RemoveSubgroup(ctx, parentID, childID); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, ErrSubgroupNotFound.Code, ErrSubgroupNotFound.Message, err)
		}
		return fmt.Errorf("user: remove subgroup: %w", err)
	}
	return nil
}

// Subgroups returns the direct subgroups of a group in ID order.
func (s *Service) Subgroups(ctx context.Context, parentID string) ([]*Group, error) {
	if _, err := s.Group(ctx, parentID); err != nil {
		return nil, err
	}
	gs, err := s.Store.Subgroups(ctx, parentID)
	if err != nil {
		return nil, fmt.Errorf("user: subgroups: %w", err)
	}
	return gs, nil
}

// AllGroupsOf returns every group that reaches the user, directly or
// through nesting, in ID order.
func (s *Service) AllGroupsOf(ctx context.Context, userID string) ([]*Group, error) {
	if _, err := s.Get(ctx, userID); err != nil {
		return nil, err
	}
	gs, err := s.Store.UserGroupsAll(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("user: all groups of user: %w", err)
	}
	return gs, nil
}
