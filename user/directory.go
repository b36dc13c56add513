package user

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
)

// MaxExternalID bounds a directory identifier. entryUUID (RFC 4530) and
// objectGUID strings are 36 bytes; the margin leaves room for other
// directories' identifiers without letting one fill the database.
const MaxExternalID = 256

// Errors of the directory sync, with stable codes.
var (
	ErrExternalIDInvalid = errs.E(errs.Invalid, "external_id_invalid", "the directory entry has no usable unique ID")
	ErrExternalIDTaken   = errs.E(errs.Conflict, "external_id_taken", "another account or group is linked to this directory entry")
)

// SyncOutcome says what SyncDirectoryUser or SyncDirectoryGroup did.
type SyncOutcome int

const (
	Unchanged SyncOutcome = iota // the stored record already matched
	Created                      // a new record was stored
	Updated                      // the stored record was changed
)

func (o SyncOutcome) String() string {
	switch o {
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// DirectoryAccount is a user account as the company directory describes it.
type DirectoryAccount struct {
	// ExternalID is the entry's stable unique ID (entryUUID, objectGUID).
	ExternalID string
	// Username is the directory login (uid, sAMAccountName); required.
	Username string
	// Email is optional; a present one must be a valid address.
	Email       string
	DisplayName string
}

// DirectoryGroup is a group as the company directory describes it.
type DirectoryGroup struct {
	ExternalID  string
	Name        string
	Description string
}

func checkExternalID(s string) error {
	if s == "" || !validText(s, MaxExternalID) {
		return ErrExternalIDInvalid
	}
	return nil
}

// directoryFields validates a and returns the normalised logins and name.
// The directory is the source of truth for these fields, but its data is
// still input: a login that is not a valid Custos username, or an email
// that is not an address, fails the account rather than being stored.
func directoryFields(a DirectoryAccount) (email, username, name string, err error) {
	if err := checkExternalID(a.ExternalID); err != nil {
		return "", "", "", err
	}
	f := map[string]string{}
	username, ok := NormalizeUsername(a.Username)
	if !ok {
		f["username"] = usernameCharsetMsg
	}
	if strings.TrimSpace(a.Email) != "" {
		if email, ok = NormalizeEmail(a.Email); !ok {
			f["email"] = "a valid email address of at most 254 bytes"
		}
	}
	name = strings.TrimSpace(a.DisplayName)
	if !validText(name, MaxDisplayName) {
		f["display_name"] = "at most 256 bytes of text"
	}
	if len(f) > 0 {
		return "", "", "", invalid(errInvalidUser, "the directory account has invalid fields", f)
	}
	return email, username, name, nil
}

// ByExternalID returns the user linked to the directory entry, or
// ErrUserNotFound.
func (s *Service) ByExternalID(ctx context.Context, externalID string) (*User, error) {
	u, err := s.Store.UserByExternalID(ctx, externalID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
	}
	if err != nil {
		return nil, fmt.Errorf("user: by external ID: %w", err)
	}
	return u, nil
}

// SyncDirectoryUser creates or updates the directory account a, found by
// its ExternalID, so that a rename in the directory updates the same user
// rather than creating another. Only the directory's fields (logins,
// display name) are written: an administrator's assignments (activation
// profile) stay. A user marked missing is unmarked. A login held by
// another account (a local one, say) is a conflict: accounts are never
// merged by email, because whoever can set a mail attribute in the
// directory would otherwise take over that account and its devices.
func (s *Service) SyncDirectoryUser(ctx context.Context, a DirectoryAccount) (*User, SyncOutcome, error) {
	email, username, name, err := directoryFields(a)
	if err != nil {
		return nil, Unchanged, err
	}
	u, err := s.Store.UserByExternalID(ctx, a.ExternalID)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		now := s.now()
		u = &User{ID: id.New(), Email: email, Username: username, DisplayName: name, Source: SourceDirectory,
			ExternalID: a.ExternalID, CreatedAt: now, UpdatedAt: now}
		if err := s.Store.CreateUser(ctx, u); err != nil {
			if errors.Is(err, errs.ErrConflict) {
				return nil, Unchanged, s.directoryConflict(ctx, u, err)
			}
			return nil, Unchanged, fmt.Errorf("user: create directory user: %w", err)
		}
		return u, Created, nil
	case err != nil:
		return nil, Unchanged, fmt.Errorf("user: directory user by external ID: %w", err)
	}
	if u.Email == email && u.Username == username && u.DisplayName == name && u.DirectoryMissingSince == nil {
		return u, Unchanged, nil
	}
	u.Email, u.Username, u.DisplayName, u.DirectoryMissingSince = email, username, name, nil
	u.UpdatedAt = s.now()
	if err := s.Store.UpdateUser(ctx, u); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, Unchanged, s.directoryConflict(ctx, u, err)
		}
		return nil, Unchanged, fmt.Errorf("user: update directory user: %w", err)
	}
	return u, Updated, nil
}

// directoryConflict names what another record holds: a login, or the link.
func (s *Service) directoryConflict(ctx context.Context, u *User, cause error) error {
	if o, err := s.Store.UserByExternalID(ctx, u.ExternalID); err == nil && o.ID != u.ID {
		return errs.Wrap(errs.Conflict, ErrExternalIDTaken.Code, ErrExternalIDTaken.Message, cause)
	}
	return s.loginConflict(ctx, u, cause)
}

// MarkDirectoryMissing records that the directory no longer has the user's
// entry, keeping the first time it was missed; it reports whether it
// changed anything. The user is not deleted: that would remove and revoke
// their devices because of one search result (a wrong base DN, a filter
// edited by mistake), and an administrator may want to wipe them first.
func (s *Service) MarkDirectoryMissing(ctx context.Context, userID string, since time.Time) (bool, error) {
	u, err := s.Get(ctx, userID)
	if err != nil {
		return false, err
	}
	if u.DirectoryMissingSince != nil {
		return false, nil
	}
	t := since.UTC().Truncate(time.Microsecond)
	u.DirectoryMissingSince, u.UpdatedAt = &t, s.now()
	if err := s.Store.UpdateUser(ctx, u); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return false, errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
		}
		return false, fmt.Errorf("user: mark missing from directory: %w", err)
	}
	return true, nil
}

// GroupByExternalID returns the group linked to the directory group, or
// ErrGroupNotFound.
func (s *Service) GroupByExternalID(ctx context.Context, externalID string) (*Group, error) {
	g, err := s.Store.GroupByExternalID(ctx, externalID)
	if err != nil {
		return nil, groupErr("get by external ID", err)
	}
	return g, nil
}

// SyncDirectoryGroup creates or updates the Custos group linked to the
// directory group dg. A group linked already keeps what is assigned to it
// (its activation profile, policies): only its name follows the directory,
// and its description when the directory has one. A local group with the
// same name that is linked to nothing is linked to dg rather than
// duplicated: this is how an administrator prepares group-based onboarding
// (create "engineering" with an activation profile, then connect the
// directory).
func (s *Service) SyncDirectoryGroup(ctx context.Context, dg DirectoryGroup) (*Group, SyncOutcome, error) {
	if err := checkExternalID(dg.ExternalID); err != nil {
		return nil, Unchanged, err
	}
	want := &Group{Name: dg.Name, Description: dg.Description}
	if err := checkGroup(want); err != nil {
		return nil, Unchanged, err
	}
	g, err := s.Store.GroupByExternalID(ctx, dg.ExternalID)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		now := s.now()
		g = &Group{ID: id.New(), Name: want.Name, Description: want.Description, ExternalID: dg.ExternalID, CreatedAt: now, UpdatedAt: now}
		err := s.Store.CreateGroup(ctx, g)
		if err == nil {
			return g, Created, nil
		}
		if !errors.Is(err, errs.ErrConflict) {
			return nil, Unchanged, groupErr("create directory", err)
		}
		local, ferr := s.unlinkedGroupNamed(ctx, want.Name)
		if ferr != nil {
			return nil, Unchanged, ferr
		}
		if local == nil { // the name belongs to another directory group
			return nil, Unchanged, groupErr("create directory", err)
		}
		g = local
		g.ExternalID = dg.ExternalID
	case err != nil:
		return nil, Unchanged, groupErr("get directory", err)
	case g.Name == want.Name && (want.Description == "" || g.Description == want.Description):
		return g, Unchanged, nil
	}
	g.Name = want.Name
	if want.Description != "" {
		g.Description = want.Description
	}
	g.UpdatedAt = s.now()
	if err := s.Store.UpdateGroup(ctx, g); err != nil {
		return nil, Unchanged, groupErr("update directory", err)
	}
	return g, Updated, nil
}

// unlinkedGroupNamed finds the group named name if it is linked to no
// directory group; nil if there is none. Names are unique, so it runs only
// after a create hit a name conflict, and walks the groups page by page.
func (s *Service) unlinkedGroupNamed(ctx context.Context, name string) (*Group, error) {
	for p := (Page{Limit: MaxPage}); ; {
		gs, err := s.Store.ListGroups(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("user: list groups: %w", err)
		}
		for _, g := range gs {
			if g.Name == name {
				if g.ExternalID != "" {
					return nil, nil
				}
				return g, nil
			}
		}
		if len(gs) < p.Limit {
			return nil, nil
		}
		p.After = gs[len(gs)-1].ID
	}
}
