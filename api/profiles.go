package api

import (
	"net/http"
	"strings"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
)

// ErrProfileNotFound answers an unknown activation profile.
var ErrProfileNotFound = errs.E(errs.NotFound, "profile_not_found", "no such activation profile")

// Defaults of a new activation profile.
const (
	DefaultProfileRank       = 100
	DefaultProfileMaxDevices = 10
)

// profileIn is the body of POST and PATCH /activation-profiles. PATCH
// replaces types as a whole when it is present.
type profileIn struct {
	Name        *string                                 `json:"name"`
	Description *string                                 `json:"description"`
	Rank        *int                                    `json:"rank"`
	MaxDevices  *int                                    `json:"max_devices"`
	Types       map[activation.Platform]activation.Type `json:"types"`
}

func (in *profileIn) apply(p *activation.Profile) []string {
	var changed []string
	if in.Name != nil {
		p.Name, changed = *in.Name, append(changed, "name")
	}
	if in.Description != nil {
		p.Description, changed = *in.Description, append(changed, "description")
	}
	if in.Rank != nil {
		p.Rank, changed = *in.Rank, append(changed, "rank")
	}
	if in.MaxDevices != nil {
		p.MaxDevices, changed = *in.MaxDevices, append(changed, "max_devices")
	}
	if in.Types != nil {
		p.Types, changed = in.Types, append(changed, "types")
	}
	return changed
}

// checkText refuses NUL bytes, which no database text column stores;
// activation.ValidateProfile checks the rest.
func checkText(p *activation.Profile) error {
	if strings.ContainsRune(p.Name, 0) || strings.ContainsRune(p.Description, 0) {
		e := errs.E(errs.Invalid, "invalid_activation_profile", "the activation profile has invalid fields")
		e.Fields = map[string]string{"name": "text without NUL characters"}
		return e
	}
	return nil
}

func (a *API) listProfiles(c *call) error {
	ps, err := a.d.Activation.Store.ListProfiles(c.ctx())
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(ps, ""))
}

func (a *API) createProfile(c *call) error {
	var in profileIn
	if err := c.decode(&in); err != nil {
		return err
	}
	p := &activation.Profile{Rank: DefaultProfileRank, MaxDevices: DefaultProfileMaxDevices}
	in.apply(p)
	if err := checkText(p); err != nil {
		return err
	}
	if err := a.d.Activation.CreateProfile(c.ctx(), p); err != nil {
		return err
	}
	c.objectID = p.ID
	c.note("name", p.Name)
	c.note("types", p.Types)
	return c.reply(http.StatusCreated, p)
}

func (a *API) profile(c *call) (*activation.Profile, error) {
	id, err := c.id("id", ErrProfileNotFound)
	if err != nil {
		return nil, err
	}
	p, err := a.d.Activation.Store.Profile(c.ctx(), id)
	if err != nil {
		return nil, notFound(err, ErrProfileNotFound)
	}
	return p, nil
}

func (a *API) getProfile(c *call) error {
	p, err := a.profile(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, p)
}

func (a *API) updateProfile(c *call) error {
	var in profileIn
	if err := c.decode(&in); err != nil {
		return err
	}
	p, err := a.profile(c)
	if err != nil {
		return err
	}
	c.note("fields", sorted(in.apply(p)))
	if err := checkText(p); err != nil {
		return err
	}
	if err := a.d.Activation.UpdateProfile(c.ctx(), p); err != nil {
		return notFound(err, ErrProfileNotFound)
	}
	return c.reply(http.StatusOK, p)
}

func (a *API) deleteProfile(c *call) error {
	id, err := c.id("id", ErrProfileNotFound)
	if err != nil {
		return err
	}
	if err := a.d.Activation.DeleteProfile(c.ctx(), id); err != nil {
		return notFound(err, ErrProfileNotFound)
	}
	return c.reply(http.StatusNoContent, nil)
}

// activationTypes is the answer of GET /activation-types.
type activationTypes struct {
	Items     []activation.TypeInfo `json:"items"`
	Platforms []activation.Platform `json:"platforms"`
	Next      string                `json:"next"`
}

func (a *API) listTypes(c *call) error {
	return c.reply(http.StatusOK, activationTypes{Items: activation.Types, Platforms: activation.Platforms})
}
