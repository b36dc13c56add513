package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
)

// ErrTokenNotFound answers an unknown token ID.
var ErrTokenNotFound = errs.E(errs.NotFound, "token_not_found", "no such token, or it is already revoked")

// tokenIn is the body of POST /tokens.
type tokenIn struct {
	Name string `json:"name"`
	// ExpiresIn is a Go duration; absent or empty means no expiry.
	ExpiresIn string `json:"expires_in"`
}

// tokenCreated is the answer of POST /tokens: the only time the token's
// value is shown.
type tokenCreated struct {
	*auth.Token
	Value string `json:"token"`
}

func (a *API) listTokens(c *call) error {
	ts, err := a.d.Auth.ListTokens(c.ctx())
	if err != nil {
		return err
	}
	if c.admin.Scoped() {
		// A scoped administrator sees (and revokes) only their own
		// tokens: an unscoped one's are none of their business.
		ts = slices.DeleteFunc(ts, func(t *auth.Token) bool { return t.AdminID != c.admin.ID })
	}
	return c.reply(http.StatusOK, newList(ts, ""))
}

func (a *API) createToken(c *call) error {
	var in tokenIn
	if err := c.decode(&in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.ExpiresIn)
	if err != nil {
		return err
	}
	c.note("name", in.Name)
	plain, t, err := a.d.Auth.CreateToken(c.ctx(), c.admin.ID, in.Name, ttl)
	if err != nil {
		return err
	}
	c.objectID = t.ID
	if t.ExpiresAt != nil {
		c.note("expires_at", *t.ExpiresAt)
	}
	return c.reply(http.StatusCreated, tokenCreated{Token: t, Value: plain})
}

func (a *API) revokeToken(c *call) error {
	id, err := c.id("id", ErrTokenNotFound)
	if err != nil {
		return err
	}
	if c.admin.Scoped() {
		ts, err := a.d.Auth.ListTokens(c.ctx())
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ts, func(t *auth.Token) bool { return t.ID == id && t.AdminID == c.admin.ID }) {
			return ErrTokenNotFound
		}
	}
	if err := a.d.Auth.Revoke(c.ctx(), id); err != nil {
		return notFound(err, ErrTokenNotFound)
	}
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) listAudit(c *call) error {
	q := c.r.URL.Query()
	n, err := c.limit()
	if err != nil {
		return err
	}
	aq := audit.Query{Actor: q.Get("actor"), Action: q.Get("action"), ObjectID: q.Get("object"), Limit: n}
	if c.admin.Scoped() {
		// The trail names devices and users of every scope; a scoped
		// administrator reads only their own entries.
		if aq.Actor != "" && aq.Actor != c.admin.ID {
			return c.reply(http.StatusOK, newList([]*audit.Entry(nil), ""))
		}
		aq.Actor = c.admin.ID
	}
	for name, v := range map[string]string{"actor": aq.Actor, "action": aq.Action, "object": aq.ObjectID} {
		if v != "" && !validID(v) {
			return badQuery(name, "at most 64 printable characters")
		}
	}
	if s := q.Get("before"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			return badQuery("before", "an entry ID (next of the previous page)")
		}
		aq.BeforeID = id
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		if err != nil {
			return badQuery("since", "an RFC 3339 time")
		}
		aq.Since = t
	}
	es, err := a.d.Audit.List(c.ctx(), aq)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(es, nextAfter(len(es), n, func() string { return strconv.FormatInt(es[len(es)-1].ID, 10) })))
}
