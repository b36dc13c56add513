package agent

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
)

// DefaultPollSeconds is how often an agent checks in when nothing pushes it.
const DefaultPollSeconds = 900

// Configurator computes a device's effective configuration and records
// what the device did with it (policy.Service).
type Configurator interface {
	Effective(ctx context.Context, d *device.Device) (*policy.Effective, error)
	RecordStatus(ctx context.Context, d *device.Device, version string, states []policy.ItemState) error
}

// Waiter holds a long poll open until something is pending for the device
// (notify.Notifier).
type Waiter interface {
	Wait(ctx context.Context, deviceID string, timeout time.Duration, pending func() (bool, error)) (bool, error)
}

// Handler serves the agent protocol.
type Handler struct {
	Activation *activation.Service
	Devices    *device.Service
	Commands   *command.Service
	Config     Configurator
	Pushes     device.PushStore
	Waiter     Waiter
	// OnReport runs after a device's report was stored (compliance
	// evaluation); it logs its own failures, which never fail the device's
	// request.
	OnReport func(ctx context.Context, d *device.Device)
	// Limiter, when set, rate-limits the two unauthenticated endpoints per
	// client address.
	Limiter     *httpx.IPLimiter
	PollSeconds int
	Now         func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Register puts the protocol's routes on rt: activate and enroll are
// public (the credentials and the session cookie are their
// authentication), checkin and ack require the device certificate.
func (h *Handler) Register(rt *httpx.Router) {
	limit := func(f http.HandlerFunc) http.Handler {
		if h.Limiter == nil {
			return f
		}
		return h.Limiter.Middleware(f)
	}
	rt.Public("POST "+PathActivate, limit(h.activate))
	rt.Public("POST "+PathEnroll, limit(h.enroll))
	rt.Device("POST "+PathCheckin, memo(h.checkin))
	rt.Device("POST "+PathAck, memo(h.ack))
	rt.Device("POST "+PathCommands, http.HandlerFunc(h.commands))
	rt.Device("POST "+PathWait, http.HandlerFunc(h.wait))
}

// memo computes a device's effective configuration at most once per
// request (policy.WithMemo).
func memo(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f(w, r.WithContext(policy.WithMemo(r.Context())))
	})
}

func (h *Handler) activate(w http.ResponseWriter, r *http.Request) {
	var req ActivateRequest
	if err := httpx.DecodeJSON(w, r, MaxActivateBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	a, err := h.Activation.Activate(r.Context(), activation.ActivateInput{
		Login: req.Login, Password: req.Password, Platform: activation.Platform(req.Platform),
		OSVersion: req.OSVersion, HardwareID: req.HardwareID, Model: req.Model, Name: req.Name,
	})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// Seed step 6d: "Adds the enrollment session ID to an HTTP session".
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: a.SessionToken, Path: PathEnroll,
		Expires: a.ExpiresAt, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	httpx.WriteJSON(w, http.StatusOK, ActivateResponse{
		DeviceID: a.Device.ID, ActivationType: string(a.Type), CSRCommonName: a.Device.ID,
		ExpiresAt: a.ExpiresAt.Format(time.RFC3339),
	})
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	var token string
	if c, err := r.Cookie(SessionCookie); err == nil {
		token = c.Value
	}
	var req EnrollRequest
	if err := httpx.DecodeJSON(w, r, MaxEnrollBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	e, err := h.Activation.Enroll(r.Context(), token, []byte(req.CSR))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: PathEnroll, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	httpx.WriteJSON(w, http.StatusOK, EnrollResponse{Certificate: string(activation.CertificatePEM(e.Certificate)), CA: string(e.CAPEM)})
}

// ErrDeviceMismatch: the body names a device other than the certificate's.
var ErrDeviceMismatch = errs.E(errs.Forbidden, "device_mismatch", "the request names a device other than the one its certificate belongs to")

func (h *Handler) checkin(w http.ResponseWriter, r *http.Request) {
	d, _ := device.FromContext(r.Context())
	var req CheckinRequest
	if err := httpx.DecodeJSON(w, r, MaxCheckinBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.DeviceID != d.ID {
		httpx.WriteError(w, r, ErrDeviceMismatch)
		return
	}
	if req.Push != nil {
		if err := validPush(req.Push); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	if err := h.Devices.Report(r.Context(), d, req.Info, req.Software); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	registered := req.Push != nil
	if registered {
		err := h.Pushes.SetPushToken(r.Context(), device.PushToken{DeviceID: d.ID, Provider: req.Push.Provider,
			Token: req.Push.Token, Topic: req.Push.Topic, UpdatedAt: h.now()})
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	} else {
		toks, err := h.Pushes.PushTokens(r.Context(), []string{d.ID})
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		registered = len(toks) > 0
	}
	if h.OnReport != nil {
		h.OnReport(r.Context(), d)
	}
	cfg, err := h.configuration(r.Context(), d, req.ConfigVersion)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, CheckinResponse{DeviceID: d.ID, State: string(d.State), Configuration: cfg, PushRegistered: registered})
}

// Push registration limits. APNs tokens are 32 bytes (64 hex) today but
// Apple says not to assume a length; FCM tokens are ~160 characters; a WNS
// channel URI is a URL of a few hundred.
const (
	MaxPushToken = 4096
	MaxPushTopic = 256
)

// ErrInvalidPush: a push registration the Core cannot use.
func invalidPush(field, why string) error {
	e := errs.E(errs.Invalid, "invalid_push", "the push registration is invalid")
	e.Fields = map[string]string{"push." + field: why}
	return e
}

func validPush(p *PushRegistration) error {
	switch p.Provider {
	case "apns", "fcm", "wns":
	default:
		return invalidPush("provider", "one of apns, fcm, wns")
	}
	if p.Token == "" || len(p.Token) > MaxPushToken || !utf8.ValidString(p.Token) || strings.ContainsAny(p.Token, "\x00\r\n") {
		return invalidPush("token", "1 to 4096 bytes of text")
	}
	if len(p.Topic) > MaxPushTopic || !utf8.ValidString(p.Topic) {
		return invalidPush("topic", "at most 256 bytes of text")
	}
	// A WNS channel is a URL the Core will POST to; the WNS client checks
	// its host when it sends (an SSRF guard), here only its shape.
	if p.Provider == "wns" && !strings.HasPrefix(p.Token, "https://") {
		return invalidPush("token", "an https:// channel URI")
	}
	return nil
}

// configuration is the device's effective configuration; when the device
// already runs its version, the items are left out.
func (h *Handler) configuration(ctx context.Context, d *device.Device, known string) (Configuration, error) {
	poll := h.PollSeconds
	if poll <= 0 {
		poll = DefaultPollSeconds
	}
	eff, err := h.Config.Effective(ctx, d)
	if err != nil {
		return Configuration{}, err
	}
	cfg := Configuration{Version: eff.Version, Items: []Item{}, PollSeconds: poll}
	if known != "" && known == eff.Version {
		cfg.Unchanged = true
		return cfg, nil
	}
	for _, it := range eff.Items {
		cfg.Items = append(cfg.Items, Item{ID: it.ID, Kind: string(it.Kind), Name: it.Name, Revision: it.Revision, Payload: it.Payload})
	}
	return cfg, nil
}

func (h *Handler) ack(w http.ResponseWriter, r *http.Request) {
	d, _ := device.FromContext(r.Context())
	var req AckRequest
	if err := httpx.DecodeJSON(w, r, MaxAckBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.DeviceID != d.ID {
		httpx.WriteError(w, r, ErrDeviceMismatch)
		return
	}
	if len(req.Items) > MaxItems {
		httpx.WriteError(w, r, errs.E(errs.TooLarge, "too_many_items", "too many item statuses"))
		return
	}
	now := h.now()
	for i, it := range req.Items {
		if it.Status != policy.ItemApplied && it.Status != policy.ItemFailed {
			e := errs.E(errs.Invalid, "invalid_ack", "an item status is neither applied nor failed")
			e.Fields = map[string]string{"items[" + itoa(i) + "].status": "applied or failed"}
			httpx.WriteError(w, r, e)
			return
		}
		if len(it.ID) > MaxField || len(it.Error) > MaxItemError || !utf8.ValidString(it.Error) || strings.ContainsRune(it.Error, 0) {
			e := errs.E(errs.Invalid, "invalid_ack", "an item status is too long")
			e.Fields = map[string]string{"items[" + itoa(i) + "]": "id at most 256 bytes, error at most 1024 bytes of UTF-8 text"}
			httpx.WriteError(w, r, e)
			return
		}
	}
	eff, err := h.Config.Effective(r.Context(), d)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if err := h.Devices.Acknowledge(r.Context(), d, req.Version); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// Item states are kept per item revision. An acknowledgment of the
	// current version names the revisions the device applied; one of an
	// older version (the configuration changed while the device applied
	// it) says nothing about the current items, which stay pending until
	// the device applies them.
	if req.Version == eff.Version && len(req.Items) > 0 {
		rev := make(map[string]int, len(eff.Items))
		for _, it := range eff.Items {
			rev[it.ID] = it.Revision
		}
		states := make([]policy.ItemState, 0, len(req.Items))
		for _, it := range req.Items {
			if n, ok := rev[it.ID]; ok {
				states = append(states, policy.ItemState{ID: it.ID, Revision: n, Status: it.Status, Error: it.Error, At: now})
			}
		}
		if err := h.Config.RecordStatus(r.Context(), d, req.Version, states); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, AckResponse{State: string(device.StateActive)})
}

// MaxItemError bounds a device's error message for one item.
const MaxItemError = 1024

func itoa(i int) string { return strconv.Itoa(i) }

// commands is one command round trip: record the result the device
// brings, hand out the next command.
func (h *Handler) commands(w http.ResponseWriter, r *http.Request) {
	d, _ := device.FromContext(r.Context())
	var req CommandsRequest
	if err := httpx.DecodeJSON(w, r, MaxCommandsBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.DeviceID != d.ID {
		httpx.WriteError(w, r, ErrDeviceMismatch)
		return
	}
	var resp CommandsResponse
	if res := req.Result; res != nil {
		_, dup, err := h.Commands.Report(r.Context(), d.ID, command.Result{
			CommandID: res.CommandID, Status: command.Status(res.Status), Message: res.Message, Data: res.Data,
		})
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		resp.Duplicate = dup
	}
	c, err := h.Commands.Next(r.Context(), d.ID)
	switch {
	case errs.Is(err, errs.NotFound) && errorCode(err) == "idle":
		resp.Idle = true
	case err != nil:
		httpx.WriteError(w, r, err)
		return
	default:
		resp.Command = &Command{ID: c.ID, Type: string(c.Type), Payload: c.Payload}
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

func errorCode(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// wait is the agent's own notification channel: a long poll answered as
// soon as a command is due for the device.
func (h *Handler) wait(w http.ResponseWriter, r *http.Request) {
	d, _ := device.FromContext(r.Context())
	var req WaitRequest
	if err := httpx.DecodeJSON(w, r, MaxWaitBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.DeviceID != d.ID {
		httpx.WriteError(w, r, ErrDeviceMismatch)
		return
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 || timeout > MaxWait {
		timeout = MaxWait
	}
	// The server's write timeout must not cut the long poll.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(timeout + 10*time.Second))
	pending, err := h.Waiter.Wait(r.Context(), d.ID, timeout, func() (bool, error) {
		return h.Commands.Due(r.Context(), d.ID)
	})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, WaitResponse{Pending: pending})
}
