package enroll

import (
	"net/http"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// ProfileFileName is the name a downloaded profile is saved under.
const ProfileFileName = "Custos.mobileconfig"

// ErrNotIOS refuses the agent's profile request of a device that is not an
// iPhone or iPad: Macs get theirs from Self-Service, other platforms none.
var ErrNotIOS = errs.E(errs.Forbidden, "platform_not_ios", "enrollment profiles are handed to the agent of iOS and iPadOS devices only")

// ProfileHandler serves PathProfile (POST, behind the device certificate):
// the agent of an iPhone or iPad asks for its enrollment profile (seed,
// "Activating an iOS device", steps 11-12) and hands it to the system.
//
// The answer is the signed profile. With ?format=plist it is the unsigned
// plist, byte for byte the signed one's content: device simulators such as
// mdmb v0.1.0 read only that, and nothing is given away, since the
// signature only lets the device show who issued the profile. The request
// body is ignored.
func (s *Service) ProfileHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := device.FromContext(r.Context())
		if !ok {
			httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "device_certificate_required", "a device certificate is required"))
			return
		}
		if p := activation.Platform(d.Platform); p != activation.IOS && p != activation.IPadOS {
			httpx.WriteError(w, r, ErrNotIOS)
			return
		}
		format := r.URL.Query().Get("format")
		if format != "" && format != "plist" && format != "cms" {
			httpx.WriteError(w, r, errs.E(errs.Invalid, "profile_format", "format is cms (the default) or plist"))
			return
		}
		p, err := s.Profile(r.Context(), d)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		body := p.Signed
		if format == "plist" {
			body = p.Unsigned
		}
		WriteProfile(w, body)
	})
}

// WriteProfile answers with a profile as a download: it carries a one-time
// secret, so no cache may keep it.
func WriteProfile(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+ProfileFileName+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}
