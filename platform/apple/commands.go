package apple

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// Report statuses (Apple, "Commands and Queries": the Status key).
const (
	StatusIdle               = "Idle"
	StatusAcknowledged       = "Acknowledged"
	StatusError              = "Error"
	StatusCommandFormatError = "CommandFormatError"
	StatusNotNow             = "NotNow"
)

// report is what the command endpoint decodes from every body: the
// results' common keys, and MessageType to recognise a check-in sent to
// the ServerURL. rest is every other key (a command's answer, e.g.
// QueryResponses), kept as the command's result.
type report struct {
	mdm.Enrollment
	MessageType string
	CommandUUID string
	Status      string
	ErrorChain  []mdm.ErrorChain
	rest        map[string]any
}

// DecodeReport decodes a command report (the body must have passed
// CheckDepth). It fails for a body that is not a plist dict, has a common
// key of the wrong type, or has no Status. The body is parsed once, into
// a map: its common keys fill the report, the others are its rest.
func DecodeReport(body []byte) (*report, error) {
	var m map[string]any
	if err := plist.Unmarshal(body, &m); err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message, err)
	}
	rep := &report{rest: m}
	for _, f := range [...]struct {
		key string
		dst *string
	}{{"UDID", &rep.UDID}, {"UserID", &rep.UserID}, {"UserShortName", &rep.UserShortName}, {"UserLongName", &rep.UserLongName},
		{"EnrollmentID", &rep.EnrollmentID}, {"EnrollmentUserID", &rep.EnrollmentUserID}, {"MessageType", &rep.MessageType},
		{"CommandUUID", &rep.CommandUUID}, {"Status", &rep.Status}} {
		key, dst := f.key, f.dst
		v, ok := m[key]
		if !ok {
			continue
		}
		if *dst, ok = v.(string); !ok {
			return nil, malformedKey(key)
		}
		delete(m, key)
	}
	if v, ok := m["ErrorChain"]; ok {
		chain, err := errorChain(v)
		if err != nil {
			return nil, err
		}
		rep.ErrorChain = chain
		delete(m, "ErrorChain")
	}
	// RequestType is not ours to keep: some devices echo the command's.
	delete(m, "RequestType")
	if rep.MessageType == "" && rep.Status == "" {
		return nil, errs.E(errs.Invalid, "invalid_report", "the report has no Status")
	}
	return rep, nil
}

func malformedKey(key string) error {
	return errs.E(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message+": "+key+" has the wrong type")
}

// errorChain decodes ErrorChain: an array of dicts whose ErrorCode is an
// integer and whose other keys are strings (Apple, "ErrorChainItem").
func errorChain(v any) ([]mdm.ErrorChain, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, malformedKey("ErrorChain")
	}
	chain := make([]mdm.ErrorChain, 0, len(items))
	for _, it := range items {
		d, ok := it.(map[string]any)
		if !ok {
			return nil, malformedKey("ErrorChain")
		}
		var e mdm.ErrorChain
		for key, dst := range map[string]*string{"ErrorDomain": &e.ErrorDomain, "LocalizedDescription": &e.LocalizedDescription,
			"USEnglishDescription": &e.USEnglishDescription} {
			if v, ok := d[key]; ok {
				if *dst, ok = v.(string); !ok {
					return nil, malformedKey("ErrorChain." + key)
				}
			}
		}
		switch c := d["ErrorCode"].(type) {
		case nil:
		case int64:
			e.ErrorCode = int(c)
		case uint64:
			e.ErrorCode = int(min(c, math.MaxInt32))
		default:
			return nil, malformedKey("ErrorChain.ErrorCode")
		}
		chain = append(chain, e)
	}
	return chain, nil
}

// maxServerSide bounds the queued commands one round trip may complete on
// the server's side (expansions, unsupported types) before it answers.
const maxServerSide = 16

func (h *Handler) server(w http.ResponseWriter, r *http.Request) {
	body, c, ok := h.identify(w, r, MaxReportBody)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == ContentTypeCheckin {
		h.handleCheckin(w, r, body, c)
		return
	}
	rep, err := DecodeReport(body)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if rep.MessageType != "" {
		h.handleCheckin(w, r, body, c)
		return
	}
	if err := bound(c, rep.Enrollment); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if !c.Enrollment.Enrolled() {
		httpx.WriteError(w, r, ErrNotEnrolled)
		return
	}
	if userChannel(rep.Enrollment) {
		// No commands are queued for user channels: end the session.
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx := r.Context()
	var (
		cmd     *command.Command
		fetched bool // cmd is the next command (nil: idle)
	)
	if rep.Status != StatusIdle {
		var err error
		if cmd, fetched, err = h.result(ctx, c, rep, body); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	for range maxServerSide {
		if !fetched {
			var err error
			cmd, err = h.Commands.Next(ctx, c.DeviceID)
			if errors.Is(err, command.ErrIdle) {
				break
			}
			if err != nil {
				httpx.WriteError(w, r, err)
				return
			}
		}
		fetched = false
		if cmd == nil {
			break
		}
		out, err := h.render(ctx, c, cmd)
		var (
			done  *expanded
			never *unsendable
		)
		switch {
		case errors.As(err, &done) || errors.As(err, &never):
			// Completed on the server's side (an expansion, an
			// unsupported type, a raw command that cannot be sent):
			// the device gets the next one.
			h.serverSide(ctx, c, cmd, err)
			continue
		case err != nil:
			// A failure of ours (the database): the command stays
			// delivered and is handed out again at the next round trip.
			httpx.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", ContentTypePlist)
		w.WriteHeader(http.StatusOK)
		w.Write(out)
		return
	}
	// Apple: an empty 200 answer ends the session.
	w.WriteHeader(http.StatusOK)
}

// result records a device's report for one of its commands. When the
// store can (RoundTripStore), it delivers the next command in the same
// transaction and returns it with fetched true (nil: nothing is due).
func (h *Handler) result(ctx context.Context, c *Caller, rep *report, body []byte) (next *command.Command, fetched bool, err error) {
	if !validID(rep.CommandUUID) {
		return nil, false, errs.E(errs.Invalid, "invalid_report", "the report has no valid CommandUUID")
	}
	res := command.Result{CommandID: rep.CommandUUID}
	switch rep.Status {
	case StatusAcknowledged:
		res.Status = command.StatusAcknowledged
		res.Data = resultData(rep.rest)
	case StatusError:
		res.Status = command.StatusError
		res.Message = errorMessage(rep.ErrorChain, "the device reported an error")
	case StatusCommandFormatError:
		res.Status = command.StatusError
		res.Message = errorMessage(rep.ErrorChain, "CommandFormatError: the device could not parse the command")
	case StatusNotNow:
		res.Status = command.StatusNotNow
	default:
		return nil, false, errs.E(errs.Invalid, "invalid_report", "Status is not one of Idle, Acknowledged, Error, CommandFormatError, NotNow")
	}
	var (
		done *command.Command
		dup  bool
	)
	if rt, ok := h.Store.(RoundTripStore); ok {
		// command.Service.Report's checks, then one transaction.
		if bad := command.ValidateResult(res); bad != nil {
			return nil, false, &errs.Error{Kind: errs.Invalid, Code: "invalid_result", Message: "the result is invalid", Fields: bad}
		}
		done, dup, next, err = rt.CompleteAndNext(ctx, c.DeviceID, res, h.now().Truncate(time.Microsecond))
		fetched = true
		if err == nil {
			// Taken from the store, not Service.Next: its secrets (a PIN)
			// are still sealed.
			next, err = h.Commands.Reveal(next)
		}
	} else {
		done, dup, err = h.Commands.Report(ctx, c.DeviceID, res)
	}
	if err != nil {
		return nil, false, err
	}
	if !dup {
		h.absorb(ctx, c, done, rep.Status, body)
	}
	return next, fetched, nil
}

// errorMessage renders an ErrorChain (Apple: "ErrorChainItem") as one
// message of at most command.MaxResultMessage bytes.
func errorMessage(chain []mdm.ErrorChain, fallback string) string {
	if len(chain) == 0 {
		return fallback
	}
	parts := make([]string, 0, len(chain))
	for _, e := range chain {
		d := e.USEnglishDescription
		if d == "" {
			d = e.LocalizedDescription
		}
		parts = append(parts, fmt.Sprintf("%s %d: %s", e.ErrorDomain, e.ErrorCode, d))
	}
	return clip(strings.Join(parts, "; "), command.MaxResultMessage)
}

// clip cuts s to at most n bytes of valid UTF-8 without NUL.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// resultData is the command-specific part of an acknowledged report (its
// rest) as JSON (the command's Result in the operator API), or nil when
// there is none or it is larger than command.MaxResultData.
func resultData(rest map[string]any) json.RawMessage {
	if len(rest) == 0 {
		return nil
	}
	b, err := json.Marshal(rest)
	if err != nil || len(b) > command.MaxResultData || !utf8.Valid(b) {
		b, _ = json.Marshal(map[string]any{"truncated": true})
	}
	return b
}

// serverSide completes a command the device never sees.
func (h *Handler) serverSide(ctx context.Context, c *Caller, cmd *command.Command, why error) {
	res := command.Result{CommandID: cmd.ID, Status: command.StatusError, Message: clip(why.Error(), command.MaxResultMessage)}
	var done *expanded
	if errors.As(why, &done) {
		res.Status, res.Message, res.Data = command.StatusAcknowledged, "", done.data
	}
	if _, _, err := h.Commands.Report(ctx, c.DeviceID, res); err != nil {
		h.log(ctx).WarnContext(ctx, "apple: completing a command on the server side failed", "command", cmd.ID, "err", err)
	}
}

// unsendable is a command that can never be sent to the device (no Apple
// form, a malformed raw body, a missing unlock token): it completes as an
// error.
type unsendable struct{ err error }

func (u *unsendable) Error() string { return u.err.Error() }
func (u *unsendable) Unwrap() error { return u.err }

// expanded is the "error" render returns for a command it expanded into
// others (a configuration sync, a work-data wipe): it completes as
// acknowledged with data.
type expanded struct{ data json.RawMessage }

func (e *expanded) Error() string { return "expanded" }

// device loads the caller's device.
func (h *Handler) device(ctx context.Context, c *Caller) (*device.Device, error) {
	return h.Devices.Store.Device(ctx, c.DeviceID)
}

// plistData marks a JSON value of a raw command's body that becomes
// <data>: {"$data": "<base64>"}.
const plistData = "$data"

// toPlist converts a decoded JSON value to plist values: integral
// numbers become <integer>, {"$data": base64} becomes <data>.
func toPlist(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := v[plistData].(string); ok && len(v) == 1 {
			return base64.StdEncoding.DecodeString(s)
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			p, err := toPlist(e)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			p, err := toPlist(e)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		return f, err
	case nil:
		return nil, errors.New("null has no plist form")
	}
	return v, nil
}
