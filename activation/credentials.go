package activation

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/custos-uem/custos/errs"
)

// CheckCredentials checks a login and activation password as Activate
// does (same answers, same failure counting and lock, same time for an
// unknown login) and that the user's activation profile allows platform,
// without creating anything or consuming the password. It serves
// protocols that authenticate the user in a step before the one that
// activates (Windows MS-XCEP GetPolicies before MS-WSTEP enrollment).
func (s *Service) CheckCredentials(ctx context.Context, login, password string, platform Platform) error {
	if login == "" || len(login) > MaxField || password == "" || len(password) > MaxPasswordLen {
		return s.fail(ErrInvalidCredentials)
	}
	now := s.now()
	u, err := s.Store.UserByLogin(ctx, strings.ToLower(login))
	if errors.Is(err, errs.ErrNotFound) {
		subtle.ConstantTimeCompare(s.hashPassword("", password), dummyHash)
		return s.fail(ErrInvalidCredentials)
	}
	if err != nil {
		return fmt.Errorf("activation: find user: %w", err)
	}
	if u.ActivationLockedUntil != nil && now.Before(*u.ActivationLockedUntil) {
		return s.fail(ErrLocked)
	}
	if _, err := s.matchPassword(ctx, u.ID, password, now); err != nil {
		if errs.KindOf(err) == errs.Unauthenticated {
			if _, rerr := s.Store.RecordFailure(ctx, u.ID, orDefault(s.FailureLimit, DefaultFailureLimit), now.Add(orDefault(s.LockDuration, DefaultLockDuration))); rerr != nil {
				return fmt.Errorf("activation: count failure: %w", rerr)
			}
		}
		return s.fail(err)
	}
	prof, _, err := s.effectiveProfile(ctx, u)
	if err != nil {
		return err
	}
	if _, ok := prof.Types[platform]; !ok {
		return s.fail(ErrPlatformNotAllowed)
	}
	return nil
}

// EnrollAnySubject is Enroll for devices that build their CSR before they
// know their device ID (Windows MS-WSTEP, where the device chooses the
// request's subject): the CSR's subject is ignored and the certificate
// names the session's device, as with Enroll. Everything else (signature
// and key checks, session and password consumed in one transaction) is
// Enroll's.
func (s *Service) EnrollAnySubject(ctx context.Context, token string, csrBytes []byte) (*Enrollment, error) {
	return s.enroll(ctx, token, csrBytes, true)
}
