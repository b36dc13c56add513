package user

import (
	"context"
	"errors"
	"fmt"
	"github.com/custos-uem/custos/id"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Field limits.
const (
	MaxEmail       = 254 // RFC 5321 path limit
	MaxUsername    = 64
	MaxDisplayName = 256
	MaxGroupName   = 128
	MaxGroupDesc   = 2048
	// DefaultPage is the listing size when none is asked for.
	DefaultPage = 100
)

// Errors with stable codes.
var (
	ErrUserNotFound    = errs.E(errs.NotFound, "user_not_found", "no such user")
	ErrGroupNotFound   = errs.E(errs.NotFound, "group_not_found", "no such group")
	ErrMemberNotFound  = errs.E(errs.NotFound, "member_not_found", "the user is not a member of this group")
	ErrEmailTaken      = errs.E(errs.Conflict, "user_email_taken", "another user has this email address")
	ErrUsernameTaken   = errs.E(errs.Conflict, "user_username_taken", "another user has this username")
	ErrLoginTaken      = errs.E(errs.Conflict, "user_login_taken", "another user has this email address or username")
	ErrGroupNameTaken  = errs.E(errs.Conflict, "group_name_taken", "a group with this name exists")
	errInvalidUser     = "invalid_user"
	errInvalidGroup    = "invalid_group"
	usernameCharsetMsg = "1 to 64 of a-z 0-9 . _ -, starting with a letter or digit"
)

// Stores is what the Service needs from the database.
type Stores interface {
	Store
	GroupStore
	MemberStore
	NestingStore
}

// DeviceRemover removes (and so revokes) every device of a user; the user
// Service calls it before deleting the user. It must be idempotent: a
// delete interrupted after some devices were removed is retried from the
// start.
type DeviceRemover interface {
	RemoveUserDevices(ctx context.Context, userID string) error
}

// Service manages users, groups and membership: it validates and
// normalises input, and turns store sentinels into errors with codes.
type Service struct {
	Store Stores
	// Devices removes a user's devices before the user is deleted;
	// required for Delete.
	Devices DeviceRemover
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// NormalizeEmail checks an email address (a bare addr-spec, no display
// name or angle brackets) and returns it in lower case.
func NormalizeEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxEmail || !utf8.ValidString(s) {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\"<>()[]\\,;:") {
		return "", false
	}
	return strings.ToLower(s), true
}

// NormalizeUsername checks a username and returns it in lower case.
func NormalizeUsername(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > MaxUsername {
		return "", false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return "", false
		}
	}
	return s, true
}

// validText reports whether s is UTF-8 of at most max bytes without
// control characters. Markup and quotes are allowed: they are data, and
// every output escapes them.
func validText(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func invalid(code, msg string, fields map[string]string) error {
	e := errs.E(errs.Invalid, code, msg)
	e.Fields = fields
	return e
}

// NewUser is the input of Create.
type NewUser struct {
	Email string
	// Username defaults to the local part of Email (when that is a valid
	// username).
	Username            string
	DisplayName         string
	ActivationProfileID string
}

// UserPatch changes the fields that are not nil.
type UserPatch struct {
	Email       *string
	Username    *string
	DisplayName *string
	// ActivationProfileID: "" clears the direct assignment. The caller
	// checks that a non-empty ID names a profile.
	ActivationProfileID *string
}

func (s *Service) checkUser(u *User) error {
	f := map[string]string{}
	if e, ok := NormalizeEmail(u.Email); ok {
		u.Email = e
	} else {
		f["email"] = "a valid email address of at most 254 bytes"
	}
	if n, ok := NormalizeUsername(u.Username); ok {
		u.Username = n
	} else {
		f["username"] = usernameCharsetMsg
	}
	u.DisplayName = strings.TrimSpace(u.DisplayName)
	if !validText(u.DisplayName, MaxDisplayName) {
		f["display_name"] = "at most 256 bytes of text"
	}
	if len(u.ActivationProfileID) > 64 {
		f["activation_profile_id"] = "not a profile ID"
	}
	if len(f) > 0 {
		return invalid(errInvalidUser, "the user has invalid fields", f)
	}
	return nil
}

// loginConflict names which login of u another user holds.
func (s *Service) loginConflict(ctx context.Context, u *User, cause error) error {
	if o, err := s.Store.UserByLogin(ctx, u.Email); err == nil && o.ID != u.ID {
		return errs.Wrap(errs.Conflict, ErrEmailTaken.Code, ErrEmailTaken.Message, cause)
	}
	if o, err := s.Store.UserByLogin(ctx, u.Username); err == nil && o.ID != u.ID {
		return errs.Wrap(errs.Conflict, ErrUsernameTaken.Code, ErrUsernameTaken.Message, cause)
	}
	return errs.Wrap(errs.Conflict, ErrLoginTaken.Code, ErrLoginTaken.Message, cause)
}

// Create validates and stores a new local user.
func (s *Service) Create(ctx context.Context, in NewUser) (*User, error) {
	u := &User{Email: in.Email, Username: in.Username, DisplayName: in.DisplayName, ActivationProfileID: in.ActivationProfileID, Source: SourceLocal}
	if strings.TrimSpace(u.Username) == "" {
		if e, ok := NormalizeEmail(u.Email); ok {
			u.Username = e[:strings.LastIndexByte(e, '@')]
		}
	}
	if err := s.checkUser(u); err != nil {
		return nil, err
	}
	now := s.now()
	u.ID, u.CreatedAt, u.UpdatedAt = id.New(), now, now
	if err := s.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, s.loginConflict(ctx, u, err)
		}
		return nil, fmt.Errorf("user: create: %w", err)
	}
	return u, nil
}

// Get returns the user with id, or ErrUserNotFound.
func (s *Service) Get(ctx context.Context, id string) (*User, error) {
	u, err := s.Store.User(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
	}
	if err != nil {
		return nil, fmt.Errorf("user: get: %w", err)
	}
	return u, nil
}

func page(p Page) Page {
	if p.Limit <= 0 {
		p.Limit = DefaultPage
	}
	if p.Limit > MaxPage {
		p.Limit = MaxPage
	}
	return p
}

// ByLogin returns the user whose email or username is login (any case), or
// ErrUserNotFound.
func (s *Service) ByLogin(ctx context.Context, login string) (*User, error) {
	login = strings.ToLower(strings.TrimSpace(login))
	if login == "" || len(login) > MaxEmail {
		return nil, ErrUserNotFound
	}
	u, err := s.Store.UserByLogin(ctx, login)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
	}
	if err != nil {
		return nil, fmt.Errorf("user: by login: %w", err)
	}
	return u, nil
}

// List returns users in ID (creation) order.
func (s *Service) List(ctx context.Context, p Page) ([]*User, error) {
	us, err := s.Store.ListUsers(ctx, page(p))
	if err != nil {
		return nil, fmt.Errorf("user: list: %w", err)
	}
	return us, nil
}

// Update applies patch to the user and returns the result.
func (s *Service) Update(ctx context.Context, id string, patch UserPatch) (*User, error) {
	u, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if patch.Email != nil {
		u.Email = *patch.Email
	}
	if patch.Username != nil {
		u.Username = *patch.Username
	}
	if patch.DisplayName != nil {
		u.DisplayName = *patch.DisplayName
	}
	if patch.ActivationProfileID != nil {
		u.ActivationProfileID = *patch.ActivationProfileID
	}
	if err := s.checkUser(u); err != nil {
		return nil, err
	}
	u.UpdatedAt = s.now()
	if err := s.Store.UpdateUser(ctx, u); err != nil {
		switch {
		case errors.Is(err, errs.ErrNotFound):
			return nil, errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
		case errors.Is(err, errs.ErrConflict):
			return nil, s.loginConflict(ctx, u, err)
		}
		return nil, fmt.Errorf("user: update: %w", err)
	}
	return u, nil
}

// Delete removes the user's devices (revoking their certificates), then
// the user with their activation passwords, sessions and memberships. A
// delete interrupted between the two steps leaves a user without devices;
// repeating it finishes the job.
func (s *Service) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	if s.Devices == nil {
		return errors.New("user: delete: no DeviceRemover configured")
	}
	if err := s.Devices.RemoveUserDevices(ctx, id); err != nil {
		return fmt.Errorf("user: delete: remove devices: %w", err)
	}
	if err := s.Store.DeleteUser(ctx, id); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, ErrUserNotFound.Code, ErrUserNotFound.Message, err)
		}
		return fmt.Errorf("user: delete: %w", err)
	}
	return nil
}

// NewGroup is the input of CreateGroup.
type NewGroup struct {
	Name                string
	Description         string
	ActivationProfileID string
}

// GroupPatch changes the fields that are not nil.
type GroupPatch struct {
	Name        *string
	Description *string
	// ActivationProfileID: "" clears the assignment.
	ActivationProfileID *string
}

func checkGroup(g *Group) error {
	f := map[string]string{}
	g.Name = strings.TrimSpace(g.Name)
	if g.Name == "" || !validText(g.Name, MaxGroupName) {
		f["name"] = "required, at most 128 bytes of text"
	}
	if len(g.Description) > MaxGroupDesc || !utf8.ValidString(g.Description) || strings.ContainsRune(g.Description, 0) {
		f["description"] = "at most 2048 bytes of text"
	}
	if len(g.ActivationProfileID) > 64 {
		f["activation_profile_id"] = "not a profile ID"
	}
	if len(f) > 0 {
		return invalid(errInvalidGroup, "the group has invalid fields", f)
	}
	return nil
}

func groupErr(op string, err error) error {
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return errs.Wrap(errs.NotFound, ErrGroupNotFound.Code, ErrGroupNotFound.Message, err)
	case errors.Is(err, errs.ErrConflict):
		return errs.Wrap(errs.Conflict, ErrGroupNameTaken.Code, ErrGroupNameTaken.Message, err)
	}
	return fmt.Errorf("user: %s group: %w", op, err)
}

// CreateGroup validates and stores a new group.
func (s *Service) CreateGroup(ctx context.Context, in NewGroup) (*Group, error) {
	g := &Group{Name: in.Name, Description: in.Description, ActivationProfileID: in.ActivationProfileID}
	if err := checkGroup(g); err != nil {
		return nil, err
	}
	now := s.now()
	g.ID, g.CreatedAt, g.UpdatedAt = id.New(), now, now
	if err := s.Store.CreateGroup(ctx, g); err != nil {
		return nil, groupErr("create", err)
	}
	return g, nil
}

// Group returns the group with id, or ErrGroupNotFound.
func (s *Service) Group(ctx context.Context, id string) (*Group, error) {
	g, err := s.Store.Group(ctx, id)
	if err != nil {
		return nil, groupErr("get", err)
	}
	return g, nil
}

// Groups returns groups in ID order.
func (s *Service) Groups(ctx context.Context, p Page) ([]*Group, error) {
	gs, err := s.Store.ListGroups(ctx, page(p))
	if err != nil {
		return nil, fmt.Errorf("user: list groups: %w", err)
	}
	return gs, nil
}

// UpdateGroup applies patch to the group and returns the result.
func (s *Service) UpdateGroup(ctx context.Context, id string, patch GroupPatch) (*Group, error) {
	g, err := s.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	if patch.Name != nil {
		g.Name = *patch.Name
	}
	if patch.Description != nil {
		g.Description = *patch.Description
	}
	if patch.ActivationProfileID != nil {
		g.ActivationProfileID = *patch.ActivationProfileID
	}
	if err := checkGroup(g); err != nil {
		return nil, err
	}
	g.UpdatedAt = s.now()
	if err := s.Store.UpdateGroup(ctx, g); err != nil {
		return nil, groupErr("update", err)
	}
	return g, nil
}

// DeleteGroup removes the group and its memberships (not its members).
func (s *Service) DeleteGroup(ctx context.Context, id string) error {
	if err := s.Store.DeleteGroup(ctx, id); err != nil {
		return groupErr("delete", err)
	}
	return nil
}

// AddMember adds the user to the group; adding twice is not an error.
func (s *Service) AddMember(ctx context.Context, groupID, userID string) error {
	if _, err := s.Group(ctx, groupID); err != nil {
		return err
	}
	if _, err := s.Get(ctx, userID); err != nil {
		return err
	}
	if err := s.Store.AddMember(ctx, groupID, userID); err != nil {
		if errors.Is(err, errs.ErrNotFound) { // deleted in between
			return errs.Wrap(errs.NotFound, "member_not_found", "the group or the user no longer exists", err)
		}
		return fmt.Errorf("user: add member: %w", err)
	}
	return nil
}

// RemoveMember removes the user from the group.
func (s *Service) RemoveMember(ctx context.Context, groupID, userID string) error {
	if _, err := s.Group(ctx, groupID); err != nil {
		return err
	}
	if err := s.Store.RemoveMember(ctx, groupID, userID); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, ErrMemberNotFound.Code, ErrMemberNotFound.Message, err)
		}
		return fmt.Errorf("user: remove member: %w", err)
	}
	return nil
}

// Members returns the users of a group in ID order.
func (s *Service) Members(ctx context.Context, groupID string) ([]*User, error) {
	if _, err := s.Group(ctx, groupID); err != nil {
		return nil, err
	}
	us, err := s.Store.Members(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("user: members: %w", err)
	}
	return us, nil
}

// GroupsOf returns the groups the user belongs to.
func (s *Service) GroupsOf(ctx context.Context, userID string) ([]*Group, error) {
	if _, err := s.Get(ctx, userID); err != nil {
		return nil, err
	}
	gs, err := s.Store.GroupsOf(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("user: groups of user: %w", err)
	}
	return gs, nil
}
