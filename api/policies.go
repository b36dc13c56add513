package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
)

// MaxPolicyBody: a name, a description (2 KiB), platforms and settings of
// at most policy.MaxSettings.
const MaxPolicyBody = policy.MaxSettings + 8<<10

// MaxAssignmentBody: a target kind and an ID.
const MaxAssignmentBody = 1 << 10

// policyIn is the body of POST /policies.
type policyIn struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Kind        policy.Kind     `json:"kind"`
	Rank        *int            `json:"rank"`
	Platforms   []string        `json:"platforms"`
	Settings    json.RawMessage `json:"settings"`
}

// DefaultPolicyRank is the rank of a policy created without one: the
// bottom of a long list, so that a new policy does not silently win over
// those already ranked.
const DefaultPolicyRank = 100

// assignmentIn is the body of POST /policies/{id}/assignments.
type assignmentIn struct {
	TargetKind string `json:"target_kind"`
	TargetID   string `json:"target_id"`
}

// notified reports a change saved whose devices could not be told (they
// pick it up at their next check-in): the answer is the change's, the
// audit entry and the log say what failed.
func notified(c *call, err error) error {
	if err != nil && errors.Is(err, policy.ErrNotNotified) {
		c.note("devices_not_notified", true)
		httpx.Logger(c.ctx()).Warn("api: devices not told of a policy change", "err", err)
		return nil
	}
	return err
}

func (a *API) listPolicies(c *call) error {
	p, err := c.page()
	if err != nil {
		return err
	}
	kind := policy.Kind(c.r.URL.Query().Get("kind"))
	if kind != "" && !kind.Valid() {
		return badQuery("kind", "a policy kind")
	}
	ps, err := a.d.Policies.List(c.ctx(), policy.ListQuery{Kind: kind, After: p.After, Limit: p.Limit})
	if err != nil {
		return err
	}
	out := make([]*policy.Policy, len(ps))
	for i, q := range ps {
		out[i] = policy.Redacted(q)
	}
	return c.reply(http.StatusOK, newList(out, nextAfter(len(ps), p.Limit, func() string { return ps[len(ps)-1].ID })))
}

func (a *API) createPolicy(c *call) error {
	var in policyIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("name", in.Name)
	c.note("kind", in.Kind)
	rank := DefaultPolicyRank
	if in.Rank != nil {
		rank = *in.Rank
	}
	p, err := a.d.Policies.Create(c.ctx(), policy.NewPolicy{Name: in.Name, Description: in.Description, Kind: in.Kind, Rank: rank, Platforms: in.Platforms, Settings: in.Settings})
	if err != nil {
		return err
	}
	c.objectID = p.ID
	return c.reply(http.StatusCreated, policy.Redacted(p))
}

func (a *API) getPolicy(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	p, err := a.d.Policies.Get(c.ctx(), id)
	if err != nil {
		return notFound(err, policy.ErrPolicyNotFound)
	}
	return c.reply(http.StatusOK, policy.Redacted(p))
}

func (a *API) updatePolicy(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	var in policy.Patch
	if err := c.decode(&in); err != nil {
		return err
	}
	var changed []string
	for name, set := range map[string]bool{"name": in.Name != nil, "description": in.Description != nil, "rank": in.Rank != nil, "platforms": in.Platforms != nil, "settings": in.Settings != nil} {
		if set {
			changed = append(changed, name)
		}
	}
	c.note("fields", sorted(changed)) // never the values: settings hold secrets
	p, err := a.d.Policies.Update(c.ctx(), id, in)
	if err := notified(c, err); err != nil {
		return notFound(err, policy.ErrPolicyNotFound)
	}
	c.note("revision", p.Revision)
	return c.reply(http.StatusOK, policy.Redacted(p))
}

func (a *API) deletePolicy(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	if err := notified(c, a.d.Policies.Delete(c.ctx(), id)); err != nil {
		return notFound(err, policy.ErrPolicyNotFound)
	}
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) listAssignments(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	// An unknown policy has no assignments in the store; answer 404 so
	// that a typing error is not an empty list.
	if _, err := a.d.Policies.Get(c.ctx(), id); err != nil {
		return notFound(err, policy.ErrPolicyNotFound)
	}
	as, err := a.d.Policies.Assignments(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(as, ""))
}

func validTarget(kind string) bool { return kind == policy.TargetUser || kind == policy.TargetGroup }

func (a *API) assignPolicy(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	var in assignmentIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("target_kind", in.TargetKind)
	c.note("target_id", in.TargetID)
	if !validTarget(in.TargetKind) || !validID(in.TargetID) {
		e := errs.E(errs.Invalid, "invalid_assignment", "an assignment names a user or a group by ID")
		e.Fields = map[string]string{}
		if !validTarget(in.TargetKind) {
			e.Fields["target_kind"] = "user or group"
		}
		if !validID(in.TargetID) {
			e.Fields["target_id"] = "a user or group ID"
		}
		return e
	}
	if err := notified(c, a.d.Policies.Assign(c.ctx(), id, in.TargetKind, in.TargetID)); err != nil {
		return err
	}
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) unassignPolicy(c *call) error {
	id, err := c.id("id", policy.ErrPolicyNotFound)
	if err != nil {
		return err
	}
	kind := c.r.PathValue("targetKind")
	tid, err := c.id("targetID", policy.ErrAssignmentNotFound)
	if err != nil {
		return err
	}
	if !validTarget(kind) {
		return policy.ErrAssignmentNotFound
	}
	c.note("target_kind", kind)
	c.note("target_id", tid)
	if err := notified(c, a.d.Policies.Unassign(c.ctx(), id, kind, tid)); err != nil {
		return notFound(err, policy.ErrAssignmentNotFound)
	}
	return c.reply(http.StatusNoContent, nil)
}
