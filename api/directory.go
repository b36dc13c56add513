package api

import (
	"net/http"

	"github.com/custos-uem/custos/errs"
)

// ErrNoDirectory answers the directory routes of a Core without one.
var ErrNoDirectory = errs.E(errs.Conflict, "directory_not_configured", "no company directory is configured (serve --ldap-url)")

// syncDirectory runs a directory sync now and answers its report; a
// directory that does not answer is 503 with its message, and nothing
// changed.
func (a *API) syncDirectory(c *call) error {
	if a.d.Directory == nil {
		return ErrNoDirectory
	}
	rep, err := a.d.Directory.Sync(c.ctx())
	if err != nil {
		return err
	}
	c.note("created", rep.Created)
	c.note("updated", rep.Updated)
	c.note("missing", rep.Missing)
	c.note("failed", rep.Failed)
	return c.reply(http.StatusOK, rep)
}

func (a *API) directoryStatus(c *call) error {
	if a.d.Directory == nil {
		return ErrNoDirectory
	}
	rep, ok := a.d.Directory.Last()
	if !ok {
		return errs.E(errs.NotFound, "directory_never_synced", "the directory has not been synchronised yet")
	}
	return c.reply(http.StatusOK, rep)
}
