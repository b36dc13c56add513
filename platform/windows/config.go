package windows

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/policy"
)

// Policy CSP nodes (policy-csp-devicelock and the other areas used here).
const (
	policyConfig = "./Device/Vendor/MSFT/Policy/Config/"
	deviceLock   = policyConfig + "DeviceLock/"
	// BitLocker/RequireDeviceEncryption (bitlocker-csp): 1 requires
	// encryption of the device.
	NodeRequireEncryption = "./Device/Vendor/MSFT/BitLocker/RequireDeviceEncryption"
)

// DeviceLock policy names (policy-csp-devicelock).
const (
	DevicePasswordEnabled              = "DevicePasswordEnabled" // 0 enabled, 1 disabled (inverted)
	MinDevicePasswordLength            = "MinDevicePasswordLength"
	AlphanumericDevicePasswordRequired = "AlphanumericDevicePasswordRequired" // 0 alphanumeric, 1 numeric, 2 either
	MinDevicePasswordComplexCharacters = "MinDevicePasswordComplexCharacters"
	DevicePasswordExpiration           = "DevicePasswordExpiration" // days
	DevicePasswordHistory              = "DevicePasswordHistory"
	MaxDevicePasswordFailedAttempts    = "MaxDevicePasswordFailedAttempts"
	MaxInactivityTimeDeviceLock        = "MaxInactivityTimeDeviceLock" // minutes
)

func intOp(uri string, v int) op {
	return op{verb: syncml.CmdReplace, uri: uri, format: "int", data: strconv.Itoa(v)}
}

// ITPolicyOps returns the CSP operations of an IT policy: the DeviceLock
// group (one Atomic: a password policy applies whole or not at all) and
// the other areas, each on its own.
func ITPolicyOps(s policy.ITPolicySettings) (lock []op, other []op) {
	if !s.PasswordRequired {
		lock = append(lock, intOp(deviceLock+DevicePasswordEnabled, 1))
	} else {
		lock = append(lock, intOp(deviceLock+DevicePasswordEnabled, 0))
		if s.PasswordMinLength > 0 {
			// Windows accepts 4 to 16 (policy-csp-devicelock).
			lock = append(lock, intOp(deviceLock+MinDevicePasswordLength, min(max(s.PasswordMinLength, 4), 16)))
		}
		switch s.PasswordComplexity {
		case "numeric":
			lock = append(lock, intOp(deviceLock+AlphanumericDevicePasswordRequired, 1))
		case "alphanumeric":
			lock = append(lock, intOp(deviceLock+AlphanumericDevicePasswordRequired, 0))
		case "complex":
			// Alphanumeric with 3 of: digits, lower case, upper case,
			// special characters.
			lock = append(lock, intOp(deviceLock+AlphanumericDevicePasswordRequired, 0),
				intOp(deviceLock+MinDevicePasswordComplexCharacters, 3))
		default:
			lock = append(lock, intOp(deviceLock+AlphanumericDevicePasswordRequired, 2))
		}
		if s.PasswordMaxAgeDays > 0 {
			lock = append(lock, intOp(deviceLock+DevicePasswordExpiration, s.PasswordMaxAgeDays))
		}
		if s.PasswordHistory > 0 {
			lock = append(lock, intOp(deviceLock+DevicePasswordHistory, s.PasswordHistory))
		}
		if s.MaxFailedAttempts > 0 {
			lock = append(lock, intOp(deviceLock+MaxDevicePasswordFailedAttempts, s.MaxFailedAttempts))
		}
	}
	if s.ScreenLockTimeoutSeconds > 0 {
		lock = append(lock, intOp(deviceLock+MaxInactivityTimeDeviceLock, min((s.ScreenLockTimeoutSeconds+59)/60, 999)))
	}
	if s.EncryptionRequired {
		other = append(other, intOp(NodeRequireEncryption, 1))
	}
	if s.CameraDisabled {
		other = append(other, intOp(policyConfig+"Camera/AllowCamera", 0))
	}
	if s.ScreenCaptureDisabled {
		other = append(other, intOp(policyConfig+"Experience/AllowScreenCapture", 0))
	}
	if s.BluetoothDisabled {
		other = append(other, intOp(policyConfig+"Connectivity/AllowBluetooth", 0))
	}
	if s.USBStorageDisabled {
		other = append(other, intOp(policyConfig+"System/AllowStorageCard", 0))
	}
	return lock, other
}

// decodePayload decodes an item's payload into v.
func decodePayload(payload map[string]any, v any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// renderConfig renders the device's effective configuration. Items
// Windows cannot apply are recorded failed without a device round trip;
// the compliance profile is evaluated by the Core and counts as applied.
func (h *Handler) renderConfig(ctx context.Context, d *device.Device, c *command.Command, next func() string, msgID int) ([]syncml.Command, []Pending, string, error) {
	eff, err := h.Config.Effective(ctx, d)
	if err != nil {
		return nil, nil, "", err
	}
	var cmds []syncml.Command
	var pend []Pending
	local := func(it policy.Item, fail string) {
		pend = append(pend, Pending{Op: OpConfig, Command: c.ID, Item: it.ID, Revision: it.Revision, Version: eff.Version, Fail: fail})
	}
	addCmds := func(it policy.Item, cs []syncml.Command, tolerate map[string][]string) {
		ps := number(cs, next, msgID, func(sc *syncml.Command) Pending {
			p := Pending{Op: OpConfig, Command: c.ID, Item: it.ID, Revision: it.Revision, Version: eff.Version}
			if len(sc.Items) > 0 {
				p.LocURI, p.Tolerate = sc.Items[0].Target, tolerate[sc.Items[0].Target]
			} else {
				p.LocURI = sc.Name
			}
			return p
		})
		cmds = append(cmds, cs...)
		pend = append(pend, ps...)
	}
	for _, it := range eff.Items {
		switch it.Kind {
		case policy.ITPolicy:
			var s policy.ITPolicySettings
			if err := decodePayload(it.Payload, &s); err != nil {
				local(it, "IT policy settings unreadable")
				continue
			}
			lock, other := ITPolicyOps(s)
			var cs []syncml.Command
			atomic := syncml.Command{Name: syncml.CmdAtomic}
			for _, o := range lock {
				atomic.Commands = append(atomic.Commands, o.command())
			}
			cs = append(cs, atomic)
			for _, o := range other {
				cs = append(cs, o.command())
			}
			addCmds(it, cs, nil)
		case policy.WiFi:
			ops, fail := wifiOps(it)
			if fail != "" {
				local(it, fail)
				continue
			}
			cs, tol := opsCommands(ops)
			addCmds(it, cs, tol)
		case policy.VPN:
			ops, fail := vpnOps(it)
			if fail != "" {
				local(it, fail)
				continue
			}
			cs, tol := opsCommands(ops)
			addCmds(it, cs, tol)
		case policy.Certificate:
			ops, fail := certificateOps(it, d)
			if fail != "" {
				local(it, fail)
				continue
			}
			cs, tol := opsCommands(ops)
			addCmds(it, cs, tol)
		case policy.Compliance:
			local(it, "") // evaluated by the Core from the device's reports
		default:
			local(it, fmt.Sprintf("%s %q: %s profiles are not supported on Windows", it.Kind, it.Name, it.Kind))
		}
	}
	if len(eff.Items) == 0 {
		// An empty configuration: nothing to send, the device runs it.
		pend = append(pend, Pending{Op: OpConfig, Command: c.ID, Version: eff.Version})
	}
	return cmds, pend, "", nil
}

func opsCommands(ops []op) ([]syncml.Command, map[string][]string) {
	tol := map[string][]string{}
	var cs []syncml.Command
	for _, o := range ops {
		cs = append(cs, o.command())
		if len(o.tolerate) > 0 {
			tol[o.uri] = o.tolerate
		}
	}
	return cs, tol
}

// segment escapes a name for use as one LocURI segment.
func segment(s string) string { return url.PathEscape(s) }

// xmlText escapes s for an XML document.
func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

type wifiSettings struct {
	SSID       string `json:"ssid"`
	Security   string `json:"security"`
	Passphrase string `json:"passphrase"`
	Hidden     bool   `json:"hidden"`
	AutoJoin   bool   `json:"auto_join"`
}

// WLANProfile returns the WLAN profile XML of a Wi-Fi network (the schema
// of https://learn.microsoft.com/en-us/windows/win32/nativewifi/wlan-profileschema-elements,
// which wifi-csp's WlanXml takes).
func WLANProfile(s wifiSettings) (string, error) {
	auth, enc := "", ""
	switch s.Security {
	case "none":
		auth, enc = "open", "none"
	case "wpa2_personal":
		auth, enc = "WPA2PSK", "AES"
	case "wpa3_personal":
		auth, enc = "WPA3SAE", "AES"
	default:
		return "", fmt.Errorf("%s networks are not supported on Windows yet", s.Security)
	}
	mode := "manual"
	if s.AutoJoin {
		mode = "auto"
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><WLANProfile xmlns="http://www.microsoft.com/networking/WLAN/profile/v1">`)
	b.WriteString("<name>" + xmlText(s.SSID) + "</name><SSIDConfig><SSID><name>" + xmlText(s.SSID) + "</name></SSID>")
	b.WriteString("<nonBroadcast>" + strconv.FormatBool(s.Hidden) + "</nonBroadcast></SSIDConfig>")
	b.WriteString("<connectionType>ESS</connectionType><connectionMode>" + mode + "</connectionMode>")
	b.WriteString("<MSM><security><authEncryption><authentication>" + auth + "</authentication><encryption>" + enc +
		"</encryption><useOneX>false</useOneX></authEncryption>")
	if s.Passphrase != "" {
		keyType := "passPhrase"
		if len(s.Passphrase) == 64 {
			keyType = "networkKey"
		}
		b.WriteString("<sharedKey><keyType>" + keyType + "</keyType><protected>false</protected><keyMaterial>" +
			xmlText(s.Passphrase) + "</keyMaterial></sharedKey>")
	}
	b.WriteString("</security></MSM></WLANProfile>")
	return b.String(), nil
}

// wifiOps: wifi-csp ./Vendor/MSFT/WiFi/Profile/<SSID>/WlanXml. The profile
// is deleted first (404: there was none) and added, since Add fails with
// 418 on an existing profile and Replace with 404 on a missing one.
func wifiOps(it policy.Item) ([]op, string) {
	var s wifiSettings
	if err := decodePayload(it.Payload, &s); err != nil {
		return nil, "Wi-Fi settings unreadable"
	}
	doc, err := WLANProfile(s)
	if err != nil {
		return nil, fmt.Sprintf("Wi-Fi %q: %v", it.Name, err)
	}
	node := "./Vendor/MSFT/WiFi/Profile/" + segment(s.SSID)
	return []op{
		{verb: syncml.CmdDelete, uri: node, tolerate: []string{syncml.StatusNotFound}},
		{verb: syncml.CmdAdd, uri: node + "/WlanXml", format: "chr", data: doc},
	}, ""
}

type vpnSettings struct {
	Type         string `json:"type"`
	Server       string `json:"server"`
	Auth         string `json:"auth"`
	SharedSecret string `json:"shared_secret"`
	OnDemand     bool   `json:"on_demand"`
}

// vpnOps: vpnv2-csp ./Vendor/MSFT/VPNv2/<ProfileName>/ProfileXML with a
// native profile (IKEv2, L2TP with a pre-shared key, SSTP).
func vpnOps(it policy.Item) ([]op, string) {
	var s vpnSettings
	if err := decodePayload(it.Payload, &s); err != nil {
		return nil, "VPN settings unreadable"
	}
	proto := map[string]string{"ikev2": "IKEv2", "ipsec": "L2tp", "ssl": "Sstp"}[s.Type]
	if proto == "" {
		return nil, fmt.Sprintf("VPN %q: %s VPNs are not supported on Windows", it.Name, s.Type)
	}
	method := "Mschapv2"
	if s.Auth == "certificate" {
		method = "Eap" // with the certificate from the certificate profile
	}
	var b strings.Builder
	b.WriteString("<VPNProfile><NativeProfile><Servers>" + xmlText(s.Server) + "</Servers><NativeProtocolType>" + proto +
		"</NativeProtocolType><Authentication><UserMethod>" + method + "</UserMethod></Authentication>")
	if s.Type == "ipsec" && s.SharedSecret != "" {
		b.WriteString("<L2tpPsk>" + xmlText(s.SharedSecret) + "</L2tpPsk>")
	}
	b.WriteString("<RoutingPolicyType>SplitTunnel</RoutingPolicyType></NativeProfile>")
	if s.OnDemand {
		b.WriteString("<AlwaysOn>true</AlwaysOn>")
	}
	b.WriteString("</VPNProfile>")
	node := "./Vendor/MSFT/VPNv2/" + segment(it.Name)
	return []op{
		{verb: syncml.CmdDelete, uri: node, tolerate: []string{syncml.StatusNotFound}},
		{verb: syncml.CmdAdd, uri: node + "/ProfileXML", format: "chr", data: b.String()},
	}, ""
}

type certSettings struct {
	Type    string `json:"type"`
	CAPEM   string `json:"ca_pem"`
	SCEPURL string `json:"scep_url"`
	Subject string `json:"subject"`
	KeySize int    `json:"key_size"`
	// Challenge is the SCEP challenge.
	Challenge string `json:"challenge"`
}

// certificateOps: a CA bundle goes to the trusted roots
// (rootcacertificates-csp, ./Device/Vendor/MSFT/RootCATrustedCertificates/Root/<SHA-1>/EncodedCertificate;
// 418 means that certificate is already there); SCEP goes to
// clientcertificateinstall-csp ./Vendor/MSFT/ClientCertificateInstall/SCEP/<id>/Install/…
// then an Exec of …/Install/Enroll.
func certificateOps(it policy.Item, d *device.Device) ([]op, string) {
	var s certSettings
	if err := decodePayload(it.Payload, &s); err != nil {
		return nil, "certificate settings unreadable"
	}
	switch s.Type {
	case "ca":
		var ops []op
		rest := []byte(s.CAPEM)
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				return nil, "a CA certificate does not parse"
			}
			sum := sha1.Sum(blk.Bytes) // the store's key is the SHA-1 thumbprint (rootcacertificates-csp)
			node := "./Device/Vendor/MSFT/RootCATrustedCertificates/Root/" + strings.ToUpper(hex.EncodeToString(sum[:])) + "/EncodedCertificate"
			ops = append(ops, op{verb: syncml.CmdAdd, uri: node, format: "b64", data: base64.StdEncoding.EncodeToString(blk.Bytes),
				tolerate: []string{syncml.StatusAlreadyExists}})
		}
		return ops, ""
	case "scep":
		subject := strings.ReplaceAll(s.Subject, "{device_id}", d.ID)
		if strings.ContainsAny(subject, "{}") {
			return nil, fmt.Sprintf("certificate %q: only the {device_id} placeholder is supported on Windows", it.Name)
		}
		keyLen := s.KeySize
		if keyLen == 0 {
			keyLen = 2048
		}
		base := "./Vendor/MSFT/ClientCertificateInstall/SCEP/" + segment(it.ID) + "/Install/"
		chr := func(leaf, v string) op { return op{verb: syncml.CmdAdd, uri: base + leaf, format: "chr", data: v} }
		return []op{
			{verb: syncml.CmdDelete, uri: "./Vendor/MSFT/ClientCertificateInstall/SCEP/" + segment(it.ID), tolerate: []string{syncml.StatusNotFound}},
			chr("ServerURL", s.SCEPURL),
			chr("Challenge", s.Challenge),
			chr("SubjectName", subject),
			chr("EKUMapping", "1.3.6.1.5.5.7.3.2"), // client authentication
			{verb: syncml.CmdAdd, uri: base + "KeyLength", format: "int", data: strconv.Itoa(keyLen)},
			{verb: syncml.CmdAdd, uri: base + "KeyUsage", format: "int", data: "160"}, // digital signature + key encipherment
			chr("HashAlgorithm", "SHA-2"),
			{verb: syncml.CmdExec, uri: base + "Enroll"},
		}, ""
	}
	return nil, fmt.Sprintf("certificate %q: %s certificates are not supported on Windows", it.Name, s.Type)
}
