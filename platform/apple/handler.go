package apple

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/micromdm/nanomdm/mdm"
	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/secret"
)

// Configurator computes a device's effective configuration and records
// what the device did with it (policy.Service).
type Configurator interface {
	Effective(ctx context.Context, d *device.Device) (*policy.Effective, error)
	RecordStatus(ctx context.Context, d *device.Device, version string, states []policy.ItemState) error
}

// Handler serves the check-in and command endpoints.
type Handler struct {
	Identifier *Identifier
	Store      Store
	Devices    *device.Service
	Commands   *command.Service
	Config     Configurator
	Pushes     device.PushStore
	// Box seals the bootstrap and unlock tokens at rest.
	Box *secret.Box
	// OnReport runs after a report changed a device's inventory
	// (compliance evaluation); it logs its own failures.
	OnReport func(ctx context.Context, d *device.Device)
	// FailLimiter, when set, limits failed identifications per client
	// address: both endpoints are public routes (see Register).
	FailLimiter *httpx.IPLimiter
	// UserChannels accepts UserAuthenticate; off (the default) declines
	// user channels with 410, as Apple's "UserAuthenticate" documents.
	UserChannels bool
	// ProfilePrefix prefixes the PayloadIdentifier of rendered profiles;
	// empty takes DefaultProfilePrefix.
	ProfilePrefix string
	Log           *slog.Logger
	Now           func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

func (h *Handler) log(ctx context.Context) *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return httpx.Logger(ctx)
}

// Register puts the two endpoints on rt as public routes. The router's
// device class demands a client certificate from TLS, which a device
// using Mdm-Signature (SignMessage, what mdmb and many proxied installs
// use) never presents. Deny-by-default still holds: the routes are two
// exact patterns (method and canonical path), and each handler
// authenticates every request itself before it reads anything but the
// size-limited body (Identifier.Identify), so nothing under them is
// reachable without a valid identity certificate.
func (h *Handler) Register(rt *httpx.Router) {
	rt.Public("PUT "+PathCheckin, http.HandlerFunc(h.checkin))
	rt.Public("PUT "+PathServer, http.HandlerFunc(h.server))
}

// readBody reads at most limit bytes of the body and checks its nesting.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, httpx.ErrBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, httpx.ErrBodyTooLarge
		}
		return nil, errs.Wrap(errs.Invalid, "body_unreadable", "the request body could not be read", err)
	}
	if err := CheckDepth(body, MaxDepth); err != nil {
		return nil, err
	}
	return body, nil
}

// identify reads the body and authenticates the request.
func (h *Handler) identify(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Caller, bool) {
	body, err := readBody(w, r, limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return nil, nil, false
	}
	c, err := h.Identifier.Identify(r.Context(), r, body)
	if err != nil {
		if h.FailLimiter != nil && errs.Is(err, errs.Unauthenticated) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if !h.FailLimiter.Allow(host) {
				err = errs.Wrap(errs.RateLimited, "rate_limited", "too many failed attempts", err)
			}
		}
		httpx.WriteError(w, r, err)
		return nil, nil, false
	}
	return body, c, true
}

func (h *Handler) checkin(w http.ResponseWriter, r *http.Request) {
	body, c, ok := h.identify(w, r, MaxCheckinBody)
	if !ok {
		return
	}
	h.handleCheckin(w, r, body, c)
}

// enrollmentID is the ID of the enrollment a message names: the UDID of a
// device enrollment, or the EnrollmentID of a User Enrollment.
func enrollmentID(e mdm.Enrollment) string {
	if e.UDID != "" {
		return e.UDID
	}
	return e.EnrollmentID
}

func userChannel(e mdm.Enrollment) bool { return e.UserID != "" || e.EnrollmentUserID != "" }

// bound checks that the message names the enrollment the certificate is
// bound to.
func bound(c *Caller, e mdm.Enrollment) error {
	if c.Enrollment == nil {
		return ErrNotEnrolled
	}
	if enrollmentID(e) != c.Enrollment.UDID {
		return ErrUDIDMismatch
	}
	return nil
}

func validID(s string) bool {
	return s != "" && len(s) <= MaxID && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

var errBadID = errs.E(errs.Invalid, "invalid_enrollment_id", "the UDID or EnrollmentID is missing or malformed")

// errUnsupported: a check-in message type the Core does not serve.
var errUnsupported = errs.E(errs.NotFound, "unsupported_message", "this check-in message type is not supported")

func (h *Handler) handleCheckin(w http.ResponseWriter, r *http.Request, body []byte, c *Caller) {
	ctx := r.Context()
	msg, err := mdm.DecodeCheckin(body)
	if err != nil {
		if errors.Is(err, mdm.ErrUnrecognizedMessageType) {
			httpx.WriteError(w, r, errUnsupported)
			return
		}
		httpx.WriteError(w, r, errs.Wrap(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message, err))
		return
	}
	now := h.now()
	switch m := msg.(type) {
	case *mdm.Authenticate:
		// Apple: Authenticate is not yet an enrollment; the device must not
		// be pushed to until TokenUpdate.
		udid := enrollmentID(m.Enrollment)
		if !validID(udid) || len(m.Topic) > MaxID || len(m.SerialNumber) > MaxID {
			httpx.WriteError(w, r, errBadID)
			return
		}
		if c.Enrollment != nil && c.Enrollment.UDID != udid {
			httpx.WriteError(w, r, ErrCertBound)
			return
		}
		if d, err := h.device(ctx, c); err != nil || !ApplePlatform(d.Platform) {
			if err == nil {
				err = ErrNotApple
			}
			httpx.WriteError(w, r, err)
			return
		}
		err := h.Store.Authenticate(ctx, Enrollment{UDID: udid, DeviceID: c.DeviceID, CertSerial: c.Serial,
			Topic: m.Topic, SerialNumber: m.SerialNumber, AuthenticatedAt: now})
		if errors.Is(err, errs.ErrConflict) {
			err = errs.Wrap(errs.Forbidden, ErrCertBound.Code, "the certificate or the enrollment is bound elsewhere", err)
		}
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		h.log(ctx).InfoContext(ctx, "apple: authenticate", "device", c.DeviceID, "udid", udid)
		w.WriteHeader(http.StatusOK)
	case *mdm.TokenUpdate:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if userChannel(m.Enrollment) {
			// Only the device channel is managed; a user channel exists
			// only after an accepted UserAuthenticate.
			if !h.UserChannels {
				w.WriteHeader(http.StatusGone)
				return
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		h.tokenUpdate(w, r, c, m, now)
	case *mdm.CheckOut:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if userChannel(m.Enrollment) {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.checkOut(w, r, c, now)
	case *mdm.UserAuthenticate:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if !h.UserChannels {
			// Apple, "UserAuthenticate": "return an HTTP 410 response to
			// decline the user channel".
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusOK)
	case *mdm.SetBootstrapToken:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		sealed := ""
		if len(m.BootstrapToken.BootstrapToken) > 0 {
			sealed = h.Box.Seal(base64.StdEncoding.EncodeToString(m.BootstrapToken.BootstrapToken))
		}
		if err := h.Store.SetBootstrapToken(ctx, c.Enrollment.UDID, c.Serial, sealed); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case *mdm.GetBootstrapToken:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		h.getBootstrapToken(w, r, c)
	case *mdm.DeclarativeManagement:
		if err := bound(c, m.Enrollment); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		h.declarative(w, r, m)
	default:
		httpx.WriteError(w, r, errUnsupported)
	}
}

// ErrNotApple: Authenticate from a device activated for another platform.
var ErrNotApple = errs.E(errs.Forbidden, "not_apple", "the certificate belongs to a device of another platform")

// ApplePlatform reports whether a device of platform p enrolls in Apple
// MDM (activation.IOS, IPadOS, MacOS).
func ApplePlatform(p string) bool { return p == "ios" || p == "ipados" || p == "macos" }

// Push registration limits: APNs tokens are 32 bytes today, but Apple
// says not to assume a length.
const (
	MaxPushToken  = 1024
	MaxUnlockData = 16 << 10
)

func (h *Handler) tokenUpdate(w http.ResponseWriter, r *http.Request, c *Caller, m *mdm.TokenUpdate, now time.Time) {
	ctx := r.Context()
	if len(m.Token) == 0 || len(m.Token) > MaxPushToken || m.PushMagic == "" || len(m.PushMagic) > MaxID ||
		len(m.Topic) > MaxID || len(m.UnlockToken) > MaxUnlockData {
		httpx.WriteError(w, r, errs.E(errs.Invalid, "invalid_token_update", "the token update lacks a token or push magic, or a field is too long"))
		return
	}
	// nanomdm's TokenUpdate has no AwaitingConfiguration (Apple,
	// "TokenUpdateRequest": ADE devices in Setup Assistant send it true).
	var ade struct{ AwaitingConfiguration bool }
	_ = plist.Unmarshal(m.Raw, &ade)
	unlock := ""
	if len(m.UnlockToken) > 0 {
		unlock = h.Box.Seal(base64.StdEncoding.EncodeToString(m.UnlockToken))
	}
	first, err := h.Store.TokenUpdate(ctx, c.Enrollment.UDID, c.Serial, m.Topic, unlock, ade.AwaitingConfiguration, now)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	err = h.Pushes.SetPushToken(ctx, device.PushToken{DeviceID: c.DeviceID, Provider: "apns",
		Token: hex.EncodeToString(m.Token), Topic: m.Topic, PushMagic: m.PushMagic, UpdatedAt: now})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if first {
		// The first TokenUpdate completes the enrollment: collect the
		// inventory and send the configuration (seed, "Activating an iOS
		// device", and the configuration-update flows).
		for _, t := range []command.Type{command.DeviceInfo, command.InstalledApps, command.SyncConfig} {
			if _, err := h.Commands.Send(ctx, []string{c.DeviceID}, command.NewCommand{Type: t, CreatedBy: "system"}); err != nil {
				httpx.WriteError(w, r, err)
				return
			}
		}
		if ade.AwaitingConfiguration {
			// ADE: the device waits in Setup Assistant until
			// DeviceConfigured; it goes after the profiles (lower
			// priority than configuration).
			p := command.PriorityConfig - 10
			if _, err := h.Commands.Send(ctx, []string{c.DeviceID}, command.NewCommand{Type: command.Raw, Priority: &p, CreatedBy: "system",
				Payload: []byte(`{"platform":"apple","body":{"RequestType":"DeviceConfigured"}}`)}); err != nil {
				httpx.WriteError(w, r, err)
				return
			}
		}
		h.log(ctx).InfoContext(ctx, "apple: enrollment complete", "device", c.DeviceID, "udid", c.Enrollment.UDID)
	}
	w.WriteHeader(http.StatusOK)
}

// checkOut: the device's MDM profile was removed (Apple, "CheckOut"; sent
// only when the profile's CheckOutWhenRemoved is true). The device can no
// longer be managed, so it is retired: the enrollment is marked checked
// out and the device removed, which revokes its certificates (the agent's
// too) and drops it from every queue.
func (h *Handler) checkOut(w http.ResponseWriter, r *http.Request, c *Caller, now time.Time) {
	ctx := r.Context()
	if err := h.Store.CheckOut(ctx, c.Enrollment.UDID, c.Serial, now); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if err := h.Devices.Remove(ctx, c.DeviceID); err != nil && !errors.Is(err, errs.ErrNotFound) {
		httpx.WriteError(w, r, err)
		return
	}
	h.log(ctx).InfoContext(ctx, "apple: checked out; device removed", "device", c.DeviceID, "udid", c.Enrollment.UDID)
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) getBootstrapToken(w http.ResponseWriter, r *http.Request, c *Caller) {
	resp := struct {
		BootstrapToken []byte `plist:",omitempty"`
	}{}
	if s := c.Enrollment.BootstrapToken; s != "" {
		plain, err := h.Box.Open(s)
		if err == nil {
			resp.BootstrapToken, err = base64.StdEncoding.DecodeString(plain)
		}
		if err != nil {
			httpx.WriteError(w, r, errs.Wrap(errs.Internal, "internal", "the bootstrap token cannot be opened", err))
			return
		}
	}
	writePlist(w, r, resp)
}

func writePlist(w http.ResponseWriter, r *http.Request, v any) {
	b, err := plist.Marshal(v)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ContentTypePlist)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// declarative answers declarative management check-ins (Apple,
// "DeclarativeManagement" check-in) with an empty, valid declaration set:
// Custos renders its policies as profiles, not declarations, so a device
// that enables declarative management finds nothing to apply.
func (h *Handler) declarative(w http.ResponseWriter, r *http.Request, m *mdm.DeclarativeManagement) {
	const token = "custos-empty-v1"
	w.Header().Set("Content-Type", "application/json")
	switch m.Endpoint {
	case "tokens":
		w.Write([]byte(`{"SyncTokens":{"DeclarationsToken":"` + token + `","Timestamp":"2026-01-01T00:00:00Z"}}`))
	case "declaration-items":
		w.Write([]byte(`{"Declarations":{"Activations":[],"Assets":[],"Configurations":[],"Management":[]},"DeclarationsToken":"` + token + `"}`))
	case "status":
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusOK)
	default:
		httpx.WriteError(w, r, errs.E(errs.NotFound, "declaration_not_found", "no such declaration"))
	}
}
