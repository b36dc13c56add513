package apple

import (
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/policy"
)

// DefaultProfilePrefix prefixes the PayloadIdentifier of every profile
// Custos renders: <prefix>.<policy ID>. The identifier is stable per
// policy, so installing a newer revision replaces the installed profile
// (Apple, "Configuration Profile": a profile with the identifier of an
// installed one replaces it).
const DefaultProfilePrefix = "org.custos.policy"

func (h *Handler) prefix() string {
	if h.ProfilePrefix != "" {
		return h.ProfilePrefix
	}
	return DefaultProfilePrefix
}

// ErrNotApplicable: a policy item with no Apple configuration profile
// form; it is recorded as failed with this message.
var ErrNotApplicable = errors.New("not applicable to Apple MDM")

// uuidOf derives a stable UUID from parts (a profile's PayloadUUID must
// be a UUID; deriving it keeps a rendering reproducible).
func uuidOf(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x50 // name-based layout, as in RFC 9562 §5.5
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// settings decodes an item's payload into v.
func settings(it policy.Item, v any) error {
	b, err := json.Marshal(it.Payload)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// RenderProfile renders a policy item as an unsigned configuration
// profile (Apple, "Configuration Profile Reference" / device-management
// "mdm/profiles"), or ErrNotApplicable. Mapping:
//
//	it_policy   → com.apple.mobiledevice.passwordpolicy (+ com.apple.applicationaccess restrictions)
//	wifi        → com.apple.wifi.managed
//	vpn         → com.apple.vpn.managed (IKEv2 and IPSec; other types need a vendor app)
//	email       → com.apple.eas.account
//	certificate → com.apple.security.root (type ca), com.apple.security.scep (type scep)
func RenderProfile(prefix string, it policy.Item) ([]byte, error) {
	ident := prefix + "." + it.ID
	var payloads []map[string]any
	add := func(typ string, m map[string]any) {
		n := len(payloads)
		m["PayloadType"] = typ
		m["PayloadVersion"] = 1
		m["PayloadIdentifier"] = fmt.Sprintf("%s.%d", ident, n)
		m["PayloadUUID"] = uuidOf(it.ID, fmt.Sprint(it.Revision), fmt.Sprint(n))
		m["PayloadDisplayName"] = it.Name
		payloads = append(payloads, m)
	}
	switch it.Kind {
	case policy.ITPolicy:
		var s policy.ITPolicySettings
		if err := settings(it, &s); err != nil {
			return nil, err
		}
		pw := map[string]any{"forcePIN": s.PasswordRequired}
		if s.PasswordMinLength > 0 {
			pw["minLength"] = s.PasswordMinLength
		}
		switch s.PasswordComplexity {
		case "numeric":
			pw["allowSimple"] = false
		case "alphanumeric":
			pw["allowSimple"], pw["requireAlphanumeric"] = false, true
		case "complex":
			pw["allowSimple"], pw["requireAlphanumeric"], pw["minComplexChars"] = false, true, 1
		}
		if s.PasswordMaxAgeDays > 0 {
			pw["maxPINAgeInDays"] = s.PasswordMaxAgeDays
		}
		if s.PasswordHistory > 0 {
			pw["pinHistory"] = s.PasswordHistory
		}
		if s.MaxFailedAttempts > 0 {
			pw["maxFailedAttempts"] = s.MaxFailedAttempts
		}
		if s.ScreenLockTimeoutSeconds > 0 {
			pw["maxInactivity"] = max(1, s.ScreenLockTimeoutSeconds/60) // minutes
		}
		add("com.apple.mobiledevice.passwordpolicy", pw)
		if s.CameraDisabled || s.ScreenCaptureDisabled {
			add("com.apple.applicationaccess", map[string]any{"allowCamera": !s.CameraDisabled, "allowScreenShot": !s.ScreenCaptureDisabled})
		}
	case policy.WiFi:
		var s struct {
			SSID       string `json:"ssid"`
			Security   string `json:"security"`
			Passphrase string `json:"passphrase"`
			Hidden     bool   `json:"hidden"`
			AutoJoin   bool   `json:"auto_join"`
			EAP        *struct {
				EAPType            string   `json:"eap_type"`
				TrustedServerNames []string `json:"trusted_server_names"`
			} `json:"eap"`
		}
		if err := settings(it, &s); err != nil {
			return nil, err
		}
		w := map[string]any{"SSID_STR": s.SSID, "HIDDEN_NETWORK": s.Hidden, "AutoJoin": s.AutoJoin}
		switch s.Security {
		case "none":
			w["EncryptionType"] = "None"
		case "wpa2_personal", "wpa2_enterprise":
			w["EncryptionType"] = "WPA2"
		case "wpa3_personal", "wpa3_enterprise":
			w["EncryptionType"] = "WPA3"
		}
		if s.Passphrase != "" {
			w["Password"] = s.Passphrase
		}
		if s.EAP != nil {
			types := map[string]int{"tls": 13, "ttls": 21, "peap": 25}
			eap := map[string]any{}
			if t, ok := types[s.EAP.EAPType]; ok {
				eap["AcceptEAPTypes"] = []int{t}
			}
			if len(s.EAP.TrustedServerNames) > 0 {
				eap["TLSTrustedServerNames"] = s.EAP.TrustedServerNames
			}
			w["EAPClientConfiguration"] = eap
		}
		add("com.apple.wifi.managed", w)
	case policy.VPN:
		var s struct {
			Type         string `json:"type"`
			Server       string `json:"server"`
			RemoteID     string `json:"remote_id"`
			Auth         string `json:"auth"`
			SharedSecret string `json:"shared_secret"`
			OnDemand     bool   `json:"on_demand"`
		}
		if err := settings(it, &s); err != nil {
			return nil, err
		}
		method := "SharedSecret"
		if s.Auth == "certificate" {
			method = "Certificate"
		}
		v := map[string]any{"UserDefinedName": it.Name}
		switch s.Type {
		case "ikev2":
			ike := map[string]any{"RemoteAddress": s.Server, "RemoteIdentifier": s.RemoteID, "AuthenticationMethod": method, "OnDemandEnabled": boolInt(s.OnDemand)}
			if s.SharedSecret != "" {
				ike["SharedSecret"] = s.SharedSecret
			}
			v["VPNType"], v["IKEv2"] = "IKEv2", ike
		case "ipsec":
			ips := map[string]any{"RemoteAddress": s.Server, "AuthenticationMethod": method}
			if s.SharedSecret != "" {
				ips["SharedSecret"] = []byte(s.SharedSecret)
			}
			v["VPNType"], v["IPSec"] = "IPSec", ips
		default:
			return nil, fmt.Errorf("%w: VPN type %q needs a vendor VPN app", ErrNotApplicable, s.Type)
		}
		add("com.apple.vpn.managed", v)
	case policy.Email:
		var s struct {
			Host             string `json:"host"`
			UseSSL           bool   `json:"use_ssl"`
			Domain           string `json:"domain"`
			UsernameTemplate string `json:"username_template"`
			EmailTemplate    string `json:"email_template"`
			SyncDays         int    `json:"sync_days"`
			AllowMove        bool   `json:"allow_move"`
		}
		if err := settings(it, &s); err != nil {
			return nil, err
		}
		e := map[string]any{"Host": s.Host, "SSL": s.UseSSL, "PreventMove": !s.AllowMove,
			"MailNumberOfPastDaysToSync": s.SyncDays, "EmailAccountName": it.Name}
		// Templates still holding placeholders are left for the user to
		// fill in on the device.
		if s.Domain != "" {
			e["UserName"] = s.Domain + `\`
		}
		if !strings.Contains(s.UsernameTemplate, "{") && s.UsernameTemplate != "" {
			e["UserName"] = s.UsernameTemplate
		}
		if !strings.Contains(s.EmailTemplate, "{") && s.EmailTemplate != "" {
			e["EmailAddress"] = s.EmailTemplate
		}
		add("com.apple.eas.account", e)
	case policy.Certificate:
		var s struct {
			Type      string `json:"type"`
			CAPEM     string `json:"ca_pem"`
			SCEPURL   string `json:"scep_url"`
			Subject   string `json:"subject"`
			KeySize   int    `json:"key_size"`
			Challenge string `json:"challenge"`
		}
		if err := settings(it, &s); err != nil {
			return nil, err
		}
		switch s.Type {
		case "ca":
			b, _ := pem.Decode([]byte(s.CAPEM))
			if b == nil {
				return nil, errors.New("certificate: ca_pem holds no PEM block")
			}
			add("com.apple.security.root", map[string]any{"PayloadContent": b.Bytes, "PayloadCertificateFileName": it.Name + ".cer"})
		case "scep":
			sc := map[string]any{"URL": s.SCEPURL, "Keysize": max(s.KeySize, 2048), "Key Type": "RSA"}
			if s.Challenge != "" {
				sc["Challenge"] = s.Challenge
			}
			if s.Subject != "" && !strings.Contains(s.Subject, "{") {
				sc["Subject"] = [][][]string{{{"CN", s.Subject}}}
			}
			add("com.apple.security.scep", map[string]any{"PayloadContent": sc})
		default:
			return nil, fmt.Errorf("%w: certificate type %q", ErrNotApplicable, s.Type)
		}
	default:
		return nil, fmt.Errorf("%w: policy kind %s", ErrNotApplicable, it.Kind)
	}
	profile := map[string]any{
		"PayloadType":        "Configuration",
		"PayloadVersion":     1,
		"PayloadIdentifier":  ident,
		"PayloadUUID":        uuidOf(it.ID, fmt.Sprint(it.Revision)),
		"PayloadDisplayName": it.Name,
		"PayloadContent":     payloads,
	}
	return plist.MarshalIndent(profile, "\t")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
