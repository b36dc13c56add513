package agent

import (
	"net/http"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// DefaultPollSeconds is how often an agent checks in when nothing pushes it.
const DefaultPollSeconds = 900

// Handler serves the agent protocol.
type Handler struct {
	Activation *activation.Service
	Devices    *device.Service
	// Limiter, when set, rate-limits the two unauthenticated endpoints per
	// client address.
	Limiter     *httpx.IPLimiter
	PollSeconds int
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
	rt.Device("POST "+PathCheckin, http.HandlerFunc(h.checkin))
	rt.Device("POST "+PathAck, http.HandlerFunc(h.ack))
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
	if err := h.Devices.Report(r.Context(), d, req.Info, req.Software); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, CheckinResponse{DeviceID: d.ID, State: string(d.State), Configuration: h.configuration(d)})
}

// configuration is the device's effective configuration. Until IT policies
// and profiles exist it is empty, with a fixed version.
func (h *Handler) configuration(*device.Device) Configuration {
	poll := h.PollSeconds
	if poll <= 0 {
		poll = DefaultPollSeconds
	}
	return Configuration{Version: "0", Items: []Item{}, PollSeconds: poll}
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
	if err := h.Devices.Acknowledge(r.Context(), d, req.Version); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, AckResponse{State: string(device.StateActive)})
}
