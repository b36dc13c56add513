package dep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// Wire limits of the MachineInfo request.
const (
	// MaxMachineInfo bounds the request body: the CMS SignedData of a
	// MachineInfo plist with the device's certificate chain is 3–6 KiB.
	MaxMachineInfo = 64 << 10
	// MaxPlistDepth bounds the nesting of the MachineInfo plist: it is one
	// flat dictionary (plist > dict > key/string).
	MaxPlistDepth = 8
	// ContentTypeProfile is the answer's type (Apple: "the server returns
	// the enrollment profile ... application/x-apple-aspen-config").
	ContentTypeProfile = "application/x-apple-aspen-config"
)

// MachineInfo is what the device sends during Setup Assistant
// (apple/device-management other/machineinfo.yaml).
type MachineInfo struct {
	UDID      string `plist:"UDID"`
	Serial    string `plist:"SERIAL"`
	Product   string `plist:"PRODUCT"`
	Version   string `plist:"VERSION"`
	IMEI      string `plist:"IMEI,omitempty"`
	MEID      string `plist:"MEID,omitempty"`
	Language  string `plist:"LANGUAGE,omitempty"`
	OSVersion string `plist:"OS_VERSION,omitempty"`
}

// Refusals of an enrollment request.
var (
	ErrUnsigned = errs.E(errs.Forbidden, "machineinfo_unsigned",
		"the MachineInfo is not signed: automated enrollment needs the device's Apple-signed MachineInfo")
	ErrForeignSigner = errs.E(errs.Forbidden, "machineinfo_untrusted",
		"the MachineInfo signature does not verify against Apple's device CA")
	ErrSerialNotAssigned = errs.E(errs.Forbidden, "serial_not_assigned",
		"this device is not assigned to this MDM server in Apple Business Manager (or the Core has not synced it yet)")
	ErrNoUser = errs.E(errs.Forbidden, "ade_no_user",
		"no user is assigned to this device: assign it to a user in the console (Settings → Automated enrollment) or set a default user")
	ErrBadMachineInfo = errs.E(errs.Invalid, "invalid_machineinfo", "the MachineInfo plist is malformed")
	ErrNoRoots        = errs.E(errs.Unavailable, "ade_roots_not_configured",
		"automated enrollment is not configured: the Core has no Apple device CA roots (serve --apple-device-ca)")
)

// Enrollee is the device an enrollment creates.
type Enrollee struct {
	UserID    string
	Platform  string // "ios", "ipados" or "macos" (activation.Platform values)
	UDID      string
	Serial    string
	Model     string
	OSVersion string
}

// Enroller creates the Custos device of an ADE enrollment and returns its
// enrollment profile (the Core wires activation.Service.ActivateUser and
// enroll.Service.Profile).
type Enroller interface {
	Activate(ctx context.Context, e Enrollee) (*device.Device, error)
	// Profile returns the (signed) enrollment profile of d.
	Profile(ctx context.Context, d *device.Device) ([]byte, error)
}

// ParseMachineInfo verifies the CMS signature of body against roots at
// now, BEFORE reading its content, then parses the MachineInfo plist.
func ParseMachineInfo(body []byte, roots *Roots, now time.Time) (mi *MachineInfo, err error) {
	defer func() {
		// The CMS parser works on untrusted bytes; a panic in it is a
		// refusal, not a crash of the Core.
		if r := recover(); r != nil {
			mi, err = nil, errs.Wrap(errs.Invalid, ErrBadMachineInfo.Code, ErrBadMachineInfo.Message, fmt.Errorf("panic: %v", r))
		}
	}()
	if roots == nil {
		return nil, ErrNoRoots
	}
	trim := bytes.TrimSpace(body)
	if bytes.HasPrefix(trim, []byte("<?xml")) || bytes.HasPrefix(trim, []byte("<plist")) || bytes.HasPrefix(trim, []byte("bplist")) {
		return nil, ErrUnsigned
	}
	p7, err := pkcs7.Parse(body)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrBadMachineInfo.Code, "the body is not a CMS-signed MachineInfo", err)
	}
	if len(p7.Signers) != 1 || len(p7.Content) == 0 {
		// A device signs with its one identity.
		return nil, ErrUnsigned
	}
	// The signature over the content (truststore nil: no chain here),
	// then the signer's chain to Apple's roots.
	if err := p7.VerifyWithChainAtTime(nil, now); err != nil {
		return nil, errs.Wrap(errs.Forbidden, ErrForeignSigner.Code, ErrForeignSigner.Message, err)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, ErrUnsigned
	}
	if err := roots.verify(signer, p7.Certificates, now); err != nil {
		return nil, errs.Wrap(errs.Forbidden, ErrForeignSigner.Code, ErrForeignSigner.Message, err)
	}
	return parsePlist(p7.Content)
}

// parsePlist reads the MachineInfo plist: an XML plist of bounded depth
// (the device sends XML), every field bounded.
func parsePlist(b []byte) (*MachineInfo, error) {
	bad := func(why string) error {
		return errs.Wrap(errs.Invalid, ErrBadMachineInfo.Code, ErrBadMachineInfo.Message+": "+why, nil)
	}
	if err := checkDepth(b, MaxPlistDepth); err != nil {
		return nil, bad(err.Error())
	}
	var mi MachineInfo
	if err := plist.Unmarshal(b, &mi); err != nil {
		return nil, bad("not a plist dictionary")
	}
	for name, v := range map[string]string{"UDID": mi.UDID, "SERIAL": mi.Serial, "PRODUCT": mi.Product, "VERSION": mi.Version,
		"IMEI": mi.IMEI, "MEID": mi.MEID, "LANGUAGE": mi.Language, "OS_VERSION": mi.OSVersion} {
		if len(v) > MaxFieldLen || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, bad(name + " is too long or has control characters")
		}
	}
	if mi.UDID == "" || mi.Serial == "" {
		return nil, bad("UDID and SERIAL are required")
	}
	return &mi, nil
}

// checkDepth refuses XML nested deeper than max (and anything that is not
// well-formed XML) before the plist decoder recurses into it.
func checkDepth(b []byte, max int) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 {
				return errors.New("unbalanced XML")
			}
			return nil
		}
		if err != nil {
			return errors.New("not well-formed XML")
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > max {
				return fmt.Errorf("nested deeper than %d", max)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// platformOf maps the PRODUCT (iPhone16,1, iPad14,3, Mac14,2,
// MacBookPro18,3, iMac21,1 …) to an activation platform.
func platformOf(product string) string {
	switch {
	case strings.HasPrefix(product, "iPad"):
		return "ipados"
	case strings.HasPrefix(product, "iPhone"), strings.HasPrefix(product, "iPod"):
		return "ios"
	case strings.Contains(product, "Mac"):
		return "macos"
	}
	return "ios"
}

// EnrollDevice runs an enrollment for a verified MachineInfo: the serial must
// be one the sync saw assigned to this server, with a user; the device is
// created and its enrollment profile returned.
func (s *Service) EnrollDevice(ctx context.Context, mi *MachineInfo) ([]byte, error) {
	d, err := s.Store.DEPDevice(ctx, mi.Serial)
	if errors.Is(err, errs.ErrNotFound) || (err == nil && d.Removed) {
		return nil, ErrSerialNotAssigned
	}
	if err != nil {
		return nil, err
	}
	userID := d.UserID
	if userID == "" {
		if userID, err = s.DefaultUser(ctx); err != nil {
			return nil, err
		}
	}
	if userID == "" {
		return nil, ErrNoUser
	}
	if s.Enroll == nil {
		return nil, errs.E(errs.Unavailable, "ade_enrollment_unavailable", "Apple enrollment is not available on this Core")
	}
	dev, err := s.Enroll.Activate(ctx, Enrollee{UserID: userID, Platform: platformOf(mi.Product), UDID: mi.UDID, Serial: mi.Serial,
		Model: mi.Product, OSVersion: mi.Version})
	if err != nil {
		return nil, err
	}
	prof, err := s.Enroll.Profile(ctx, dev)
	if err != nil {
		return nil, err
	}
	if err := s.Store.RecordDEPEnrollment(ctx, mi.Serial, dev.ID, s.now()); err != nil {
		s.log().WarnContext(ctx, "ADE: could not record the enrollment", "serial", mi.Serial, "device", dev.ID, "err", err)
	}
	return prof, nil
}

// Handler serves PathEnroll. roots returns Apple's device CA roots (nil:
// not configured).
func (s *Service) Handler(roots func() *Roots) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMachineInfo))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				httpx.WriteError(w, r, errs.E(errs.TooLarge, "machineinfo_too_large", fmt.Sprintf("the MachineInfo is over %d bytes", MaxMachineInfo)))
				return
			}
			httpx.WriteError(w, r, errs.Wrap(errs.Invalid, "bad_request", "could not read the request", err))
			return
		}
		mi, err := ParseMachineInfo(body, roots(), s.now())
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		prof, err := s.EnrollDevice(r.Context(), mi)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", ContentTypeProfile)
		w.Header().Set("Cache-Control", "no-store")
		w.Write(prof)
	})
}
