package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/policy"
)

// Command body limits.
const (
	// MaxCommandBody: a type, a priority, an expiry and a payload of at most
	// command.MaxPayload.
	MaxCommandBody = command.MaxPayload + 4<<10
	// MaxBulkBody: command.MaxBulk device IDs of 36 bytes, each quoted and
	// followed by a comma (39 bytes: 3.9 MB), with a command. A body with
	// more IDs than MaxBulk that still fits is refused by count
	// (too_many_devices, 400); anything larger is body_too_large (413)
	// before it is read.
	MaxBulkBody = 4<<20 + MaxCommandBody
)

// Errors of the command routes.
var (
	// ErrDevicesNotFound refuses a bulk send naming a device that is
	// unknown, removed, not enrolled or outside the caller's scope. It names
	// none of them: which IDs exist outside one's scope is not one's to
	// learn.
	ErrDevicesNotFound = errs.E(errs.NotFound, "device_not_found", "a device of the list is unknown, removed, or not yours to manage; nothing was queued")
	errTooManyDevices  = func() *errs.Error {
		e := errs.E(errs.Invalid, "too_many_devices", fmt.Sprintf("a bulk send names at most %d devices", command.MaxBulk))
		e.Fields = map[string]string{"device_ids": fmt.Sprintf("1 to %d device IDs", command.MaxBulk)}
		return e
	}()
)

// commandIn is the body of POST /devices/{id}/commands; bulkIn adds the
// devices for POST /commands.
type commandIn struct {
	Type     command.Type    `json:"type"`
	Priority *int            `json:"priority"`
	Payload  json.RawMessage `json:"payload"`
	// ExpiresIn is a Go duration; empty takes command.DefaultTTL.
	ExpiresIn string `json:"expires_in"`
}

type bulkIn struct {
	DeviceIDs []string `json:"device_ids"`
	commandIn
}

// bulkQueued is the answer of POST /commands: the count and, per device,
// its command's ID (whole commands for 100,000 devices would be tens of
// megabytes).
type bulkQueued struct {
	Count int          `json:"count"`
	Items []queuedItem `json:"items"`
}

type queuedItem struct {
	ID       string `json:"id"`
	DeviceID string `json:"device_id"`
}

// needsWipe reports the command types that need auth.WipeSend on top of
// auth.CommandsSend: the two that delete data, and raw platform commands,
// which may carry any verb of the platform, an erase included.
func needsWipe(t command.Type) bool {
	return t == command.WipeWork || t == command.WipeDevice || t == command.Raw
}

// newCommand turns a body into what command.Service.Send takes.
func (c *call) newCommand(in *commandIn) (command.NewCommand, error) {
	ttl, err := parseTTL(in.ExpiresIn)
	if err != nil {
		return command.NewCommand{}, err
	}
	if string(in.Payload) == "null" {
		in.Payload = nil
	}
	c.note("type", in.Type)
	if needsWipe(in.Type) {
		if err := c.require(auth.WipeSend); err != nil {
			return command.NewCommand{}, err
		}
	}
	return command.NewCommand{Type: in.Type, Priority: in.Priority, Payload: in.Payload, TTL: ttl, CreatedBy: c.admin.ID}, nil
}

func (a *API) sendCommand(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	var in commandIn
	if err := c.decode(&in); err != nil {
		return err
	}
	nc, err := c.newCommand(&in)
	if err != nil {
		return err
	}
	c.note("device_id", d.ID)
	cmds, err := a.d.Commands.Send(c.ctx(), []string{d.ID}, nc)
	if err != nil {
		return notFound(err, ErrDeviceNotFound)
	}
	if len(cmds) == 0 {
		// A sync_config already pending: the device fetches the newest
		// configuration with it, so nothing new was queued.
		c.note("already_pending", true)
		return c.reply(http.StatusNoContent, nil)
	}
	c.objectID = cmds[0].ID
	return c.reply(http.StatusCreated, redactCommand(cmds[0]))
}

func (a *API) sendBulk(c *call) error {
	var in bulkIn
	if err := c.decode(&in); err != nil {
		return err
	}
	// Duplicates are one device: Send gives a device named twice one
	// command, and the scope count below must not see it twice.
	ids := make([]string, 0, len(in.DeviceIDs))
	seen := make(map[string]bool, len(in.DeviceIDs))
	for _, id := range in.DeviceIDs {
		if !validID(id) {
			e := errs.E(errs.Invalid, "invalid_device_ids", "device_ids holds something that is not a device ID")
			e.Fields = map[string]string{"device_ids": "device IDs"}
			return e
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	c.note("device_count", len(ids))
	switch {
	case len(ids) == 0:
		e := errs.E(errs.Invalid, "invalid_device_ids", "device_ids names no device")
		e.Fields = map[string]string{"device_ids": fmt.Sprintf("1 to %d device IDs", command.MaxBulk)}
		return e
	case len(ids) > command.MaxBulk:
		return errTooManyDevices
	}
	nc, err := c.newCommand(&in.commandIn)
	if err != nil {
		return err
	}
	// Scope first, whole: one device outside it refuses the call before
	// anything is queued.
	out, err := a.d.Auth.DevicesOutOfScope(c.ctx(), c.admin, ids)
	if err != nil {
		return err
	}
	if out > 0 {
		c.note("refused", out)
		return ErrDevicesNotFound
	}
	cmds, err := a.d.Commands.Send(c.ctx(), ids, nc)
	if err != nil {
		return notFound(err, ErrDevicesNotFound)
	}
	res := bulkQueued{Count: len(cmds), Items: make([]queuedItem, len(cmds))}
	for i, cmd := range cmds {
		res.Items[i] = queuedItem{ID: cmd.ID, DeviceID: cmd.DeviceID}
	}
	c.note("queued", len(cmds))
	return c.reply(http.StatusCreated, res)
}

func (a *API) listDeviceCommands(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	p, err := c.page()
	if err != nil {
		return err
	}
	q := command.Query{DeviceID: d.ID, After: p.After, Limit: p.Limit}
	switch c.r.URL.Query().Get("status") {
	case "":
	case "open":
		q.Open = true
	case "final":
		q.Final = true
	default:
		return badQuery("status", "open (the queue) or final (the history)")
	}
	cmds, err := a.d.Commands.List(c.ctx(), q)
	if err != nil {
		return err
	}
	next := nextAfter(len(cmds), p.Limit, func() string { return cmds[len(cmds)-1].ID })
	for i, cmd := range cmds {
		cmds[i] = redactCommand(cmd)
	}
	return c.reply(http.StatusOK, newList(cmds, next))
}

// command returns the command the path's {id} names if its device lies in
// the caller's scope; otherwise command_not_found, as for an unknown one.
func (a *API) command(c *call) (*command.Command, error) {
	id, err := c.id("id", command.ErrNotFound)
	if err != nil {
		return nil, err
	}
	cmd, err := a.d.Commands.Get(c.ctx(), id)
	if err != nil {
		return nil, notFound(err, command.ErrNotFound)
	}
	if c.admin.Scoped() {
		d, err := a.d.Devices.Store.Device(c.ctx(), cmd.DeviceID)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, command.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		if err := a.inScope(c, d.UserID, command.ErrNotFound); err != nil {
			return nil, err
		}
	}
	return cmd, nil
}

func (a *API) getCommand(c *call) error {
	cmd, err := a.command(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, redactCommand(cmd))
}

func (a *API) cancelCommand(c *call) error {
	cmd, err := a.command(c)
	if err != nil {
		return err
	}
	c.note("device_id", cmd.DeviceID)
	c.note("type", cmd.Type)
	cmd, err = a.d.Commands.Cancel(c.ctx(), cmd.ID)
	if err != nil {
		return notFound(err, command.ErrNotFound)
	}
	return c.reply(http.StatusOK, redactCommand(cmd))
}

// redactCommand hides the secrets of a command's payload (a set_password
// command's password, a lock's PIN; command.SecretMembers): the device
// needs them, an administrator reading the queue does not. A copy is
// returned; the stored command is unchanged.
func redactCommand(cmd *command.Command) *command.Command {
	secrets := command.SecretMembers(cmd.Type)
	if len(secrets) == 0 || len(cmd.Payload) == 0 {
		return cmd
	}
	var p map[string]any
	if err := json.Unmarshal(cmd.Payload, &p); err != nil {
		out := *cmd
		out.Payload = json.RawMessage(`{}`)
		return &out
	}
	for _, name := range secrets {
		if _, ok := p[name]; ok {
			p[name] = policy.RedactedSecret
		}
	}
	b, _ := json.Marshal(p)
	out := *cmd
	out.Payload = b
	return &out
}
