package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/errs"
)

// Limits of a policy's fields.
const (
	MaxName        = 128
	MaxDescription = 2048
	MinRank        = 1
	MaxRank        = 1_000_000
	// MaxSettings bounds the settings object in bytes, checked before it is
	// decoded; a CA bundle is the largest thing a profile carries.
	MaxSettings = 64 << 10
	// MaxList bounds every list inside settings (domains, apps).
	MaxList = 500
	// MaxConfigKeys and MaxConfigValue bound an app configuration.
	MaxConfigKeys  = 256
	MaxConfigValue = 4096
)

// RedactedSecret replaces a secret setting in what the API shows (see
// Redacted). Sent back unchanged in an update, it keeps the stored secret.
const RedactedSecret = "***"

// CodeInvalid is the error code of a policy that breaks a rule.
const CodeInvalid = "invalid_policy"

// secrets names, per kind, the top-level settings that are secrets: stored
// and sent to devices, never shown by the API.
var secrets = map[Kind][]string{
	WiFi:        {"passphrase"},
	VPN:         {"shared_secret"},
	Certificate: {"challenge"},
}

// fields collects errors keyed by field path; the first error of a field
// is kept.
type fields map[string]string

func (f fields) add(key, msg string) {
	if _, ok := f[key]; !ok {
		f[key] = msg
	}
}

func invalid(f fields) error {
	e := errs.E(errs.Invalid, CodeInvalid, "the policy has invalid fields")
	e.Fields = f
	return e
}

// validText reports whether s is UTF-8 of at most max bytes without control
// characters. Markup is data: every output escapes it.
func validText(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// Validate checks every field of p but the cross-references to other
// policies (the Service checks those): name, description, rank, kind,
// platforms and the kind's settings. The error is errs.Invalid with code
// CodeInvalid and one entry per bad field, settings keyed "settings.<path>".
func Validate(p *Policy) error {
	f := fields{}
	if name := strings.TrimSpace(p.Name); name == "" || !validText(name, MaxName) {
		f.add("name", "required, at most 128 bytes of text")
	}
	if len(p.Description) > MaxDescription || !utf8.ValidString(p.Description) || strings.ContainsRune(p.Description, 0) {
		f.add("description", "at most 2048 bytes of text")
	}
	if p.Rank < MinRank || p.Rank > MaxRank {
		f.add("rank", "between 1 and 1000000")
	}
	seen := map[string]bool{}
	for _, pl := range p.Platforms {
		switch {
		case !activation.ValidPlatform(activation.Platform(pl)):
			f.add("platforms", fmt.Sprintf("unknown platform %q", pl))
		case seen[pl]:
			f.add("platforms", fmt.Sprintf("platform %q listed twice", pl))
		}
		seen[pl] = true
	}
	if !p.Kind.Valid() {
		f.add("kind", "one of "+kindList())
	} else {
		for k, v := range ValidateSettings(p.Kind, p.Settings) {
			f.add(k, v)
		}
	}
	if len(f) > 0 {
		return invalid(f)
	}
	return nil
}

func kindList() string {
	var names []string
	for _, k := range kinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// ValidateSettings checks raw against the settings schema of kind and
// returns the errors keyed "settings" or "settings.<path>"; nil when valid.
// Decoding is strict: an unknown key or a value of the wrong type is an
// error, never ignored.
func ValidateSettings(kind Kind, raw json.RawMessage) map[string]string {
	f := fields{}
	switch {
	case len(raw) > MaxSettings:
		f.add("settings", "at most 64 KiB")
	case !isObject(raw):
		f.add("settings", "a JSON object")
	default:
		c := &checker{f: f}
		switch kind {
		case ITPolicy:
			c.itPolicy(raw)
		case WiFi:
			c.wifi(raw)
		case VPN:
			c.vpn(raw)
		case Email:
			c.email(raw)
		case Connectivity:
			c.connectivity(raw)
		case Certificate:
			c.certificate(raw)
		case AppConfig:
			c.appConfig(raw)
		case SoftwareRelease:
			c.softwareRelease(raw)
		case Compliance:
			for k, v := range compliance.ValidateSettings(raw) {
				f.add("settings."+k, v)
			}
		default:
			f.add("kind", "one of "+kindList())
		}
		for _, key := range secrets[kind] {
			if v, ok := topString(raw, key); ok && v == RedactedSecret {
				f.add("settings."+key, "the secret itself, not the redaction marker")
			}
		}
	}
	if len(f) == 0 {
		return nil
	}
	return f
}

// isObject reports whether raw is one JSON object and nothing else.
func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '{' && json.Unmarshal(raw, &m) == nil
}

// topString returns the string value of a top-level key of an object.
func topString(raw json.RawMessage, key string) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return "", false
	}
	var s string
	if v, ok := m[key]; !ok || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// checker validates settings into f.
type checker struct{ f fields }

// decode decodes the object raw strictly into v; the first decoding error
// becomes a field error under prefix ("settings." or a nested path) and
// decode reports false.
func (c *checker) decode(prefix string, raw json.RawMessage, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			c.f.add(strings.TrimSuffix(prefix, "."), "one JSON object")
			return false
		}
		return true
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		c.f.add(prefix+te.Field, "must be "+typeName(te.Type))
	case errors.As(err, &te):
		c.f.add(strings.TrimSuffix(prefix, "."), "must be "+typeName(te.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			name = "?"
		}
		c.f.add(prefix+name, "unknown setting")
	default:
		c.f.add(strings.TrimSuffix(prefix, "."), "not valid JSON")
	}
	return false
}

// object decodes the nested object under key (nil or absent: nothing) into
// v, reporting errors with the key's full path.
func (c *checker) object(path string, raw json.RawMessage, v any) bool {
	if !isObject(raw) {
		c.f.add(path, "must be an object")
		return false
	}
	return c.decode(path+".", raw, v)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// Small checks shared by the schemas.

func (c *checker) rangeInt(key string, v, lo, hi int) {
	if v < lo || v > hi {
		c.f.add(key, fmt.Sprintf("between %d and %d", lo, hi))
	}
}

func (c *checker) oneOf(key, v string, required bool, allowed ...string) {
	if v == "" && !required {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.f.add(key, "one of "+strings.Join(allowed, ", "))
}

func (c *checker) text(key, v string, required bool, max int) {
	if v == "" && required {
		c.f.add(key, "required")
	} else if !validText(v, max) {
		c.f.add(key, fmt.Sprintf("at most %d bytes of text", max))
	}
}

// absent reports a setting that does not belong with the others.
func (c *checker) absent(key string, set bool, why string) {
	if set {
		c.f.add(key, why)
	}
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validHost reports a DNS name or an IP address.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func (c *checker) host(key, v string, required bool) {
	if v == "" && !required {
		return
	}
	if !validHost(v) {
		c.f.add(key, "a host name or IP address")
	}
}

// hostPort checks "host:port" with a port in 1..65535.
func (c *checker) hostPort(key, v string) {
	if v == "" {
		return
	}
	h, p, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil || n < 1 || n > 65535 || !validHost(h) {
		c.f.add(key, "host:port, a port between 1 and 65535")
	}
}

// policyRef checks the ID of a policy another refers to.
func (c *checker) policyRef(key, v string, required bool) {
	if v == "" {
		if required {
			c.f.add(key, "required")
		}
		return
	}
	if _, err := uuid.Parse(v); err != nil || len(v) != 36 {
		c.f.add(key, "a certificate profile ID")
	}
}

var versionRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$`)

// compareVersions compares dotted numeric versions, missing parts being 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (c *checker) version(key, v string) bool {
	if !versionRE.MatchString(v) {
		c.f.add(key, "a version of dotted numbers, e.g. 17.4 or 10.0.22631")
		return false
	}
	return true
}

// platformKey checks a settings map key that names a platform.
func (c *checker) platformKey(key, p string) bool {
	if !activation.ValidPlatform(activation.Platform(p)) {
		c.f.add(key, "unknown platform")
		return false
	}
	return true
}

var appIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

func (c *checker) appID(key, v string) {
	if !appIDRE.MatchString(v) {
		c.f.add(key, "an app identifier (package name or bundle ID)")
	}
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// template checks a text with placeholders, of which only the listed ones
// are known: a typo would otherwise reach every device verbatim.
func (c *checker) template(key, v string, required bool, known ...string) {
	c.text(key, v, required, 256)
	for _, ph := range placeholderRE.FindAllString(v, -1) {
		ok := false
		for _, k := range known {
			ok = ok || ph == "{"+k+"}"
		}
		if !ok {
			c.f.add(key, "unknown placeholder "+ph+"; known: {"+strings.Join(known, "}, {")+"}")
		}
	}
	if rest := placeholderRE.ReplaceAllString(v, ""); strings.ContainsAny(rest, "{}") {
		c.f.add(key, "unbalanced braces")
	}
}

// The schemas, one per kind.

// osRange bounds the OS versions allowed on a platform.
type osRange struct {
	Min string `json:"min"`
	Max string `json:"max"`
}

// ITPolicySettings is the schema of an it_policy item's settings, which
// the platform adapters render (Apple configuration profiles, Windows
// Policy CSP): one definition, so a field added here reaches every
// platform's decoder.
type ITPolicySettings struct {
	PasswordRequired         bool                       `json:"password_required"`
	PasswordMinLength        int                        `json:"password_min_length"`
	PasswordComplexity       string                     `json:"password_complexity"`
	PasswordMaxAgeDays       int                        `json:"password_max_age_days"`
	PasswordHistory          int                        `json:"password_history"`
	MaxFailedAttempts        int                        `json:"max_failed_attempts"`
	ScreenLockTimeoutSeconds int                        `json:"screen_lock_timeout_seconds"`
	EncryptionRequired       bool                       `json:"encryption_required"`
	CameraDisabled           bool                       `json:"camera_disabled"`
	ScreenCaptureDisabled    bool                       `json:"screen_capture_disabled"`
	BluetoothDisabled        bool                       `json:"bluetooth_disabled"`
	USBStorageDisabled       bool                       `json:"usb_storage_disabled"`
	AllowedOSVersions        map[string]json.RawMessage `json:"allowed_os_versions"`
}

func (c *checker) itPolicy(raw json.RawMessage) {
	var s ITPolicySettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	c.rangeInt("settings.password_min_length", s.PasswordMinLength, 0, 64)
	c.oneOf("settings.password_complexity", s.PasswordComplexity, false, "none", "numeric", "alphanumeric", "complex")
	c.rangeInt("settings.password_max_age_days", s.PasswordMaxAgeDays, 0, 730)
	c.rangeInt("settings.password_history", s.PasswordHistory, 0, 50)
	// Wiping after fewer than 4 attempts wipes devices by accident; more
	// than 30 leaves a 4-digit PIN guessable.
	if n := s.MaxFailedAttempts; n != 0 && (n < 4 || n > 30) {
		c.f.add("settings.max_failed_attempts", "0 (never wipe) or between 4 and 30")
	}
	c.rangeInt("settings.screen_lock_timeout_seconds", s.ScreenLockTimeoutSeconds, 0, 86400)
	if !s.PasswordRequired && (s.PasswordMinLength > 0 || s.PasswordComplexity != "" && s.PasswordComplexity != "none" || s.MaxFailedAttempts > 0) {
		c.f.add("settings.password_required", "must be true when password rules are set")
	}
	for pl, r := range s.AllowedOSVersions {
		key := "settings.allowed_os_versions." + pl
		if !c.platformKey(key, pl) {
			continue
		}
		var v osRange
		if !c.object(key, r, &v) {
			continue
		}
		if v.Min == "" && v.Max == "" {
			c.f.add(key, "min, max or both")
			continue
		}
		okMin := v.Min == "" || c.version(key+".min", v.Min)
		okMax := v.Max == "" || c.version(key+".max", v.Max)
		if okMin && okMax && v.Min != "" && v.Max != "" && compareVersions(v.Min, v.Max) > 0 {
			c.f.add(key+".max", "at least min")
		}
	}
}

type eapSettings struct {
	EAPType              string   `json:"eap_type"`
	CertificateProfileID string   `json:"certificate_profile_id"`
	IdentityTemplate     string   `json:"identity_template"`
	TrustedServerNames   []string `json:"trusted_server_names"`
}

type wifiSettings struct {
	SSID       string          `json:"ssid"`
	Security   string          `json:"security"`
	Passphrase string          `json:"passphrase"`
	Hidden     bool            `json:"hidden"`
	AutoJoin   bool            `json:"auto_join"`
	EAP        json.RawMessage `json:"eap"`
}

// hexKeyRE is a raw 256-bit WPA pre-shared key, the alternative to a
// passphrase of 8 to 63 characters.
var hexKeyRE = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)

func (c *checker) wifi(raw json.RawMessage) {
	var s wifiSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	if n := len(s.SSID); n < 1 || n > 32 || !utf8.ValidString(s.SSID) {
		c.f.add("settings.ssid", "1 to 32 bytes")
	}
	c.oneOf("settings.security", s.Security, true, "none", "wpa2_personal", "wpa3_personal", "wpa2_enterprise", "wpa3_enterprise")
	personal := s.Security == "wpa2_personal" || s.Security == "wpa3_personal"
	enterprise := s.Security == "wpa2_enterprise" || s.Security == "wpa3_enterprise"
	if personal {
		if n := len(s.Passphrase); !hexKeyRE.MatchString(s.Passphrase) && (n < 8 || n > 63 || strings.IndexFunc(s.Passphrase, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0) {
			c.f.add("settings.passphrase", "8 to 63 printable ASCII characters, or 64 hex digits")
		}
	} else {
		c.absent("settings.passphrase", s.Passphrase != "", "only for wpa2_personal and wpa3_personal")
	}
	if !enterprise {
		c.absent("settings.eap", s.EAP != nil, "only for wpa2_enterprise and wpa3_enterprise")
		return
	}
	if s.EAP == nil {
		c.f.add("settings.eap", "required for enterprise security")
		return
	}
	var e eapSettings
	if !c.object("settings.eap", s.EAP, &e) {
		return
	}
	c.oneOf("settings.eap.eap_type", e.EAPType, true, "tls", "peap", "ttls")
	c.policyRef("settings.eap.certificate_profile_id", e.CertificateProfileID, e.EAPType == "tls")
	c.template("settings.eap.identity_template", e.IdentityTemplate, false, "username", "email")
	if len(e.TrustedServerNames) > MaxList {
		c.f.add("settings.eap.trusted_server_names", "at most 500 names")
	}
	for i, n := range e.TrustedServerNames {
		if !validHost(strings.TrimPrefix(n, "*.")) {
			c.f.add(fmt.Sprintf("settings.eap.trusted_server_names.%d", i), "a host name, optionally starting with *.")
		}
	}
}

type vpnSettings struct {
	Type                 string   `json:"type"`
	Server               string   `json:"server"`
	Port                 int      `json:"port"`
	RemoteID             string   `json:"remote_id"`
	Auth                 string   `json:"auth"`
	CertificateProfileID string   `json:"certificate_profile_id"`
	SharedSecret         string   `json:"shared_secret"`
	ServerPublicKey      string   `json:"server_public_key"`
	OnDemand             bool     `json:"on_demand"`
	Apps                 []string `json:"apps"`
}

func (c *checker) vpn(raw json.RawMessage) {
	var s vpnSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	c.oneOf("settings.type", s.Type, true, "ikev2", "ipsec", "ssl", "wireguard", "per_app")
	c.host("settings.server", s.Server, true)
	c.rangeInt("settings.port", s.Port, 0, 65535)
	c.text("settings.remote_id", s.RemoteID, s.Type == "ikev2", 255)
	if s.Type == "wireguard" {
		// WireGuard authenticates with keys: the device's is generated on
		// the device, the server's is pinned here.
		c.absent("settings.auth", s.Auth != "", "not for wireguard, which authenticates with keys")
		if k, err := base64.StdEncoding.DecodeString(s.ServerPublicKey); err != nil || len(k) != 32 {
			c.f.add("settings.server_public_key", "the server's public key, 32 bytes in base64")
		}
	} else {
		c.absent("settings.server_public_key", s.ServerPublicKey != "", "only for wireguard")
		c.oneOf("settings.auth", s.Auth, true, "certificate", "password")
	}
	c.policyRef("settings.certificate_profile_id", s.CertificateProfileID, s.Auth == "certificate")
	if s.Auth != "certificate" {
		c.absent("settings.certificate_profile_id", s.CertificateProfileID != "", "only with auth certificate")
	}
	if s.Type == "ipsec" {
		c.text("settings.shared_secret", s.SharedSecret, false, 255)
	} else {
		c.absent("settings.shared_secret", s.SharedSecret != "", "only for ipsec")
	}
	if s.Type == "per_app" {
		if len(s.Apps) == 0 || len(s.Apps) > MaxList {
			c.f.add("settings.apps", "1 to 500 app identifiers")
		}
		for i, a := range s.Apps {
			c.appID(fmt.Sprintf("settings.apps.%d", i), a)
		}
	} else {
		c.absent("settings.apps", len(s.Apps) > 0, "only for per_app")
	}
}

type emailSettings struct {
	Host                 string `json:"host"`
	UseSSL               bool   `json:"use_ssl"`
	Domain               string `json:"domain"`
	UsernameTemplate     string `json:"username_template"`
	EmailTemplate        string `json:"email_template"`
	SyncDays             int    `json:"sync_days"`
	AllowMove            bool   `json:"allow_move"`
	CertificateProfileID string `json:"certificate_profile_id"`
}

func (c *checker) email(raw json.RawMessage) {
	var s emailSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	c.host("settings.host", s.Host, true)
	c.text("settings.domain", s.Domain, false, 255)
	c.template("settings.username_template", s.UsernameTemplate, true, "username", "email")
	c.template("settings.email_template", s.EmailTemplate, true, "username", "email")
	switch s.SyncDays {
	case 1, 3, 7, 14, 30:
	default:
		c.f.add("settings.sync_days", "one of 1, 3, 7, 14, 30")
	}
	c.policyRef("settings.certificate_profile_id", s.CertificateProfileID, false)
}

type connectivitySettings struct {
	RouteAllTraffic bool     `json:"route_all_traffic"`
	Tunnel          bool     `json:"tunnel"`
	AllowedDomains  []string `json:"allowed_domains"`
	Proxy           string   `json:"proxy"`
}

func (c *checker) connectivity(raw json.RawMessage) {
	var s connectivitySettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	if s.RouteAllTraffic && len(s.AllowedDomains) > 0 {
		c.f.add("settings.allowed_domains", "empty when route_all_traffic is true")
	}
	if len(s.AllowedDomains) > MaxList {
		c.f.add("settings.allowed_domains", "at most 500 domains")
	}
	for i, d := range s.AllowedDomains {
		if !validHost(strings.TrimPrefix(d, "*.")) {
			c.f.add(fmt.Sprintf("settings.allowed_domains.%d", i), "a domain, optionally starting with *.")
		}
	}
	c.hostPort("settings.proxy", s.Proxy)
}

type certificateSettings struct {
	Type      string `json:"type"`
	CAPEM     string `json:"ca_pem"`
	SCEPURL   string `json:"scep_url"`
	Subject   string `json:"subject"`
	KeySize   int    `json:"key_size"`
	Challenge string `json:"challenge"`
}

func (c *checker) certificate(raw json.RawMessage) {
	var s certificateSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	c.oneOf("settings.type", s.Type, true, "ca", "scep", "user_pkcs12")
	if s.Type == "ca" {
		c.caPEM("settings.ca_pem", s.CAPEM)
	} else {
		c.absent("settings.ca_pem", s.CAPEM != "", "only for type ca")
	}
	scep := s.Type == "scep"
	if scep {
		if u, err := url.Parse(s.SCEPURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || !validText(s.SCEPURL, 2048) {
			c.f.add("settings.scep_url", "an http or https URL without credentials")
		}
		c.template("settings.subject", s.Subject, true, "username", "email", "device_id")
		switch s.KeySize {
		case 0, 2048, 3072, 4096: // 0: the device's default, 2048
		default:
			c.f.add("settings.key_size", "2048, 3072 or 4096")
		}
		c.text("settings.challenge", s.Challenge, false, 255)
		return
	}
	for key, set := range map[string]bool{"scep_url": s.SCEPURL != "", "subject": s.Subject != "", "key_size": s.KeySize != 0, "challenge": s.Challenge != ""} {
		c.absent("settings."+key, set, "only for type scep")
	}
}

// caPEM checks a bundle of PEM certificates: at least one, every block a
// certificate that parses, nothing else in the text.
func (c *checker) caPEM(key, v string) {
	rest := []byte(v)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			c.f.add(key, "only CERTIFICATE blocks, found "+b.Type)
			return
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			c.f.add(key, fmt.Sprintf("certificate %d does not parse", n+1))
			return
		}
		n++
	}
	if n == 0 || len(bytes.TrimSpace(rest)) > 0 {
		c.f.add(key, "one or more PEM certificates and nothing else")
	}
}

type appConfigSettings struct {
	AppID  string                     `json:"app_id"`
	Config map[string]json.RawMessage `json:"config"`
}

func (c *checker) appConfig(raw json.RawMessage) {
	var s appConfigSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	c.appID("settings.app_id", s.AppID)
	if len(s.Config) > MaxConfigKeys {
		c.f.add("settings.config", "at most 256 keys")
		return
	}
	for k, v := range s.Config {
		key := "settings.config." + k
		if k == "" || !validText(k, 128) {
			c.f.add("settings.config", "keys of 1 to 128 bytes of text")
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case len(v) == 0:
			c.f.add(key, "a string, number or boolean")
		case v[0] == '"':
			var str string
			if json.Unmarshal(v, &str) != nil || len(str) > MaxConfigValue {
				c.f.add(key, "a string of at most 4096 bytes")
			}
		case v[0] == 't' || v[0] == 'f' || v[0] == '-' || v[0] >= '0' && v[0] <= '9':
			// true, false or a number: the decoder checked the syntax.
		default:
			c.f.add(key, "a string, number or boolean")
		}
	}
}

type softwareReleaseSettings struct {
	MinOSVersion  map[string]string `json:"min_os_version"`
	DeferDays     int               `json:"defer_days"`
	InstallWindow json.RawMessage   `json:"install_window"`
}

type window struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

var hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func (c *checker) softwareRelease(raw json.RawMessage) {
	var s softwareReleaseSettings
	if !c.decode("settings.", raw, &s) {
		return
	}
	for pl, v := range s.MinOSVersion {
		key := "settings.min_os_version." + pl
		if c.platformKey(key, pl) {
			c.version(key, v)
		}
	}
	c.rangeInt("settings.defer_days", s.DeferDays, 0, 90)
	if s.InstallWindow == nil {
		return
	}
	var w window
	if !c.object("settings.install_window", s.InstallWindow, &w) {
		return
	}
	okStart, okEnd := hhmmRE.MatchString(w.Start), hhmmRE.MatchString(w.End)
	if !okStart {
		c.f.add("settings.install_window.start", "HH:MM, 00:00 to 23:59")
	}
	if !okEnd {
		c.f.add("settings.install_window.end", "HH:MM, 00:00 to 23:59")
	}
	// A window may cross midnight (22:00 to 04:00); an empty one never opens.
	if okStart && okEnd && w.Start == w.End {
		c.f.add("settings.install_window.end", "different from start")
	}
}

// certificateRefs returns the certificate profile IDs the settings refer
// to, keyed by field, for the Service to check that they exist.
func certificateRefs(kind Kind, raw json.RawMessage) map[string]string {
	out := map[string]string{}
	switch kind {
	case WiFi:
		var s wifiSettings
		var e eapSettings
		if json.Unmarshal(raw, &s) == nil && s.EAP != nil && json.Unmarshal(s.EAP, &e) == nil && e.CertificateProfileID != "" {
			out["settings.eap.certificate_profile_id"] = e.CertificateProfileID
		}
	case VPN, Email:
		var s struct {
			ID string `json:"certificate_profile_id"`
		}
		if json.Unmarshal(raw, &s) == nil && s.ID != "" {
			out["settings.certificate_profile_id"] = s.ID
		}
	}
	return out
}

// canonical returns raw with object keys sorted, no insignificant space and
// numbers as written, so that equal settings are stored (and compared) as
// equal bytes whatever the client's key order or indentation.
func canonical(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// redact replaces the secrets of kind in raw by RedactedSecret.
func redact(kind Kind, raw json.RawMessage) json.RawMessage {
	keys := secrets[kind]
	if len(keys) == 0 {
		return raw
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	changed := false
	for _, k := range keys {
		var s string
		if v, ok := m[k]; ok && json.Unmarshal(v, &s) == nil && s != "" {
			m[k], changed = json.RawMessage(strconv.Quote(RedactedSecret)), true
		}
	}
	if !changed {
		return raw
	}
	out, err := canonical(mustMarshal(m))
	if err != nil {
		return raw
	}
	return out
}

// restoreSecrets puts the stored secrets of old into next where next sends
// RedactedSecret back, so that an administrator can edit a profile read
// from the API without retyping its secrets.
func restoreSecrets(kind Kind, next, old json.RawMessage) json.RawMessage {
	var n, o map[string]json.RawMessage
	if json.Unmarshal(next, &n) != nil || json.Unmarshal(old, &o) != nil {
		return next
	}
	changed := false
	for _, k := range secrets[kind] {
		var s string
		if v, ok := n[k]; ok && json.Unmarshal(v, &s) == nil && s == RedactedSecret {
			if ov, ok := o[k]; ok {
				n[k], changed = ov, true
			}
		}
	}
	if !changed {
		return next
	}
	return mustMarshal(n)
}

// mustMarshal encodes a map of raw values, which cannot fail.
func mustMarshal(m map[string]json.RawMessage) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // raw values that came out of a decoder re-encode
	}
	return b
}
