package activation

import (
	"context"
	"errors"
	"fmt"
	"github.com/custos-uem/custos/id"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user"
)

// passwordAlphabet leaves out characters that read alike (0/O, 1/I/l) so a
// generated password survives being read aloud or typed from a printout.
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// GeneratePassword returns a random activation password of 16 symbols
// (80 bits) in four dash-separated groups, e.g. "K7QM-3ZPA-WX9E-HT4C".
func (s *Service) GeneratePassword() (string, error) {
	var b [16]byte
	out := make([]byte, 0, 19)
	r := s.rand()
	for i := 0; i < len(b); {
		if _, err := r.Read(b[i : i+1]); err != nil {
			return "", fmt.Errorf("activation: random: %w", err)
		}
		// 256 is a multiple of 32: no modulo bias.
		c := passwordAlphabet[int(b[i])%len(passwordAlphabet)]
		if i > 0 && i%4 == 0 {
			out = append(out, '-')
		}
		out = append(out, c)
		i++
	}
	return string(out), nil
}

// SetPasswordInput sets or generates an activation password.
type SetPasswordInput struct {
	UserID string
	// Password is the administrator's choice; empty generates one.
	Password string
	// TTL is how long the password stays valid; zero takes
	// DefaultPasswordTTL.
	TTL       time.Duration
	CreatedBy string
}

// SetPassword stores a new activation password for the user, replacing any
// unused one, and returns it in clear (the only time it is shown) with its
// record.
func (s *Service) SetPassword(ctx context.Context, in SetPasswordInput) (string, *Password, error) {
	if _, err := s.Store.User(ctx, in.UserID); err != nil {
		return "", nil, err
	}
	if in.TTL < 0 || in.TTL > MaxPasswordTTL {
		e := errs.E(errs.Invalid, "invalid_password_ttl", "the expiry must be between now and one year")
		e.Fields = map[string]string{"expires_in": "between 1s and 8760h"}
		return "", nil, e
	}
	plain := in.Password
	if plain == "" {
		var err error
		if plain, err = s.GeneratePassword(); err != nil {
			return "", nil, err
		}
	} else if n := utf8.RuneCountInString(CanonicalPassword(plain)); n < MinPasswordLen || len(plain) > MaxPasswordLen || !utf8.ValidString(plain) || strings.ContainsAny(plain, "\x00\r\n") {
		e := errs.E(errs.Invalid, "invalid_password", fmt.Sprintf("an activation password has %d to %d characters, not counting spaces and dashes", MinPasswordLen, MaxPasswordLen))
		e.Fields = map[string]string{"password": "8 to 128 characters, one line"}
		return "", nil, e
	}
	now := s.now()
	p := &Password{
		ID: id.New(), UserID: in.UserID, Hash: s.hashPassword(in.UserID, plain), CreatedBy: in.CreatedBy,
		CreatedAt: now, ExpiresAt: now.Add(orDefault(in.TTL, DefaultPasswordTTL)),
	}
	if err := s.Store.SetPassword(ctx, p, now); err != nil {
		return "", nil, fmt.Errorf("activation: set password: %w", err)
	}
	return plain, p, nil
}

// Passwords lists a user's activation passwords (never their values).
func (s *Service) Passwords(ctx context.Context, userID string) ([]*Password, error) {
	if _, err := s.Store.User(ctx, userID); err != nil {
		return nil, err
	}
	return s.Store.Passwords(ctx, userID)
}

// RevokePasswords withdraws the user's unused activation passwords.
func (s *Service) RevokePasswords(ctx context.Context, userID string) (int, error) {
	if _, err := s.Store.User(ctx, userID); err != nil {
		return 0, err
	}
	return s.Store.RevokePasswords(ctx, userID, s.now())
}

// Profile limits.
const (
	MaxProfileName    = 128
	MaxProfileDesc    = 2048
	MaxDevicesPerUser = 100
)

// ValidateProfile checks p's fields and returns per-field errors.
func ValidateProfile(p *Profile) error {
	f := map[string]string{}
	if strings.TrimSpace(p.Name) == "" || len(p.Name) > MaxProfileName || !utf8.ValidString(p.Name) {
		f["name"] = "required, at most 128 bytes"
	}
	if len(p.Description) > MaxProfileDesc || !utf8.ValidString(p.Description) {
		f["description"] = "at most 2048 bytes"
	}
	if p.Rank < 0 || p.Rank > 1_000_000 {
		f["rank"] = "between 0 and 1000000"
	}
	if p.MaxDevices < 1 || p.MaxDevices > MaxDevicesPerUser {
		f["max_devices"] = "between 1 and 100"
	}
	if len(p.Types) == 0 {
		f["types"] = "at least one platform"
	}
	for pl, t := range p.Types {
		switch {
		case !ValidPlatform(pl):
			f["types."+string(pl)] = "unknown platform"
		case !Allows(t, pl):
			f["types."+string(pl)] = fmt.Sprintf("activation type %q does not apply to %s", t, pl)
		}
	}
	if len(f) > 0 {
		e := errs.E(errs.Invalid, "invalid_activation_profile", "the activation profile has invalid fields")
		e.Fields = f
		return e
	}
	return nil
}

// CreateProfile validates and stores a new activation profile.
func (s *Service) CreateProfile(ctx context.Context, p *Profile) error {
	if err := ValidateProfile(p); err != nil {
		return err
	}
	now := s.now()
	p.ID, p.CreatedAt, p.UpdatedAt = id.New(), now, now
	if err := s.Store.CreateProfile(ctx, p); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return errs.Wrap(errs.Conflict, "profile_name_taken", "an activation profile with this name exists", err)
		}
		return err
	}
	return nil
}

// UpdateProfile validates and stores p.
func (s *Service) UpdateProfile(ctx context.Context, p *Profile) error {
	if err := ValidateProfile(p); err != nil {
		return err
	}
	p.UpdatedAt = s.now()
	if err := s.Store.UpdateProfile(ctx, p); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return errs.Wrap(errs.Conflict, "profile_name_taken", "an activation profile with this name exists", err)
		}
		return err
	}
	return nil
}

// DeleteProfile removes a profile; the default profile cannot be removed.
func (s *Service) DeleteProfile(ctx context.Context, id string) error {
	if id == s.DefaultProfileID {
		return errs.E(errs.Conflict, "default_profile", "the default activation profile cannot be deleted")
	}
	return s.Store.DeleteProfile(ctx, id)
}

// Assignment sources returned by EffectiveProfile.
const (
	SourceUser    = "user"
	SourceGroup   = "group"
	SourceDefault = "default"
)

// EffectiveProfile returns the activation profile that applies to a user
// and where it comes from: a direct assignment wins; else, among the
// profiles of the user's groups, the lowest rank (then name); else the
// default profile.
func (s *Service) EffectiveProfile(ctx context.Context, userID string) (*Profile, string, error) {
	u, err := s.Store.User(ctx, userID)
	if err != nil {
		return nil, "", err
	}
	return s.effectiveProfile(ctx, u)
}

func (s *Service) effectiveProfile(ctx context.Context, u *user.User) (*Profile, string, error) {
	if u.ActivationProfileID != "" {
		p, err := s.Store.Profile(ctx, u.ActivationProfileID)
		if err == nil {
			return p, SourceUser, nil
		}
		if !errors.Is(err, errs.ErrNotFound) {
			return nil, "", err
		}
	}
	groups, err := s.Store.GroupsOf(ctx, u.ID)
	if err != nil {
		return nil, "", fmt.Errorf("activation: groups of user: %w", err)
	}
	var best *Profile
	for _, g := range groups {
		if g.ActivationProfileID == "" {
			continue
		}
		p, err := s.Store.Profile(ctx, g.ActivationProfileID)
		if errors.Is(err, errs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if best == nil || p.Rank < best.Rank || (p.Rank == best.Rank && p.Name < best.Name) {
			best = p
		}
	}
	if best != nil {
		return best, SourceGroup, nil
	}
	p, err := s.Store.Profile(ctx, s.DefaultProfileID)
	if err != nil {
		return nil, "", fmt.Errorf("activation: default profile %q: %w", s.DefaultProfileID, err)
	}
	return p, SourceDefault, nil
}

// DefaultProfileName names the profile created on first start.
const DefaultProfileName = "Default"

// EnsureDefaultProfile returns the ID of the default activation profile,
// creating it on first start: every platform, "MDM controls" where it
// applies (else the platform's first type), 10 devices per user.
func (s *Service) EnsureDefaultProfile(ctx context.Context) (string, error) {
	all, err := s.Store.ListProfiles(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range all {
		if p.Name == DefaultProfileName {
			return p.ID, nil
		}
	}
	p := &Profile{Name: DefaultProfileName, Description: "Applies to users with no other activation profile.", Rank: 1_000_000, MaxDevices: 10, Types: map[Platform]Type{}}
	for _, pl := range Platforms {
		for _, ti := range Types {
			if Allows(ti.Type, pl) {
				p.Types[pl] = ti.Type
				break
			}
		}
	}
	if err := s.CreateProfile(ctx, p); err != nil {
		return "", err
	}
	return p.ID, nil
}
