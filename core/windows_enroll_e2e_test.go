package core_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/relay/relayd"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// winEnroll runs the Windows enrollment emulator against the Core.
func (e *env) winEnroll(email, password string, mod func(*wintest.EnrollConfig)) (*wintest.Enrolled, error) {
	e.t.Helper()
	cfg := wintest.EnrollConfig{BaseURL: e.m.URL(), Email: email, Password: password, HTTPClient: e.hc,
		DeviceID: "7BA748C8703B4D8D8C2A4E1A4D0E2A1D", HWDevID: "A5B0C8D6E1F2431A8E7B9C6D5E4F3A2B", DeviceName: "DESKTOP-ALICE"}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return wintest.Enroll(ctx, cfg)
}

func wantWinFault(t *testing.T, err error, subcode string) *mde.Fault {
	t.Helper()
	var f *mde.Fault
	if !errors.As(err, &f) || f.Subcode != subcode {
		t.Fatalf("err = %v, want a SOAP fault %s", err, subcode)
	}
	return f
}

// opensslVerify checks cert against ca with the real openssl.
func opensslVerify(t *testing.T, ca, cert *x509.Certificate) {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, certFile := write("ca.pem", ca), write("cert.pem", cert)
	out, err := exec.Command("openssl", "verify", "-purpose", "sslclient", "-CAfile", caFile, certFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

// soapPost posts a raw SOAP body to the Core.
func (e *env) soapPost(path string, body []byte) (int, []byte) {
	e.t.Helper()
	resp, err := e.hc.Post(e.m.URL()+path, mde.ContentType, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func soapFault(t *testing.T, b []byte) *mde.Fault {
	t.Helper()
	var env mde.RSTResponseEnvelope
	if err := xml.Unmarshal(b, &env); err != nil || env.Body.Fault == nil {
		t.Fatalf("not a SOAP fault: %s", b)
	}
	return env.Body.Fault
}

// TestWindowsEnrollment is issue 7's enrollment test on a real Core: the
// emulator enrolls over MS-MDE2 with an activation password; every bad
// input is refused with its MS-MDE2 fault.
func TestWindowsEnrollment(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			u, pw := e.mustUser("alice@example.com")

			t.Run("fail/wrong-activation-password", func(t *testing.T) {
				_, err := e.winEnroll(u.Email, "WRONG-PASS-WORD-XXXX", nil)
				wantWinFault(t, err, mde.SubcodeAuthentication)
				_, err2 := e.winEnroll("nobody@example.com", pw, nil)
				f1, f2 := wantWinFault(t, err, mde.SubcodeAuthentication), wantWinFault(t, err2, mde.SubcodeAuthentication)
				if f1.Reason != f2.Reason || f1.Detail.ErrorType != f2.Detail.ErrorType {
					t.Fatalf("unknown user %q, wrong password %q: the answers differ", f2.Reason, f1.Reason)
				}
				if got := e.user(u.ID).FailedActivations; got != 1 {
					t.Fatalf("failed activations %d, want 1", got)
				}
			})
			t.Run("fail/platform-not-allowed", func(t *testing.T) {
				// A user whose activation profile allows phones only is
				// refused at the policy step, with a password that stays
				// good.
				phones, phonesPw := e.mustUser("dave@example.com")
				var prof struct {
					ID string `json:"id"`
				}
				if st := e.api("POST", "/api/v1/activation-profiles", map[string]any{"name": "Phones only", "rank": 1, "max_devices": 2,
					"types": map[string]string{"android": "mdm_controls"}}, &prof); st != 201 {
					t.Fatalf("create profile: %d", st)
				}
				if st := e.api("PATCH", "/api/v1/users/"+phones.ID, map[string]string{"activation_profile_id": prof.ID}, nil); st != 200 {
					t.Fatalf("assign profile: %d", st)
				}
				_, err := e.winEnroll(phones.Email, phonesPw, nil)
				if f := wantWinFault(t, err, mde.SubcodeAuthorization); f.Detail.ErrorType != mde.TypeDeviceNotSupported {
					t.Fatalf("error type %q", f.Detail.ErrorType)
				}
			})
			t.Run("fail/csr-rsa-1024", func(t *testing.T) {
				_, err := e.winEnroll(u.Email, pw, func(c *wintest.EnrollConfig) { c.RSABits = 1024 })
				wantWinFault(t, err, mde.SubcodeCertRequest)
			})
			t.Run("fail/csr-garbage", func(t *testing.T) {
				_, err := e.winEnroll(u.Email, pw, func(c *wintest.EnrollConfig) { c.CSR = []byte("\x30\x03garbage") })
				wantWinFault(t, err, mde.SubcodeCertRequest)
			})
			t.Run("fail/xml-entity-expansion", func(t *testing.T) {
				bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol3;</s:Body></s:Envelope>`
				for _, p := range []string{mde.PathDiscovery, mde.PathPolicy, mde.PathEnroll} {
					st, b := e.soapPost(p, []byte(bomb))
					if f := soapFault(t, b); st != 500 || f.Subcode != mde.SubcodeMessageFormat {
						t.Fatalf("%s: %d %s", p, st, b)
					}
				}
			})
			t.Run("fail/xml-deep-nesting", func(t *testing.T) {
				deep := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>` + strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000) + `</s:Body></s:Envelope>`
				st, b := e.soapPost(mde.PathEnroll, []byte(deep))
				if f := soapFault(t, b); st != 500 || f.Subcode != mde.SubcodeMessageFormat {
					t.Fatalf("%d %s", st, b)
				}
			})
			t.Run("fail/oversized-body", func(t *testing.T) {
				st, b := e.soapPost(mde.PathEnroll, bytes.Repeat([]byte("<a>"), mde.MaxEnrollBody))
				if f := soapFault(t, b); st != 500 || f.Subcode != mde.SubcodeMessageFormat || !strings.Contains(f.Reason, "larger") {
					t.Fatalf("%d %s", st, b)
				}
			})
			t.Run("fail/wrong-soap-action", func(t *testing.T) {
				msg := wintest.GetPoliciesMessage("urn:uuid:1", e.m.URL(), wintest.UsernameSecurity(u.Email, pw))
				st, b := e.soapPost(mde.PathEnroll, msg)
				if f := soapFault(t, b); st != 500 || f.Subcode != mde.SubcodeMessageFormat {
					t.Fatalf("%d %s", st, b)
				}
			})

			var enrolled *wintest.Enrolled
			t.Run("ok/enrolled", func(t *testing.T) {
				var err error
				enrolled, err = e.winEnroll(u.Email, pw, nil)
				if err != nil {
					t.Fatalf("the password after every refusal above: %v", err)
				}
				if !enrolled.CA.Equal(e.m.CA.Cert) || enrolled.ManagementURL != e.m.Config.PublicURL+"/device/windows/mdm" || enrolled.ProviderID != "Custos" {
					t.Fatalf("enrolled: CA %v, ADDR %q, provider %q", enrolled.CA.Subject, enrolled.ManagementURL, enrolled.ProviderID)
				}
				opensslVerify(t, enrolled.CA, enrolled.Certificate)
				var found bool
				for _, d := range e.devices() {
					if d.ID == enrolled.DeviceID {
						found = d.UserID == u.ID && d.State == "enrolled" && d.CertSerial == pki.SerialHex(enrolled.Certificate.SerialNumber)
						if !found {
							t.Fatalf("device %+v", d)
						}
					}
				}
				if !found {
					t.Fatalf("device %s is not listed", enrolled.DeviceID)
				}
				var raw map[string]any
				e.api("GET", "/api/v1/devices/"+enrolled.DeviceID, nil, &raw)
				if raw["platform"] != "windows" || raw["hardware_id"] != "A5B0C8D6E1F2431A8E7B9C6D5E4F3A2B" || raw["name"] != "DESKTOP-ALICE" || raw["model"] != "Windows Pro" {
					t.Fatalf("device %v", raw)
				}
			})
			t.Run("ok/certificate-authenticates", func(t *testing.T) {
				// The certificate is the device's mTLS identity at the Core:
				// the generic device check-in accepts it.
				hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots,
					Certificates: []tls.Certificate{{Certificate: [][]byte{enrolled.Certificate.Raw}, PrivateKey: enrolled.Key}}}}}
				resp, err := hc.Post(e.m.URL()+"/device/v1/checkin", "application/json", strings.NewReader(`{"device_id":"`+enrolled.DeviceID+`"}`))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("a device request with the enrolled certificate: %d, want 200", resp.StatusCode)
				}
			})
			t.Run("fail/replayed-activation-password", func(t *testing.T) {
				_, err := e.winEnroll(u.Email, pw, func(c *wintest.EnrollConfig) { c.HWDevID = "another-pc" })
				wantWinFault(t, err, mde.SubcodeAuthentication)
			})
		})
	}
}

// TestWindowsFederatedEnrollment: the Federated policy, through our
// sign-in page and its token; the token is single use.
func TestWindowsFederatedEnrollment(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnvWith(t, backend, func(c *core.Config) { c.WindowsEnroll.AuthPolicy = mde.AuthFederated })
			u, pw := e.mustUser("bob@example.com")
			signIn := func(password string) (int, string) {
				resp, err := e.hc.PostForm(e.m.URL()+mde.PathAuth, url.Values{"appru": {"ms-app://s-1-15-2-1"}, "email": {u.Email}, "password": {password}})
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			wresult := regexp.MustCompile(`name="wresult" value="([^"]+)"`)
			if st, page := signIn("WRONG-PASS-WORD-XXXX"); st != http.StatusUnauthorized || wresult.MatchString(page) {
				t.Fatalf("wrong password: %d %s", st, page)
			}
			st, page := signIn(pw)
			m := wresult.FindStringSubmatch(page)
			if st != 200 || m == nil {
				t.Fatalf("sign-in: %d %s", st, page)
			}
			tok := strings.ReplaceAll(m[1], "&#43;", "+")
			en, err := e.winEnroll(u.Email, "", func(c *wintest.EnrollConfig) { c.FederatedToken = tok })
			if err != nil {
				t.Fatal(err)
			}
			if en.Discovery.AuthPolicy != mde.AuthFederated || en.Discovery.AuthenticationServiceURL != e.m.Config.PublicURL+mde.PathAuth {
				t.Fatalf("discovery %+v", en.Discovery)
			}
			t.Run("fail/federated-token-replayed", func(t *testing.T) {
				_, err := e.winEnroll(u.Email, "", func(c *wintest.EnrollConfig) { c.FederatedToken = tok; c.HWDevID = "second-pc" })
				wantWinFault(t, err, mde.SubcodeAuthentication)
			})
		})
	}
}

// TestWindowsDiscoveryThroughRelay: the relay is the discovery service
// (seed steps 3–4): it maps the email address to its Core and answers
// with that Core's enrollment URLs; the device then enrolls at the Core.
func TestWindowsDiscoveryThroughRelay(t *testing.T) {
	rm := relayd.NewMain(relayd.MainConfig{DataDir: t.TempDir(), LinkListen: "127.0.0.1:0", Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DiscoveryRate: -1})
	if err := rm.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Close() })
	e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
		_, dev, err := rm.Enroll(context.Background(), c.DataDir, true)
		if err != nil {
			t.Fatal(err)
		}
		c.Relay = core.RelayConfig{Addresses: []string{rm.LinkAddr()}, RootCAs: rm.CA.Pool(), License: dev}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.m.Relay.WaitLinked(ctx, 1); err != nil {
		t.Fatal(err)
	}
	u, pw := e.mustUser("carol@example.com")
	if err := e.m.Relay.SyncRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	roots := e.roots.Clone()
	roots.AppendCertsFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rm.CA.Cert.Raw}))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	relayURL := "https://" + rm.DeviceAddr()

	t.Run("fail/unknown-email-discovery-same-answer", func(t *testing.T) {
		_, err1 := wintest.Discover(ctx, hc, relayURL, "nobody@nowhere.example")
		_, err2 := wintest.Discover(ctx, hc, relayURL, "nobody@example.com")
		_, err3 := wintest.Discover(ctx, hc, relayURL, "not-an-address")
		var first *mde.Fault
		for _, err := range []error{err1, err2, err3} {
			f := wantWinFault(t, err, mde.SubcodeEnrollServer)
			if first == nil {
				first = f
			} else if f.Reason != first.Reason || f.Detail.ErrorType != first.Detail.ErrorType || f.Detail.Message != first.Detail.Message {
				t.Fatalf("answers differ: %+v / %+v", f, first)
			}
		}
	})
	t.Run("ok/redirected-and-enrolled", func(t *testing.T) {
		en, err := wintest.Enroll(ctx, wintest.EnrollConfig{BaseURL: relayURL, Email: u.Email, Password: pw, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		base := e.m.Config.PublicURL
		if en.Discovery.EnrollmentPolicyServiceURL != base+mde.PathPolicy || en.Discovery.EnrollmentServiceURL != base+mde.PathEnroll {
			t.Fatalf("the relay sent the device to %+v, want the Core at %s", en.Discovery, base)
		}
		if !en.CA.Equal(e.m.CA.Cert) {
			t.Fatal("enrolled with another CA")
		}
	})
	t.Run("fail/unlinked-server-same-answer", func(t *testing.T) {
		_, unknown := wintest.Discover(ctx, hc, relayURL, "nobody@nowhere.example")
		want := wantWinFault(t, unknown, mde.SubcodeEnrollServer)
		// The Core goes away: its registered user now gets the answer an
		// unknown address gets.
		e.m.Relay.Close()
		eventually(t, "the relay forgot the link", func() (bool, string) {
			_, err := wintest.Discover(ctx, hc, relayURL, u.Email)
			var f *mde.Fault
			return errors.As(err, &f) && f.Subcode == want.Subcode && f.Reason == want.Reason && f.Detail.ErrorType == want.Detail.ErrorType, ""
		})
	})
}

// TestWindowsWithDevicesViaRelayOnly: a Core whose devices may come only
// through the relay's tunnel serves no Windows route on its listener
// (Windows cannot use the tunnel), and its relay does not send Windows
// devices to it.
func TestWindowsWithDevicesViaRelayOnly(t *testing.T) {
	r := newRelayed(t, sqltest.Backends(t)[0], "", nil)
	e := r.e
	u, _ := e.mustUser("erin@example.com")
	if err := e.m.Relay.SyncRoutes(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mde.PathDiscovery, mde.PathPolicy, mde.PathEnroll} {
		resp, err := e.hc.Post(e.m.URL()+p, mde.ContentType, strings.NewReader("<x/>"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s on the Core's listener: %d, want 404", p, resp.StatusCode)
		}
	}
	_, err := wintest.Discover(context.Background(), http.DefaultClient, "http://"+r.rm.DeviceAddr(), u.Email)
	wantWinFault(t, err, mde.SubcodeEnrollServer)
}
