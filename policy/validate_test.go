package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/policy"
)

// caPEM returns a fresh self-signed CA certificate in PEM.
func caPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fieldsOf returns the sorted field keys of an invalid_policy error.
func fieldsOf(t testing.TB, err error) []string {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Code != policy.CodeInvalid {
		t.Fatalf("got %v, want an errs.Invalid %s error", err, policy.CodeInvalid)
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const certRef = "0190b4a4-6c4e-7d2a-9b1e-3c5d7e9f1a2b"

func TestValidate(t *testing.T) {
	ca := caPEM(t)
	caJSON, _ := json.Marshal(ca)
	tests := []struct {
		name      string
		kind      policy.Kind
		settings  string
		mutate    func(p *policy.Policy)
		wantField []string // nil: valid
	}{
		// Fields of every policy.
		{"fail/empty name", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Name = " " }, []string{"name"}},
		{"fail/long name", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Name = strings.Repeat("n", 129) }, []string{"name"}},
		{"fail/control character in name", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Name = "a\x00b" }, []string{"name"}},
		{"fail/long description", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Description = strings.Repeat("d", 2049) }, []string{"description"}},
		{"fail/rank zero", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Rank = 0 }, []string{"rank"}},
		{"fail/rank negative", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Rank = -1 }, []string{"rank"}},
		{"fail/rank too high", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Rank = 1_000_001 }, []string{"rank"}},
		{"fail/unknown platform", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Platforms = []string{"ios", "symbian"} }, []string{"platforms"}},
		{"fail/duplicate platform", policy.ITPolicy, `{}`, func(p *policy.Policy) { p.Platforms = []string{"ios", "ios"} }, []string{"platforms"}},
		{"fail/unknown kind", "telex", `{}`, nil, []string{"kind"}},
		{"fail/settings not an object", policy.ITPolicy, `[1]`, nil, []string{"settings"}},
		{"fail/settings null", policy.ITPolicy, `null`, nil, []string{"settings"}},
		{"fail/settings two objects", policy.ITPolicy, `{}{}`, nil, []string{"settings"}},
		{"fail/settings too large", policy.AppConfig, `{"app_id":"a","config":{"k":"` + strings.Repeat("x", policy.MaxSettings) + `"}}`, nil, []string{"settings"}},
		{"fail/several fields at once", policy.ITPolicy, `{"password_min_length":-1}`, func(p *policy.Policy) { p.Name, p.Rank = "", 0 }, []string{"name", "rank", "settings.password_min_length"}},

		// it_policy
		{"fail/it_policy unknown key", policy.ITPolicy, `{"pasword_required":true}`, nil, []string{"settings.pasword_required"}},
		{"fail/it_policy wrong type", policy.ITPolicy, `{"password_required":"yes"}`, nil, []string{"settings.password_required"}},
		{"fail/it_policy fraction", policy.ITPolicy, `{"password_required":true,"password_min_length":6.5}`, nil, []string{"settings.password_min_length"}},
		{"fail/it_policy negative length", policy.ITPolicy, `{"password_required":true,"password_min_length":-4}`, nil, []string{"settings.password_min_length"}},
		{"fail/it_policy length over 64", policy.ITPolicy, `{"password_required":true,"password_min_length":65}`, nil, []string{"settings.password_min_length"}},
		{"fail/it_policy complexity", policy.ITPolicy, `{"password_required":true,"password_complexity":"strong"}`, nil, []string{"settings.password_complexity"}},
		{"fail/it_policy wipe after 2", policy.ITPolicy, `{"password_required":true,"max_failed_attempts":2}`, nil, []string{"settings.max_failed_attempts"}},
		{"fail/it_policy rules without password", policy.ITPolicy, `{"password_min_length":6}`, nil, []string{"settings.password_required"}},
		{"fail/it_policy screen lock over a day", policy.ITPolicy, `{"screen_lock_timeout_seconds":86401}`, nil, []string{"settings.screen_lock_timeout_seconds"}},
		{"fail/it_policy os platform", policy.ITPolicy, `{"allowed_os_versions":{"palmos":{"min":"1"}}}`, nil, []string{"settings.allowed_os_versions.palmos"}},
		{"fail/it_policy os version", policy.ITPolicy, `{"allowed_os_versions":{"ios":{"min":"17.x"}}}`, nil, []string{"settings.allowed_os_versions.ios.min"}},
		{"fail/it_policy os min over max", policy.ITPolicy, `{"allowed_os_versions":{"ios":{"min":"17.10","max":"17.9"}}}`, nil, []string{"settings.allowed_os_versions.ios.max"}},
		{"fail/it_policy os unknown key", policy.ITPolicy, `{"allowed_os_versions":{"ios":{"minimum":"17"}}}`, nil, []string{"settings.allowed_os_versions.ios.minimum"}},
		{"fail/it_policy os empty range", policy.ITPolicy, `{"allowed_os_versions":{"ios":{}}}`, nil, []string{"settings.allowed_os_versions.ios"}},
		{"ok/it_policy empty", policy.ITPolicy, `{}`, nil, nil},
		{"ok/it_policy full", policy.ITPolicy, `{"password_required":true,"password_min_length":8,"password_complexity":"complex",
			"password_max_age_days":90,"password_history":5,"max_failed_attempts":10,"screen_lock_timeout_seconds":300,
			"encryption_required":true,"camera_disabled":true,"screen_capture_disabled":true,"bluetooth_disabled":false,
			"usb_storage_disabled":true,"allowed_os_versions":{"ios":{"min":"17.4","max":"18"},"windows":{"min":"10.0.19045"}}}`, nil, nil},

		// wifi
		{"fail/wifi missing ssid", policy.WiFi, `{"security":"none"}`, nil, []string{"settings.ssid"}},
		{"fail/wifi ssid over 32 bytes", policy.WiFi, `{"ssid":"` + strings.Repeat("s", 33) + `","security":"none"}`, nil, []string{"settings.ssid"}},
		{"fail/wifi security", policy.WiFi, `{"ssid":"x","security":"wep"}`, nil, []string{"settings.security"}},
		{"fail/wifi short passphrase", policy.WiFi, `{"ssid":"x","security":"wpa2_personal","passphrase":"short"}`, nil, []string{"settings.passphrase"}},
		{"fail/wifi passphrase on open network", policy.WiFi, `{"ssid":"x","security":"none","passphrase":"longenough"}`, nil, []string{"settings.passphrase"}},
		{"fail/wifi redaction marker as passphrase", policy.WiFi, `{"ssid":"x","security":"wpa2_personal","passphrase":"***"}`, nil, []string{"settings.passphrase"}},
		{"fail/wifi enterprise without eap", policy.WiFi, `{"ssid":"x","security":"wpa2_enterprise"}`, nil, []string{"settings.eap"}},
		{"fail/wifi eap type", policy.WiFi, `{"ssid":"x","security":"wpa3_enterprise","eap":{"eap_type":"md5"}}`, nil, []string{"settings.eap.eap_type"}},
		{"fail/wifi eap tls without certificate", policy.WiFi, `{"ssid":"x","security":"wpa2_enterprise","eap":{"eap_type":"tls"}}`, nil, []string{"settings.eap.certificate_profile_id"}},
		{"fail/wifi eap unknown key", policy.WiFi, `{"ssid":"x","security":"wpa2_enterprise","eap":{"eap_type":"peap","outer":"x"}}`, nil, []string{"settings.eap.outer"}},
		{"fail/wifi eap placeholder", policy.WiFi, `{"ssid":"x","security":"wpa2_enterprise","eap":{"eap_type":"peap","identity_template":"{user}"}}`, nil, []string{"settings.eap.identity_template"}},
		{"ok/wifi personal", policy.WiFi, `{"ssid":"Office","security":"wpa2_personal","passphrase":"correct horse","auto_join":true}`, nil, nil},
		{"ok/wifi hex key", policy.WiFi, `{"ssid":"Office","security":"wpa3_personal","passphrase":"` + strings.Repeat("ab", 32) + `"}`, nil, nil},
		{"ok/wifi enterprise", policy.WiFi, `{"ssid":"Corp","security":"wpa2_enterprise","hidden":true,"eap":{"eap_type":"tls","certificate_profile_id":"` + certRef + `","identity_template":"{username}","trusted_server_names":["radius.example.com"]}}`, nil, nil},

		// vpn
		{"fail/vpn type", policy.VPN, `{"type":"pptp","server":"vpn.example.com","auth":"password"}`, nil, []string{"settings.type"}},
		{"fail/vpn server", policy.VPN, `{"type":"ssl","server":"https://vpn","auth":"password"}`, nil, []string{"settings.server"}},
		{"fail/vpn ikev2 without remote id", policy.VPN, `{"type":"ikev2","server":"vpn.example.com","auth":"password"}`, nil, []string{"settings.remote_id"}},
		{"fail/vpn certificate auth without profile", policy.VPN, `{"type":"ssl","server":"vpn.example.com","auth":"certificate"}`, nil, []string{"settings.certificate_profile_id"}},
		{"fail/vpn per_app without apps", policy.VPN, `{"type":"per_app","server":"vpn.example.com","auth":"password"}`, nil, []string{"settings.apps"}},
		{"fail/vpn wireguard key", policy.VPN, `{"type":"wireguard","server":"10.0.0.1","server_public_key":"abc"}`, nil, []string{"settings.server_public_key"}},
		{"fail/vpn port", policy.VPN, `{"type":"ssl","server":"vpn.example.com","auth":"password","port":70000}`, nil, []string{"settings.port"}},
		{"ok/vpn ikev2", policy.VPN, `{"type":"ikev2","server":"vpn.example.com","remote_id":"vpn.example.com","auth":"certificate","certificate_profile_id":"` + certRef + `","on_demand":true}`, nil, nil},
		{"ok/vpn ipsec with secret", policy.VPN, `{"type":"ipsec","server":"192.0.2.1","auth":"password","shared_secret":"s3cret"}`, nil, nil},
		{"ok/vpn wireguard", policy.VPN, `{"type":"wireguard","server":"vpn.example.com","port":51820,"server_public_key":"` + strings.Repeat("A", 43) + `="}`, nil, nil},
		{"ok/vpn per app", policy.VPN, `{"type":"per_app","server":"vpn.example.com","auth":"password","apps":["com.example.crm"]}`, nil, nil},

		// email
		{"fail/email sync days", policy.Email, `{"host":"mail.example.com","username_template":"{username}","email_template":"{email}","sync_days":5}`, nil, []string{"settings.sync_days"}},
		{"fail/email template", policy.Email, `{"host":"mail.example.com","username_template":"{login}","email_template":"{email}","sync_days":7}`, nil, []string{"settings.username_template"}},
		{"fail/email missing host", policy.Email, `{"username_template":"{username}","email_template":"{email}","sync_days":7}`, nil, []string{"settings.host"}},
		{"ok/email", policy.Email, `{"host":"mail.example.com","use_ssl":true,"domain":"CORP","username_template":"CORP\\{username}","email_template":"{email}","sync_days":14,"allow_move":false}`, nil, nil},

		// connectivity
		{"fail/connectivity proxy", policy.Connectivity, `{"proxy":"proxy.example.com"}`, nil, []string{"settings.proxy"}},
		{"fail/connectivity domain", policy.Connectivity, `{"allowed_domains":["ok.example.com","bad domain"]}`, nil, []string{"settings.allowed_domains.1"}},
		{"fail/connectivity all traffic and domains", policy.Connectivity, `{"route_all_traffic":true,"allowed_domains":["example.com"]}`, nil, []string{"settings.allowed_domains"}},
		{"ok/connectivity", policy.Connectivity, `{"tunnel":true,"allowed_domains":["*.corp.example.com","intranet"],"proxy":"proxy.example.com:3128"}`, nil, nil},

		// certificate
		{"fail/certificate type", policy.Certificate, `{"type":"pfx"}`, nil, []string{"settings.type"}},
		{"fail/certificate bad pem", policy.Certificate, `{"type":"ca","ca_pem":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`, nil, []string{"settings.ca_pem"}},
		{"fail/certificate pem with garbage", policy.Certificate, `{"type":"ca","ca_pem":` + string(caJSON[:len(caJSON)-1]) + `junk"}`, nil, []string{"settings.ca_pem"}},
		{"fail/certificate scep url", policy.Certificate, `{"type":"scep","scep_url":"ftp://ca.example.com","subject":"CN={username}"}`, nil, []string{"settings.scep_url"}},
		{"fail/certificate key size", policy.Certificate, `{"type":"scep","scep_url":"https://ca.example.com/scep","subject":"CN={username}","key_size":1024}`, nil, []string{"settings.key_size"}},
		{"fail/certificate scep field on ca", policy.Certificate, `{"type":"ca","ca_pem":` + string(caJSON) + `,"key_size":2048}`, nil, []string{"settings.key_size"}},
		{"ok/certificate ca", policy.Certificate, `{"type":"ca","ca_pem":` + string(caJSON) + `}`, nil, nil},
		{"ok/certificate scep", policy.Certificate, `{"type":"scep","scep_url":"https://ca.example.com/scep","subject":"CN={username},O=Example","key_size":2048,"challenge":"c"}`, nil, nil},
		{"ok/certificate user pkcs12", policy.Certificate, `{"type":"user_pkcs12"}`, nil, nil},

		// app_config
		{"fail/app_config nested value", policy.AppConfig, `{"app_id":"com.example.app","config":{"server":{"host":"x"}}}`, nil, []string{"settings.config.server"}},
		{"fail/app_config null value", policy.AppConfig, `{"app_id":"com.example.app","config":{"server":null}}`, nil, []string{"settings.config.server"}},
		{"fail/app_config app id", policy.AppConfig, `{"app_id":"../etc","config":{}}`, nil, []string{"settings.app_id"}},
		{"ok/app_config", policy.AppConfig, `{"app_id":"com.example.app","config":{"server":"https://x","port":443,"debug":false}}`, nil, nil},

		// software_release
		{"fail/software_release defer", policy.SoftwareRelease, `{"defer_days":91}`, nil, []string{"settings.defer_days"}},
		{"fail/software_release negative defer", policy.SoftwareRelease, `{"defer_days":-1}`, nil, []string{"settings.defer_days"}},
		{"fail/software_release window", policy.SoftwareRelease, `{"install_window":{"start":"24:00","end":"02:00"}}`, nil, []string{"settings.install_window.start"}},
		{"fail/software_release empty window", policy.SoftwareRelease, `{"install_window":{"start":"02:00","end":"02:00"}}`, nil, []string{"settings.install_window.end"}},
		{"fail/software_release version", policy.SoftwareRelease, `{"min_os_version":{"android":"fourteen"}}`, nil, []string{"settings.min_os_version.android"}},
		{"fail/software_release version type", policy.SoftwareRelease, `{"min_os_version":{"android":14}}`, nil, []string{"settings.min_os_version"}},
		{"ok/software_release", policy.SoftwareRelease, `{"min_os_version":{"android":"14","macos":"14.4.1"},"defer_days":7,"install_window":{"start":"22:00","end":"04:00"}}`, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &policy.Policy{Name: "p", Kind: tc.kind, Rank: 1, Settings: json.RawMessage(tc.settings)}
			if tc.mutate != nil {
				tc.mutate(p)
			}
			err := policy.Validate(p)
			if tc.wantField == nil {
				if err != nil {
					t.Fatalf("Validate: %v (%v)", err, err.(*errs.Error).Fields)
				}
				return
			}
			got := fieldsOf(t, err)
			if strings.Join(got, ",") != strings.Join(tc.wantField, ",") {
				t.Fatalf("Validate fields = %v, want %v (%v)", got, tc.wantField, err.(*errs.Error).Fields)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	single := map[policy.Kind]bool{policy.ITPolicy: true, policy.Compliance: true, policy.SoftwareRelease: true, policy.Connectivity: true}
	kinds := policy.Kinds()
	if len(kinds) != 9 || kinds[0] != policy.Certificate {
		t.Fatalf("Kinds() = %v; want 9 kinds, certificates first", kinds)
	}
	for _, k := range kinds {
		if k.Single() != single[k] || !k.Valid() {
			t.Errorf("%s: Single() = %v, Valid() = %v", k, k.Single(), k.Valid())
		}
	}
	if policy.Kind("x").Valid() || policy.Kind("x").Single() {
		t.Error(`Kind("x") is valid or single`)
	}
}
