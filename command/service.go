package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/secret"
)

// Service is the command queue's domain service: it validates what
// administrators and the system send and what devices report, and keeps the
// queue through its Store.
type Service struct {
	Store Store
	// Notify, if set, is called with the devices that got a new command,
	// after the commands are committed (a push sent earlier could make a
	// device ask before its command is visible). It is a hint: it must not
	// block for long, and its failures are its own (polling delivers
	// anyway).
	Notify func(deviceIDs []string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Box, when set, seals the password of a set_password command before
	// it is stored; Next opens it for the device. Every other read (the
	// operator API) sees the sealed text, which the API shows as "***".
	Box *secret.Box
	// Retention is how long a final command is kept, from its creation,
	// before Prune deletes it; zero or negative keeps every command.
	Retention time.Duration
}

// sweepBatch bounds the commands one ExpireCommands or PruneCommands call
// changes, so that a sweep after a long outage (or the first prune of a
// long history) is many short transactions, not one long one holding
// SQLite's writer.
const sweepBatch = 1000

// now returns the time as stores keep it: UTC, whole microseconds, so the
// commands Send returns equal the stored ones.
func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return now().UTC().Truncate(time.Microsecond)
}

// DefaultPriority is the priority of a command of type t when the sender
// names none: wiping outranks IT administration, which outranks
// configuration, which outranks requests for information.
func DefaultPriority(t Type) int {
	switch t {
	case WipeWork, WipeDevice:
		return PriorityWipe
	case Lock, ClearPasscode, SetPassword, Restart:
		return PriorityAdmin
	case DeviceInfo, InstalledApps, Message:
		return PriorityInfo
	}
	return PriorityConfig
}

// field is one payload member of a command type.
type field struct {
	required bool
	// min and max bound a string member's length in bytes; max 0 means the
	// member is any JSON value but null (a raw command's body).
	min, max int
	url      bool // an https URL
	digits   bool // ASCII digits only
	// secret members are sealed at rest when the Service has a Box,
	// opened only for the device, and redacted in every other read.
	secret bool
}

// Payload limits.
const (
	MinPassword    = 4
	MaxPassword    = 128
	MaxAppID       = 256
	MaxAppURL      = 2048
	MaxMessageText = 1024
	MaxPlatform    = 32
	MaxPhoneNumber = 64
)

// payloads lists the members each type's payload may have; a type absent
// here is unknown, and a type with no members takes no payload.
var payloads = map[Type]map[string]field{
	Lock:          {"message": {max: MaxMessageText}, "phone_number": {max: MaxPhoneNumber}, "pin": findMyPIN},
	ClearPasscode: {},
	SetPassword:   {"password": {required: true, min: MinPassword, max: MaxPassword, secret: true}},
	WipeWork:      {},
	WipeDevice:    {"pin": findMyPIN},
	Restart:       {},
	DeviceInfo:    {},
	InstalledApps: {},
	InstallApp:    {"app_id": {required: true, min: 1, max: MaxAppID}, "url": {min: 1, max: MaxAppURL, url: true}},
	RemoveApp:     {"app_id": {required: true, min: 1, max: MaxAppID}},
	SyncConfig:    {},
	Message:       {"text": {required: true, min: 1, max: MaxMessageText}},
	Raw:           {"platform": {required: true, min: 1, max: MaxPlatform}, "body": {required: true}},
}

// findMyPIN is the PIN a Mac asks for after a remote lock or erase
// (Apple, DeviceLockCommand.Command.PIN and EraseDeviceCommand.Command.PIN:
// "the six-character PIN for Find My", macOS only; other platforms ignore
// it). The administrator chooses it, so it is the only way to unlock the
// Mac again: it is a secret.
var findMyPIN = field{min: 6, max: 6, digits: true, secret: true}

// SecretMembers returns the payload members of type t that are secrets
// (sealed at rest with the Service's Box, redacted in every read but the
// device's), in name order. The slice is shared: callers must not change
// it.
func SecretMembers(t Type) []string { return secretMembers[t] }

// secretMembers is SecretMembers' answer for every type, computed once:
// the Apple round trip asks for each command it delivers.
var secretMembers = func() map[Type][]string {
	m := map[Type][]string{}
	for t, fields := range payloads {
		for name, f := range fields {
			if f.secret {
				m[t] = append(m[t], name)
			}
		}
		slices.Sort(m[t])
	}
	return m
}()

// Known reports whether t is a command type.
func Known(t Type) bool {
	_, ok := payloads[t]
	return ok
}

// ValidatePayload checks the payload of a command of type t and returns
// what is wrong with it, keyed by field ("payload" or "payload.NAME"), or
// nil. An empty or null payload is no payload. The type must be known.
func ValidatePayload(t Type, p json.RawMessage) map[string]string {
	fields, ok := payloads[t]
	if !ok {
		return map[string]string{"type": "unknown command type"}
	}
	if len(p) > MaxPayload {
		return map[string]string{"payload": fmt.Sprintf("at most %d bytes", MaxPayload)}
	}
	members, err := decodeObject(p)
	if err != nil {
		return map[string]string{"payload": err.Error()}
	}
	bad := map[string]string{}
	for name := range members {
		if _, ok := fields[name]; !ok {
			bad["payload."+name] = "unknown field"
		}
	}
	for name, f := range fields {
		raw, ok := members[name]
		switch {
		case !ok && f.required:
			bad["payload."+name] = "required"
		case !ok:
		case f.max == 0:
			if bytes.Equal(raw, []byte("null")) {
				bad["payload."+name] = "required"
			}
		default:
			if msg := checkString(raw, f); msg != "" {
				bad["payload."+name] = msg
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return bad
}

// decodeObject decodes a payload's members. An empty or null payload has
// none. A payload that is not one JSON object, or names a member twice (a
// validator and a device could read different values), is an error.
func decodeObject(p json.RawMessage) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(p)) == 0 || bytes.Equal(bytes.TrimSpace(p), []byte("null")) {
		return nil, nil
	}
	if !utf8.Valid(p) {
		return nil, errors.New("must be UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("must be a JSON object")
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("must be a JSON object")
		}
		name := tok.(string) // inside an object the decoder yields keys as strings
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("field %q appears twice", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("must be a JSON object")
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("must be a JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("must be one JSON object")
	}
	return members, nil
}

// checkString checks a string member against f and says what is wrong.
func checkString(raw json.RawMessage, f field) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "must be a string"
	}
	if f.digits && (len(s) != f.max || strings.Trim(s, "0123456789") != "") {
		return fmt.Sprintf("must be %d digits", f.max)
	}
	if len(s) < f.min || len(s) > f.max {
		if f.min > 0 {
			return fmt.Sprintf("between %d and %d bytes", f.min, f.max)
		}
		return fmt.Sprintf("at most %d bytes", f.max)
	}
	if f.url {
		if u, err := url.Parse(s); err != nil || u.Scheme != "https" || u.Host == "" {
			return "must be an https URL"
		}
	}
	return ""
}

func invalidCommand(fields map[string]string) error {
	return &errs.Error{Kind: errs.Invalid, Code: "invalid_command", Message: "the command is invalid", Fields: fields}
}

// Send queues the command for every device in one transaction and returns
// the stored commands, one per device, in the order of deviceIDs (a
// device named twice gets one command). For SyncConfig, a device that
// already has one pending keeps it and gets no second one (see
// Store.Enqueue); the result leaves it out. An unknown or removed device
// fails the whole call with an errs.NotFound error, and nothing is stored.
func (s *Service) Send(ctx context.Context, deviceIDs []string, in NewCommand) ([]*Command, error) {
	if in.CreatedBy == "" {
		return nil, errors.New("command: send: CreatedBy is empty") // a caller's bug, not the client's
	}
	bad := map[string]string{}
	if !Known(in.Type) {
		bad["type"] = "unknown command type"
	} else if fields := ValidatePayload(in.Type, in.Payload); fields != nil {
		bad = fields
	}
	priority := DefaultPriority(in.Type)
	if in.Priority != nil {
		priority = *in.Priority
		if priority < MinPriority || priority > MaxPriority {
			bad["priority"] = fmt.Sprintf("between %d and %d", MinPriority, MaxPriority)
		}
	}
	ttl := in.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < 0 || ttl > MaxTTL:
		bad["ttl"] = fmt.Sprintf("between 0 and %v", MaxTTL)
	}
	devices, msg := distinct(deviceIDs)
	if msg != "" {
		bad["devices"] = msg
	}
	if len(bad) > 0 {
		return nil, invalidCommand(bad)
	}
	payload := in.Payload
	if members, _ := decodeObject(payload); len(members) == 0 {
		payload = nil // empty, null and {} are all no payload
	}
	if s.Box != nil {
		var err error
		if payload, err = mapSecrets(in.Type, payload, func(v string) (string, error) { return s.Box.Seal(v), nil }); err != nil {
			return nil, fmt.Errorf("command: seal the secrets of a %s command: %w", in.Type, err)
		}
	}
	now := s.now()
	cmds := make([]*Command, len(devices))
	for i, d := range devices {
		cmds[i] = &Command{ID: id.New(), DeviceID: d, Type: in.Type, Priority: priority, Payload: payload,
			Status: StatusPending, CreatedBy: in.CreatedBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	n, err := s.Store.Enqueue(ctx, cmds)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, "device_not_found", "a device does not exist or was removed", err)
	}
	if err != nil {
		return nil, fmt.Errorf("command: send %s to %d devices: %w", in.Type, len(cmds), err)
	}
	if n < len(cmds) {
		stored := make([]*Command, 0, n)
		for _, c := range cmds {
			if c.ID != "" {
				stored = append(stored, c)
			}
		}
		cmds = stored
	}
	if s.Notify != nil && len(cmds) > 0 {
		notify := make([]string, len(cmds))
		for i, c := range cmds {
			notify[i] = c.DeviceID
		}
		s.Notify(notify)
	}
	return cmds, nil
}

// distinct returns ids without repeats, in first-seen order, or what is
// wrong with the list.
func distinct(ids []string) ([]string, string) {
	switch {
	case len(ids) == 0:
		return nil, "at least one device"
	case len(ids) > MaxBulk:
		return nil, fmt.Sprintf("at most %d devices", MaxBulk)
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, d := range ids {
		if d == "" {
			return nil, "empty device ID"
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, ""
}

// Next hands the device its next due command, or ErrIdle.
func (s *Service) Next(ctx context.Context, deviceID string) (*Command, error) {
	c, err := s.Store.Next(ctx, deviceID, s.now())
	if err != nil && !errors.Is(err, ErrIdle) {
		return nil, fmt.Errorf("command: next for device %s: %w", deviceID, err)
	}
	if err != nil {
		return nil, err
	}
	return s.Reveal(c)
}

// Reveal opens the sealed secrets of c's payload (a set_password
// command's password, a lock's PIN) for its device, in place, and returns
// c. Next does this itself; a platform that takes its next command from
// the store directly (the Apple round trip) calls it before rendering.
func (s *Service) Reveal(c *Command) (*Command, error) {
	if c == nil || s.Box == nil {
		return c, nil
	}
	p, err := mapSecrets(c.Type, c.Payload, s.Box.Open)
	if err != nil {
		return nil, fmt.Errorf("command: open the secrets of %s: %w", c.ID, err)
	}
	c.Payload = p
	return c, nil
}

// mapSecrets rewrites the secret members present in a payload of type t
// with f; a payload without any is returned as it is.
func mapSecrets(t Type, payload json.RawMessage, f func(string) (string, error)) (json.RawMessage, error) {
	names := SecretMembers(t)
	if len(names) == 0 || len(payload) == 0 {
		return payload, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	changed := false
	for _, name := range names {
		raw, ok := m[name]
		if !ok {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		out, err := f(v)
		if err != nil {
			return nil, err
		}
		m[name], _ = json.Marshal(out)
		changed = true
	}
	if !changed {
		return payload, nil
	}
	return json.Marshal(m)
}

// ValidateResult checks a device's result and returns what is wrong with
// it, keyed by field, or nil.
func ValidateResult(r Result) map[string]string {
	bad := map[string]string{}
	if r.CommandID == "" {
		bad["command_id"] = "required"
	}
	switch r.Status {
	case StatusAcknowledged, StatusError, StatusNotNow:
	default:
		bad["status"] = "one of acknowledged, error, not_now"
	}
	switch {
	case len(r.Message) > MaxResultMessage:
		bad["message"] = fmt.Sprintf("at most %d bytes", MaxResultMessage)
	case !validText(r.Message):
		// PostgreSQL's TEXT refuses both; refuse them here, as the
		// client's mistake, not the database's failure.
		bad["message"] = "must be UTF-8 without NUL characters"
	}
	switch {
	case len(r.Data) > MaxResultData:
		bad["data"] = fmt.Sprintf("at most %d bytes", MaxResultData)
	case len(r.Data) > 0 && (!utf8.Valid(r.Data) || !json.Valid(r.Data)):
		bad["data"] = "must be JSON"
	}
	if len(bad) == 0 {
		return nil
	}
	return bad
}

func validText(s string) bool {
	return utf8.ValidString(s) && !bytes.ContainsRune([]byte(s), 0)
}

// Report records a device's result for one of its commands and returns the
// command as stored; duplicate reports a result repeated for a command
// already final, which changes nothing. A result for a command not queued
// for the device, or never delivered to it, is ErrUnknownCommand.
func (s *Service) Report(ctx context.Context, deviceID string, r Result) (*Command, bool, error) {
	if bad := ValidateResult(r); bad != nil {
		return nil, false, &errs.Error{Kind: errs.Invalid, Code: "invalid_result", Message: "the result is invalid", Fields: bad}
	}
	if bytes.Equal(bytes.TrimSpace(r.Data), []byte("null")) {
		r.Data = nil
	}
	c, dup, err := s.Store.Complete(ctx, deviceID, r, s.now())
	if err != nil {
		return nil, false, fmt.Errorf("command: result for %s from device %s: %w", r.CommandID, deviceID, err)
	}
	return c, dup, nil
}

// Cancel cancels an open command: ErrNotFound for an unknown one, ErrFinal
// for one already completed.
func (s *Service) Cancel(ctx context.Context, id string) (*Command, error) {
	c, err := s.Store.Cancel(ctx, id, s.now())
	if err != nil {
		return nil, fmt.Errorf("command: cancel %s: %w", id, err)
	}
	return c, nil
}

// Get returns one command, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Command, error) {
	c, err := s.Store.Command(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("command: get %s: %w", id, err)
	}
	return c, nil
}

// List lists commands matching q in ID order, at most MaxPage.
func (s *Service) List(ctx context.Context, q Query) ([]*Command, error) {
	q.Limit = min(q.Limit, MaxPage)
	cs, err := s.Store.ListCommands(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("command: list: %w", err)
	}
	return cs, nil
}

// Prune deletes the final commands created more than Retention ago, in
// batches, and returns how many it deleted; with no Retention it deletes
// nothing. Several Core processes may prune at once.
func (s *Service) Prune(ctx context.Context) (int, error) {
	if s.Retention <= 0 {
		return 0, nil
	}
	before := s.now().Add(-s.Retention)
	return sweep(ctx, "prune", func(limit int) (int, error) { return s.Store.PruneCommands(ctx, before, limit) })
}

// Expire marks every open command past its ExpiresAt expired, in batches,
// and returns how many it marked. Several Core processes may sweep at once.
func (s *Service) Expire(ctx context.Context) (int, error) {
	now := s.now()
	return sweep(ctx, "expire", func(limit int) (int, error) { return s.Store.ExpireCommands(ctx, now, limit) })
}

// sweep calls batch with sweepBatch until a call changes fewer commands,
// fails, or ctx is done, and returns how many commands the calls changed.
func sweep(ctx context.Context, op string, batch func(limit int) (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch(sweepBatch)
		total += n
		if err != nil {
			return total, fmt.Errorf("command: %s: %w", op, err)
		}
		if n < sweepBatch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
