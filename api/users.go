package api

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/user"
)

// userIn is the body of POST and PATCH /users: absent fields are
// unchanged by PATCH.
type userIn struct {
	Email               *string `json:"email"`
	Username            *string `json:"username"`
	DisplayName         *string `json:"display_name"`
	ActivationProfileID *string `json:"activation_profile_id"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkProfile refuses an assignment to a profile that does not exist.
func (a *API) checkProfile(c *call, id *string) error {
	if id == nil || *id == "" {
		return nil
	}
	e := errs.E(errs.Invalid, "activation_profile_not_found", "no activation profile has this ID")
	e.Fields = map[string]string{"activation_profile_id": "no such activation profile"}
	if !validID(*id) {
		return e
	}
	if _, err := a.d.Activation.Store.Profile(c.ctx(), *id); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			e.Cause = err
			return e
		}
		return err
	}
	return nil
}

func (a *API) listUsers(c *call) error {
	if login := c.r.URL.Query().Get("login"); login != "" {
		u, err := a.d.Users.ByLogin(c.ctx(), login)
		if errs.Is(err, errs.NotFound) {
			return c.reply(http.StatusOK, newList[*user.User](nil, ""))
		}
		if err != nil {
			return err
		}
		return c.reply(http.StatusOK, newList([]*user.User{u}, ""))
	}
	p, err := c.page()
	if err != nil {
		return err
	}
	us, err := a.d.Users.List(c.ctx(), p)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(us, nextAfter(len(us), p.Limit, func() string { return us[len(us)-1].ID })))
}

func (a *API) createUser(c *call) error {
	var in userIn
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := a.checkProfile(c, in.ActivationProfileID); err != nil {
		return err
	}
	u, err := a.d.Users.Create(c.ctx(), user.NewUser{Email: str(in.Email), Username: str(in.Username), DisplayName: str(in.DisplayName), ActivationProfileID: str(in.ActivationProfileID)})
	if err != nil {
		return err
	}
	c.objectID = u.ID
	c.note("email", u.Email)
	c.note("username", u.Username)
	return c.reply(http.StatusCreated, u)
}

func (a *API) getUser(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	u, err := a.d.Users.Get(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, u)
}

func (a *API) updateUser(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	var in userIn
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := a.checkProfile(c, in.ActivationProfileID); err != nil {
		return err
	}
	var changed []string
	for name, set := range map[string]bool{"email": in.Email != nil, "username": in.Username != nil, "display_name": in.DisplayName != nil, "activation_profile_id": in.ActivationProfileID != nil} {
		if set {
			changed = append(changed, name)
		}
	}
	c.note("fields", sorted(changed))
	if in.ActivationProfileID != nil {
		c.note("activation_profile_id", *in.ActivationProfileID)
	}
	u, err := a.d.Users.Update(c.ctx(), id, user.UserPatch{Email: in.Email, Username: in.Username, DisplayName: in.DisplayName, ActivationProfileID: in.ActivationProfileID})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, u)
}

func (a *API) deleteUser(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	if err := a.userInScope(c, id); err != nil {
		return err
	}
	if err := a.d.Users.Delete(c.ctx(), id); err != nil {
		return err
	}
	return c.reply(http.StatusNoContent, nil)
}

// effectiveProfile is the answer of GET /users/{id}/effective-profile.
type effectiveProfile struct {
	Profile *activation.Profile `json:"profile"`
	// Source is "user", "group" or "default".
	Source string `json:"source"`
}

func (a *API) userEffectiveProfile(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	if _, err := a.d.Users.Get(c.ctx(), id); err != nil {
		return err
	}
	p, src, err := a.d.Activation.EffectiveProfile(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, effectiveProfile{Profile: p, Source: src})
}

// passwordIn is the body of POST /users/{id}/activation-passwords.
type passwordIn struct {
	// Password is the administrator's choice; absent or empty generates
	// one.
	Password string `json:"password"`
	// ExpiresIn is a Go duration; absent takes the default (30 days).
	ExpiresIn string `json:"expires_in"`
	// SendEmail sends the activation email (instructions, password, QR
	// code) to the user's address.
	SendEmail bool `json:"send_email"`
}

// emailOutcome says whether the activation email left. A failure leaves
// the password valid and shown in the same answer: nothing is lost.
type emailOutcome struct {
	Sent  bool               `json:"sent"`
	Error *httpx.ErrorDetail `json:"error,omitempty"`
}

// passwordCreated is the answer of POST …/activation-passwords: the only
// time the password is shown.
type passwordCreated struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Password  string    `json:"password"`
	Generated bool      `json:"generated"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Email is present when send_email was asked.
	Email *emailOutcome `json:"email,omitempty"`
}

// ErrMailNotConfigured refuses send_email when the Core has no SMTP server.
var ErrMailNotConfigured = errs.E(errs.Invalid, "mail_not_configured", "no SMTP server is configured (serve --smtp-host); the password was not set")

func (a *API) setPassword(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	var in passwordIn
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.ExpiresIn)
	if err != nil {
		return err
	}
	u, err := a.d.Users.Get(c.ctx(), id)
	if err != nil {
		return err
	}
	if in.SendEmail && (a.d.SendActivationEmail == nil || u.Email == "") {
		if u.Email == "" {
			return errs.E(errs.Invalid, "user_has_no_email", "the user has no email address; the password was not set")
		}
		return ErrMailNotConfigured
	}
	generated := in.Password == ""
	c.note("generated", generated)
	plain, p, err := a.d.Activation.SetPassword(c.ctx(), activation.SetPasswordInput{UserID: id, Password: in.Password, TTL: ttl, CreatedBy: c.admin.ID})
	if err != nil {
		return notFound(err, user.ErrUserNotFound)
	}
	c.note("password_id", p.ID)
	c.note("expires_at", p.ExpiresAt)
	out := passwordCreated{ID: p.ID, UserID: p.UserID, Password: plain, Generated: generated, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt}
	if in.SendEmail {
		out.Email = &emailOutcome{Sent: true}
		if err := a.d.SendActivationEmail(c.ctx(), u, plain, p.ExpiresAt); err != nil {
			code, msg, _ := errs.Public(err)
			httpx.Logger(c.ctx()).Warn("activation email not sent", "user", u.ID, "err", err)
			out.Email = &emailOutcome{Error: &httpx.ErrorDetail{Code: code, Message: msg}}
		}
		c.note("email_sent", out.Email.Sent)
	}
	return c.reply(http.StatusCreated, out)
}

func (a *API) listPasswords(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	if _, err := a.d.Users.Get(c.ctx(), id); err != nil {
		return err
	}
	ps, err := a.d.Activation.Passwords(c.ctx(), id)
	if err != nil {
		return notFound(err, user.ErrUserNotFound)
	}
	return c.reply(http.StatusOK, newList(ps, ""))
}

// revoked is the answer of a bulk revocation.
type revoked struct {
	Revoked int `json:"revoked"`
}

func (a *API) revokePasswords(c *call) error {
	id, err := c.id("id", user.ErrUserNotFound)
	if err != nil {
		return err
	}
	if _, err := a.d.Users.Get(c.ctx(), id); err != nil {
		return err
	}
	n, err := a.d.Activation.RevokePasswords(c.ctx(), id)
	if err != nil {
		return notFound(err, user.ErrUserNotFound)
	}
	c.note("revoked", n)
	return c.reply(http.StatusOK, revoked{Revoked: n})
}

func sorted(s []string) []string {
	if s == nil {
		return []string{}
	}
	slices.Sort(s)
	return s
}
