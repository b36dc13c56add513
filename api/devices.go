package api

import (
	"errors"
	"net/http"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
)

// ErrDeviceNotFound answers an unknown (or already removed, for DELETE)
// device.
var ErrDeviceNotFound = errs.E(errs.NotFound, "device_not_found", "no such device, or it is already removed")

// deviceView is a device with its user's email.
type deviceView struct {
	*device.Device
	UserEmail string `json:"user_email"`
}

// deviceDetail is a device with its user's email and its last report
// (null before the first one).
type deviceDetail struct {
	*device.Device
	UserEmail string            `json:"user_email"`
	Inventory *device.Inventory `json:"inventory"`
}

func validState(s device.State) bool {
	switch s {
	case device.StateActivating, device.StateEnrolled, device.StateActive, device.StateRemoved:
		return true
	}
	return false
}

// emails looks up users' emails once per user.
type emails struct {
	a     *API
	c     *call
	cache map[string]string
}

func (e *emails) of(userID string) (string, error) {
	if v, ok := e.cache[userID]; ok {
		return v, nil
	}
	u, err := e.a.d.Users.Get(e.c.ctx(), userID)
	var email string
	switch {
	case err == nil:
		email = u.Email
	case errs.Is(err, errs.NotFound):
	default:
		return "", err
	}
	e.cache[userID] = email
	return email, nil
}

func (a *API) listDevices(c *call) error {
	p, err := c.page()
	if err != nil {
		return err
	}
	uid, err := c.queryID("user")
	if err != nil {
		return err
	}
	st := device.State(c.r.URL.Query().Get("state"))
	if st != "" && !validState(st) {
		return badQuery("state", "one of activating, enrolled, active, removed")
	}
	q := device.Query{UserID: uid, State: st, After: p.After, Limit: p.Limit}
	var ds []*device.Device
	if c.admin.Scoped() {
		ds, err = a.d.Auth.ScopedDevices(c.ctx(), c.admin, q)
	} else {
		ds, err = a.d.Devices.Store.ListDevices(c.ctx(), q)
	}
	if err != nil {
		return err
	}
	em := &emails{a: a, c: c, cache: map[string]string{}}
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		email, err := em.of(d.UserID)
		if err != nil {
			return err
		}
		out = append(out, deviceView{Device: d, UserEmail: email})
	}
	return c.reply(http.StatusOK, newList(out, nextAfter(len(ds), p.Limit, func() string { return ds[len(ds)-1].ID })))
}

// device returns the device the path's {id} names if it lies in the
// caller's scope. A device outside it is ErrDeviceNotFound, exactly like
// an unknown one: a scoped administrator does not learn that it exists.
func (a *API) device(c *call) (*device.Device, error) {
	id, err := c.id("id", ErrDeviceNotFound)
	if err != nil {
		return nil, err
	}
	d, err := a.d.Devices.Store.Device(c.ctx(), id)
	if err != nil {
		return nil, notFound(err, ErrDeviceNotFound)
	}
	if err := a.inScope(c, d.UserID, ErrDeviceNotFound); err != nil {
		return nil, err
	}
	return d, nil
}

// inScope returns notFound unless the user's devices lie in the caller's
// scope.
func (a *API) inScope(c *call, userID string, notFound *errs.Error) error {
	ok, err := a.d.Auth.UserInScope(c.ctx(), c.admin, userID)
	if err != nil {
		return err
	}
	if !ok {
		return notFound
	}
	return nil
}

func (a *API) getDevice(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	id := d.ID
	em := &emails{a: a, c: c, cache: map[string]string{}}
	email, err := em.of(d.UserID)
	if err != nil {
		return err
	}
	inv, err := a.d.Devices.Store.Inventory(c.ctx(), id)
	if errors.Is(err, errs.ErrNotFound) {
		inv, err = nil, nil
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, deviceDetail{Device: d, UserEmail: email, Inventory: inv})
}

func (a *API) removeDevice(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	id := d.ID
	c.note("user_id", d.UserID)
	c.note("hardware_id", d.HardwareID)
	if err := a.d.Devices.Remove(c.ctx(), id); err != nil {
		return notFound(err, ErrDeviceNotFound)
	}
	return c.reply(http.StatusNoContent, nil)
}
