// Package windows manages enrolled Windows 10/11 devices over OMA-DM 1.2
// (MS-MDM): the DM client's sessions at PathManagement, the rendering of
// the command queue and of the effective configuration as CSP operations,
// WNS push provisioning through the DMClient CSP, and unenrollment.
//
// Its promise: a session's state lives in the database (SessionStore), so
// any Core process sharing it answers the next message; a message is
// authenticated by the device's enrolled client certificate and must name
// that device; a Status or Results for a command we never sent in that
// session changes nothing; the queue's guarantees hold (a command whose
// statuses did not all arrive stays sent and is delivered again).
//
// Protocol references:
//   - [MS-MDM] https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-mdm/
//   - OMA-TS-DM_Protocol-V1_2, OMA-TS-DM_RepPro-V1_2 (packages, Status/Results)
//   - https://learn.microsoft.com/en-us/windows/client-management/oma-dm-protocol-support
//   - https://learn.microsoft.com/en-us/windows/client-management/disconnecting-from-mdm-unenrollment
//   - https://learn.microsoft.com/en-us/windows/client-management/push-notification-windows-mdm
//   - CSP references under https://learn.microsoft.com/en-us/windows/client-management/mdm/
//     (policy-csp-devicelock, dmclient-csp, remotewipe-csp, remotelock-csp,
//     reboot-csp, devdetail-csp, devinfo-csp, wifi-csp, vpnv2-csp,
//     clientcertificateinstall-csp, rootcacertificates-csp, bitlocker-csp)
package windows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/policy"
)

// PathManagement is the management URL (ADDR of the w7 APPLICATION in the
// provisioning document); ProviderID the DMClient provider ID we enroll
// devices under (contract.md).
const (
	PathManagement = "/device/windows/mdm"
	ProviderID     = "Custos"
)

// Limits of a session.
const (
	// MaxSessionID bounds the SyncHdr SessionID; Windows sends a short
	// hex number (MS-MDM §2.2.2.1).
	MaxSessionID = 32
	// MaxMessages bounds the messages of one session: past it we send no
	// new commands and the session ends; the rest waits for the next one.
	MaxMessages = 64
	// MaxLocURI bounds a LocURI we act on.
	MaxLocURI = 1024
	// SessionTTL is how long an unfinished session is kept (a device that
	// went away mid-session); SweepSessions deletes older ones.
	SessionTTL = time.Hour
	// ReportEvery is how often an unchanged DevInfo is saved anyway, which
	// keeps the device's last-seen time without a write per session.
	ReportEvery = 10 * time.Minute
	// maxNextTries bounds how many queue commands one message may consume
	// (commands answered at once: unsupported types, empty configurations)
	// before it carries one to the device.
	maxNextTries = 8
)

// Configurator computes a device's effective configuration and records
// what the device did with it (policy.Service).
type Configurator interface {
	Effective(ctx context.Context, d *device.Device) (*policy.Effective, error)
	RecordStatus(ctx context.Context, d *device.Device, version string, states []policy.ItemState) error
}

// Handler serves OMA-DM sessions at PathManagement. It must sit behind
// device certificate authentication (httpx.Router.Device).
type Handler struct {
	Devices  *device.Service
	Commands *command.Service
	Config   Configurator
	Sessions SessionStore
	Pushes   device.PushStore
	// OnReport runs after a device's inventory was stored (compliance).
	OnReport func(ctx context.Context, d *device.Device)
	// PFN is the package family name of the Store app whose WNS channel
	// wakes devices; empty: no push provisioning, devices poll.
	PFN string
	// ServerURL is our absolute management URL (Source of our messages).
	ServerURL string
	Now       func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// Register puts the management endpoint on rt (device certificate).
func (h *Handler) Register(rt *httpx.Router) {
	rt.Device("POST "+PathManagement, h)
}

// Errors of the endpoint.
var (
	ErrDeviceMismatch = errs.E(errs.Forbidden, "device_mismatch", "the message names a device other than the one its certificate belongs to")
	ErrUnknownSession = errs.E(errs.Forbidden, "unknown_session", "no such session for this device")
	ErrOutOfOrder     = errs.E(errs.Conflict, "message_out_of_order", "the message ID does not follow the session's last message")
	ErrContentType    = errs.E(errs.Invalid, "unsupported_content_type", "send application/vnd.syncml.dm+xml")
)

func invalid(msg string) error { return errs.E(errs.Invalid, "invalid_syncml", msg) }

// ServeHTTP answers one message of a session.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, ok := device.FromContext(r.Context())
	if !ok {
		httpx.WriteError(w, r, device.ErrNoClientCert)
		return
	}
	// Windows sends application/vnd.syncml.dm+xml (MS-MDM §2.1); WBXML
	// (…+wbxml) is not spoken by current clients and not by us.
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), syncml.ContentType) {
		httpx.WriteError(w, r, ErrContentType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, syncml.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		httpx.WriteError(w, r, errs.E(errs.TooLarge, "body_too_large", fmt.Sprintf("a SyncML message has at most %d bytes", syncml.MaxBody)))
		return
	}
	if err != nil {
		httpx.WriteError(w, r, invalid("the body could not be read"))
		return
	}
	msg, err := syncml.Decode(body)
	if err != nil {
		httpx.Logger(r.Context()).Info("windows: refused SyncML", "device", d.ID, "err", err)
		if errors.Is(err, syncml.ErrTooLarge) || errors.Is(err, syncml.ErrTooMany) {
			httpx.WriteError(w, r, errs.E(errs.TooLarge, "syncml_too_large", "the message is over a SyncML limit"))
			return
		}
		httpx.WriteError(w, r, invalid("the message is not a SyncML message this server accepts"))
		return
	}
	out, err := h.Serve(r.Context(), d, msg)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", syncml.ContentType)
	w.WriteHeader(http.StatusOK)
	w.Write(syncml.Encode(out))
}

// exchange is the processing of one message.
type exchange struct {
	h       *Handler
	d       *device.Device
	log     *slog.Logger
	sess    *Session
	prevMsg int // the stored MsgID the session must still have (0: new)
	msgID   int
	in      *syncml.Message
	out     []syncml.Command
	retire  bool // the user unenrolled (1226)
	removed bool
	state   *DeviceState // read once per message, by deviceState
}

// deviceState returns the device's stored inventory and push token, read
// at the first need in this message. Its inventory is read once, by
// saveDevInfo, before the message writes any; the push token is written
// only by savePush, which never runs before pushNodes reads it (both in
// package 1, where nothing of ours is pending yet).
func (x *exchange) deviceState(ctx context.Context) (*DeviceState, error) {
	if x.state == nil {
		st, err := x.h.Sessions.WindowsDeviceState(ctx, x.d.ID)
		if err != nil {
			return nil, err
		}
		x.state = st
	}
	return x.state, nil
}

func (x *exchange) nextCmdID() string {
	x.sess.CmdID++
	return strconv.Itoa(x.sess.CmdID)
}

// Serve processes one decoded message of d and returns the answer. It is
// the handler without HTTP (benchmarks and tests call it directly).
func (h *Handler) Serve(ctx context.Context, d *device.Device, in *syncml.Message) (*syncml.Message, error) {
	hd := in.Header
	if hd.VerDTD != syncml.VerDTD || hd.VerProto != syncml.VerProto {
		return nil, invalid("VerDTD 1.2 and VerProto DM/1.2 are required")
	}
	if hd.SessionID == "" || len(hd.SessionID) > MaxSessionID || !utf8.ValidString(hd.SessionID) {
		return nil, invalid("a SessionID of 1 to 32 characters is required")
	}
	msgID, err := strconv.Atoi(hd.MsgID)
	if err != nil || msgID < 1 || msgID > MaxMessages*4 {
		return nil, invalid("MsgID must be a positive number")
	}
	// The Source of the SyncHdr is the device's DeviceID (its DevId); the
	// certificate is the authentication, the body must agree with it.
	if hd.Source != d.ID && hd.Source != d.HardwareID {
		// Windows names itself by its DevId, which enrollment may not have
		// stored; refuse a Source that is another device's ID or hardware ID.
		if other, err := h.namesAnotherDevice(ctx, d, hd.Source); err != nil {
			return nil, err
		} else if other {
			return nil, ErrDeviceMismatch
		}
	}
	x := &exchange{h: h, d: d, in: in, msgID: msgID, log: httpx.Logger(ctx).With("device", d.ID, "session", hd.SessionID, "msg", msgID)}
	if msgID == 1 {
		x.sess = &Session{DeviceID: d.ID, SessionID: hd.SessionID}
	} else {
		s, err := h.Sessions.WindowsSession(ctx, d.ID, hd.SessionID)
		if errs.Is(err, errs.NotFound) {
			return nil, ErrUnknownSession
		}
		if err != nil {
			return nil, err
		}
		if s.MsgID != msgID-1 {
			return nil, ErrOutOfOrder
		}
		x.sess, x.prevMsg = s, s.MsgID
	}
	x.sess.MsgID = msgID
	x.sess.UpdatedAt = h.now()

	// Status for the SyncHdr (CmdRef 0), as every DM server answers.
	x.status("0", "SyncHdr", syncml.StatusOK, hd.Target, hd.Source)
	if err := x.absorb(ctx); err != nil {
		return nil, err
	}
	if x.retire {
		if err := h.retire(ctx, d, x.log, "the user unenrolled the device (alert 1226)"); err != nil {
			return nil, err
		}
		x.removed = true
	}
	sent := 0
	if !x.removed && msgID <= MaxMessages {
		if sent, err = x.commands(ctx); err != nil {
			return nil, err
		}
	}
	switch {
	case sent > 0:
		if err := h.Sessions.SaveWindowsSession(ctx, x.sess, x.prevMsg); err != nil {
			if errs.Is(err, errs.Conflict) {
				return nil, ErrOutOfOrder
			}
			return nil, err
		}
	case x.prevMsg > 0:
		// Nothing more to send: the session ends (MS-MDM §3.1.5.1, the
		// server's message with statuses only and Final).
		if err := h.Sessions.EndWindowsSession(ctx, d.ID, hd.SessionID, x.prevMsg); err != nil {
			if errs.Is(err, errs.Conflict) {
				return nil, ErrOutOfOrder
			}
			return nil, err
		}
	}
	return &syncml.Message{
		Header: syncml.Header{VerDTD: syncml.VerDTD, VerProto: syncml.VerProto, SessionID: hd.SessionID, MsgID: hd.MsgID,
			Target: hd.Source, Source: cmpOr(h.ServerURL, hd.Target)},
		Body: syncml.Body{Commands: x.out, Final: true},
	}, nil
}

// namesAnotherDevice reports whether source is the ID or hardware ID of a
// device other than d.
func (h *Handler) namesAnotherDevice(ctx context.Context, d *device.Device, source string) (bool, error) {
	if source == "" || len(source) > device.MaxField {
		return true, nil
	}
	if o, err := h.Devices.Store.Device(ctx, source); err == nil && o.ID != d.ID {
		return true, nil
	} else if err != nil && !errs.Is(err, errs.NotFound) {
		return false, err
	}
	ds, err := h.Devices.Store.ListDevices(ctx, device.Query{HardwareID: source, Limit: 2})
	if err != nil {
		return false, err
	}
	for _, o := range ds {
		if o.ID != d.ID {
			return true, nil
		}
	}
	return false, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// status appends our Status for the device's command cmdRef.
func (x *exchange) status(cmdRef, cmd, code, targetRef, sourceRef string) {
	x.out = append(x.out, syncml.Command{Name: syncml.CmdStatus, CmdID: x.nextCmdID(), MsgRef: x.in.Header.MsgID,
		CmdRef: cmdRef, Cmd: cmd, TargetRef: targetRef, SourceRef: sourceRef, Data: code})
}

// answer is the device's answer to one of our pending commands.
type answer struct {
	code    string
	results []syncml.Item
}

// absorb handles the device's commands: alerts, the DevInfo of package 1,
// statuses and results for our pending commands.
func (x *exchange) absorb(ctx context.Context) error {
	answers := map[int]*answer{}
	pendingByID := make(map[int]Pending, len(x.sess.Pending))
	for _, p := range x.sess.Pending {
		pendingByID[p.CmdID] = p
	}
	known := func(msgRef, cmdRef string) (int, bool) {
		id, err := strconv.Atoi(cmdRef)
		if err != nil {
			return 0, false
		}
		p, ok := pendingByID[id]
		// A Status names the message of ours that carried the command
		// (MsgRef, RepPro §6.6.14); a CmdID of another message, or one we
		// never sent, marks nothing.
		if !ok || strconv.Itoa(p.MsgID) != msgRef {
			return 0, false
		}
		return id, true
	}
	var devInfo []syncml.Item
	ignored := 0
	for _, c := range x.in.Body.Commands {
		switch c.Name {
		case syncml.CmdAlert:
			x.alert(c)
			x.status(c.CmdID, c.Name, syncml.StatusOK, "", "")
		case syncml.CmdReplace, syncml.CmdAdd:
			// Package 1 carries ./DevInfo as a Replace (MS-MDM §4.1); any
			// other node the device offers is not ours to store.
			for _, it := range c.Items {
				if strings.HasPrefix(it.Source, "./DevInfo/") {
					devInfo = append(devInfo, it)
				}
			}
			x.status(c.CmdID, c.Name, syncml.StatusOK, "", "")
		case syncml.CmdStatus:
			if c.CmdRef == "0" { // the device's Status for our SyncHdr
				continue
			}
			id, ok := known(c.MsgRef, c.CmdRef)
			if !ok {
				ignored++
				continue
			}
			a := answers[id]
			if a == nil {
				a = &answer{}
				answers[id] = a
			}
			a.code = c.Data
		case syncml.CmdResults:
			id, ok := known(c.MsgRef, c.CmdRef)
			if !ok {
				ignored++
			} else {
				a := answers[id]
				if a == nil {
					a = &answer{}
					answers[id] = a
				}
				a.results = append(a.results, c.Items...)
			}
			x.status(c.CmdID, c.Name, syncml.StatusOK, "", "")
		default:
			// A DM client does not send Get/Exec/Delete/Atomic to its server.
			x.status(c.CmdID, c.Name, syncml.StatusOptionalFeature, "", "")
		}
	}
	if ignored > 0 {
		x.log.Warn("windows: statuses or results for commands never sent in this session ignored", "count", ignored)
	}
	if len(devInfo) > 0 && !x.retire {
		st, err := x.deviceState(ctx)
		if err != nil {
			return err
		}
		if err := x.h.saveDevInfo(ctx, x.d, st, devInfo); err != nil {
			return err
		}
	}
	// Our commands of the previous message are answered now or never in
	// this session: what is unanswered is dropped, and its queue command
	// stays sent (delivered again next session, command package doc).
	pending := x.sess.Pending
	x.sess.Pending = nil
	retired, err := x.h.settle(ctx, x.d, x.log, pending, answers)
	x.removed = x.removed || retired
	return err
}

// alert handles a device Alert.
func (x *exchange) alert(c syncml.Command) {
	switch c.Data {
	case syncml.AlertGeneric:
		for _, it := range c.Items {
			if it.Meta != nil && it.Meta.Type == syncml.AlertTypeUserUnenroll {
				x.retire = true
			}
		}
	case syncml.AlertClientInitiated, syncml.AlertServerInitiated, syncml.AlertClientEvent, syncml.AlertNextMessage:
	default:
		x.log.Debug("windows: alert", "code", c.Data)
	}
}

// retire removes the device: its certificate is revoked, so its next
// session is refused at authentication.
func (h *Handler) retire(ctx context.Context, d *device.Device, log *slog.Logger, why string) error {
	err := h.Devices.Remove(ctx, d.ID)
	if errs.Is(err, errs.NotFound) {
		return nil // removed meanwhile: nothing more changes
	}
	if err != nil {
		return err
	}
	log.Info("windows: device retired", "why", why)
	return nil
}

// commands appends our next commands: push provisioning at the start of a
// session, then one queue command. It returns how many it appended.
func (x *exchange) commands(ctx context.Context) (int, error) {
	n := 0
	if x.msgID == 1 {
		if x.d.ConfigVersion == "" {
			// Never configured: queue the first configuration sync (the
			// store keeps one pending sync per device).
			if _, err := x.h.Commands.Send(ctx, []string{x.d.ID}, command.NewCommand{Type: command.SyncConfig, CreatedBy: "system"}); err != nil {
				return 0, err
			}
		}
		if x.h.PFN != "" {
			pn, err := x.pushNodes(ctx)
			if err != nil {
				return 0, err
			}
			n += pn
		}
	}
	// Due is a read; Next records a delivery (a write): most sessions find
	// nothing due and stay read-only on the queue.
	if due, err := x.h.Commands.Due(ctx, x.d.ID); err != nil {
		return n, err
	} else if !due {
		return n, nil
	}
	for range maxNextTries {
		c, err := x.h.Commands.Next(ctx, x.d.ID)
		if errors.Is(err, command.ErrIdle) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if slices.Contains(x.sess.Delivered, c.ID) {
			// Delivered earlier in this session and not answered: it waits
			// for the next session rather than looping here.
			return n, nil
		}
		cmds, pend, fail, err := x.h.render(ctx, x.d, c, x.nextCmdID, x.msgID)
		if err != nil {
			return n, err
		}
		if fail != "" {
			if _, _, err := x.h.Commands.Report(ctx, x.d.ID, command.Result{CommandID: c.ID, Status: command.StatusError, Message: fail}); err != nil {
				return n, err
			}
			continue
		}
		if len(cmds) == 0 { // nothing to carry (an empty configuration): done
			if _, err := x.h.settle(ctx, x.d, x.log, pend, nil); err != nil {
				return n, err
			}
			continue
		}
		x.out = append(x.out, cmds...)
		x.sess.Pending = append(x.sess.Pending, pend...)
		x.sess.Delivered = append(x.sess.Delivered, c.ID)
		return n + len(cmds), nil
	}
	return n, nil
}
