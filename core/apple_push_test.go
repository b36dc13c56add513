package core_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micromdm/nanodep/godep"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/apple/dep/deptest"
	appleenroll "github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/relay/relayd"
)

const (
	mdmTopic      = "com.apple.mgmt.External.0b7c1a2e-3f4d-4c5b-9a8e-aabbccddeeff"
	otherMDMTopic = "com.apple.mgmt.External.5d1e2f3a-4b5c-4d6e-8f70-112233445566"
	mdmToken      = "5f0c13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"
)

// pemOf encodes a certificate and its key as an administrator uploads them.
func pemOf(t *testing.T, c tls.Certificate) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// rawAPI is e.api with the raw answer.
func (e *env) rawAPI(method, path string, body []byte) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.m.URL()+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// mdmDevice creates an iPhone for a new user and registers its MDM push
// token (as TokenUpdate would).
func mdmDevice(t *testing.T, e *env, email, topic, magic string) string {
	t.Helper()
	var u userOut
	if st := e.api("POST", "/api/v1/users", map[string]string{"email": email}, &u); st != 201 {
		t.Fatalf("create user: %d", st)
	}
	ctx := context.Background()
	d, err := e.m.Activation.ActivateUser(ctx, activation.UserActivation{UserID: u.ID, Platform: activation.IOS,
		HardwareID: "udid-" + email, Model: "iPhone16,1", Name: "iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	// Enrolled as SCEP would enroll it (platform/apple/enroll's store):
	// only enrolled devices hold push tokens.
	now := time.Now()
	hash := []byte("challenge-of-" + email)
	if err := e.m.DB.CreateChallenge(ctx, &appleenroll.Challenge{Hash: hash, DeviceID: d.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DB.RedeemChallenge(ctx, hash, activation.IssuedCert{Serial: fmt.Sprintf("%x", now.UnixNano()), DeviceID: d.ID,
		NotBefore: now, NotAfter: now.Add(time.Hour), DER: []byte{0x30}}, now); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DB.SetPushToken(ctx, device.PushToken{DeviceID: d.ID, Provider: push.APNs, Token: mdmToken, Topic: topic,
		PushMagic: magic, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// queue queues a configuration sync for the device: its commit sends the
// push hint.
func queue(t *testing.T, e *env, deviceID string) {
	t.Helper()
	if _, err := e.m.Commands.Send(context.Background(), []string{deviceID}, command.NewCommand{Type: command.SyncConfig, CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestApplePushCertificate: the administrator uploads the MDM push
// certificate through the API; reads never show the key; a command for an
// MDM device is pushed to APNs with that certificate (push type mdm, the
// certificate's topic, {"mdm": PushMagic}); a topic change needs
// confirmation; uploads are audited.
func TestApplePushCertificate(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	e := newEnvWith(t, "sqlite", func(c *core.Config) {
		c.Push.APNsURL = fake.URL
		c.Apple.APNsRootCAs = fake.RootCAs()
	})
	if st, raw := e.rawAPI("GET", "/api/v1/apple/push-certificate", nil); st != 404 || !strings.Contains(string(raw), "push_certificate_not_found") {
		t.Fatalf("before upload: %d %s", st, raw)
	}
	certPEM, keyPEM := pemOf(t, fake.ClientCertificate(t, mdmTopic))
	keyBody := strings.Split(strings.TrimSpace(keyPEM), "\n")[1]
	upload := func(cert, key string, replace bool) (int, []byte) {
		b, _ := jsonBody(map[string]any{"certificate": cert, "private_key": key, "replace_topic": replace})
		return e.rawAPI("PUT", "/api/v1/apple/push-certificate", b)
	}
	st, raw := upload(certPEM, keyPEM, false)
	if st != 200 || !strings.Contains(string(raw), mdmTopic) {
		t.Fatalf("upload: %d %s", st, raw)
	}
	for _, path := range []string{"/api/v1/apple/push-certificate", "/api/v1/audit"} {
		st, raw := e.rawAPI("GET", path, nil)
		if st != 200 || strings.Contains(string(raw), keyBody) || strings.Contains(string(raw), "PRIVATE KEY") {
			t.Fatalf("GET %s shows the key: %d %s", path, st, raw)
		}
	}
	if strings.Contains(string(raw), keyBody) {
		t.Fatal("the upload's answer shows the key")
	}
	if _, raw := e.rawAPI("GET", "/api/v1/audit?action=apple.push_certificate.upload", nil); !strings.Contains(string(raw), mdmTopic) {
		t.Fatalf("no audit entry of the upload: %s", raw)
	}

	t.Run("fail/topic-change-without-confirmation", func(t *testing.T) {
		c2, k2 := pemOf(t, fake.ClientCertificate(t, otherMDMTopic))
		st, raw := upload(c2, k2, false)
		if st != 409 || !strings.Contains(string(raw), "push_topic_change") || !strings.Contains(string(raw), "stop answering pushes") {
			t.Fatalf("topic change: %d %s", st, raw)
		}
	})
	t.Run("fail/key-does-not-match-certificate", func(t *testing.T) {
		_, otherKey := pemOf(t, fake.ClientCertificate(t, mdmTopic))
		if st, raw := upload(certPEM, otherKey, false); st != 400 || !strings.Contains(string(raw), "push_key_mismatch") {
			t.Fatalf("mismatch: %d %s", st, raw)
		}
	})

	t.Run("fail/help-desk-without-settings-permissions", func(t *testing.T) {
		var created struct {
			Token struct {
				Token string `json:"token"`
			} `json:"token"`
		}
		if st := e.api("POST", "/api/v1/admins", map[string]any{"username": "helpdesk", "role": "help_desk"}, &created); st != 201 || created.Token.Token == "" {
			t.Fatalf("create help desk admin: %d", st)
		}
		helpdesk := *e
		helpdesk.token = created.Token.Token
		for _, r := range []struct{ method, path string }{{"GET", "/api/v1/apple/push-certificate"}, {"PUT", "/api/v1/apple/push-certificate"},
			{"GET", "/api/v1/apple/dep"}, {"PUT", "/api/v1/apple/dep/token"}, {"POST", "/api/v1/apple/dep/sync"}} {
			if st, raw := helpdesk.rawAPI(r.method, r.path, []byte(`{}`)); st != 403 || !strings.Contains(string(raw), "permission_denied") {
				t.Errorf("%s %s as help desk: %d %s", r.method, r.path, st, raw)
			}
		}
	})

	id := mdmDevice(t, e, "ada@example.com", mdmTopic, "magic-ada")
	queue(t, e, id)
	waitFor(t, "the MDM push", func() bool { return len(fake.Delivered()) == 1 })
	n := fake.Delivered()[0]
	if n.PushType != "mdm" || n.Topic != mdmTopic || string(n.Payload) != `{"mdm":"magic-ada"}` || n.Token != mdmToken {
		t.Fatalf("push %+v %s", n, n.Payload)
	}
	if topic, err := e.m.ApplePush.Topic(context.Background()); err != nil || topic != mdmTopic {
		t.Fatalf("Topic: %q %v", topic, err)
	}
}

func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }

// TestMDMPushThroughRelayWithoutCertificate: a Core without its own push
// certificate hands MDM pushes to its relay, with the topic and PushMagic
// the relay's APNs client needs.
func TestMDMPushThroughRelayWithoutCertificate(t *testing.T) {
	var mu sync.Mutex
	var got []push.Target
	rm := relayd.NewMain(relayd.MainConfig{DataDir: t.TempDir(), LinkListen: "127.0.0.1:0", Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DiscoveryRate: -1,
		PushSender: push.SenderFunc(func(ctx context.Context, tg push.Target) error {
			mu.Lock()
			got = append(got, tg)
			mu.Unlock()
			return nil
		})})
	if err := rm.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Close() })
	e := newEnvWith(t, "sqlite", func(c *core.Config) {
		_, lic, err := rm.Enroll(context.Background(), c.DataDir, true)
		if err != nil {
			t.Fatal(err)
		}
		c.Relay = core.RelayConfig{Addresses: []string{rm.LinkAddr()}, RootCAs: rm.CA.Pool(), License: lic}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.m.Relay.WaitLinked(ctx, 1); err != nil {
		t.Fatal(err)
	}
	id := mdmDevice(t, e, "bob@example.com", mdmTopic, "magic-bob")
	queue(t, e, id)
	waitFor(t, "the relayed push", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if want := (push.Target{Provider: push.APNs, Token: mdmToken, Topic: mdmTopic, PushMagic: "magic-bob"}); got[0] != want {
		t.Fatalf("the relay got %+v, want %+v", got[0], want)
	}
}

// uploadFiles posts a multipart form of files and fields with the
// session's CSRF token, as the browser's form does.
func (w *webClient) uploadFiles(path string, files map[string]string, fields map[string]string) (int, string) {
	w.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf_token", w.csrf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for k, v := range files {
		fw, _ := mw.CreateFormFile(k, k+".pem")
		io.WriteString(fw, v)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", w.e.m.URL()+path, &body)
	req.Header.Set("Origin", w.e.m.URL())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(b); m != nil && len(m[1]) > 0 {
		w.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

// TestAppleConsoleSettings: the Settings page uploads the push
// certificate, shows its topic and expiry and warns that it expires soon;
// the upload is audited and the page never shows the key.
func TestAppleConsoleSettings(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	apple := deptest.NewServer(t)
	e := newEnvWith(t, "sqlite", func(c *core.Config) {
		c.Push.APNsURL = fake.URL
		c.Apple.APNsRootCAs = fake.RootCAs()
		c.Apple.DEPURL, c.Apple.DEPSyncInterval = apple.URL, -1
	})
	w := caSignIn(t, e, "admin", mustRead(t, e.dir, core.AdminPasswordFile))
	st, body, _ := w.do("GET", "/console/settings", nil)
	if st != 200 || !strings.Contains(body, `id="apple-push-none"`) || !strings.Contains(body, `id="apple-dep-none"`) {
		t.Fatalf("settings before upload: %d\n%s", st, body)
	}
	certPEM, keyPEM := pemOf(t, fake.ClientCertificate(t, mdmTopic))
	t.Run("fail/key-does-not-match-certificate", func(t *testing.T) {
		_, otherKey := pemOf(t, fake.ClientCertificate(t, mdmTopic))
		st, body := w.uploadFiles("/console/settings/apple/push-certificate", map[string]string{"certificate": certPEM, "private_key": otherKey}, nil)
		if st != 400 || !strings.Contains(body, "does not belong to the certificate") {
			t.Fatalf("mismatch: %d\n%s", st, body)
		}
	})
	st, body = w.uploadFiles("/console/settings/apple/push-certificate", map[string]string{"certificate": certPEM, "private_key": keyPEM}, nil)
	if st != 200 || !strings.Contains(body, mdmTopic) || !strings.Contains(body, `id="apple-push-warning"`) {
		// apnstest's certificates last a day: the page warns.
		t.Fatalf("upload: %d\n%s", st, body)
	}
	if strings.Contains(body, strings.Split(strings.TrimSpace(keyPEM), "\n")[1]) {
		t.Fatal("the page shows the key")
	}
	if a := e.caAudit("apple.push_certificate.upload"); len(a.Items) != 2 || a.Items[0].Outcome != "ok" || a.Items[1].Outcome != "failed" {
		t.Fatalf("audit: %+v", a.Items)
	}
	st, body, h := w.do("GET", "/console/settings/apple/dep/public-key", nil)
	if st != 200 || !strings.Contains(body, "BEGIN CERTIFICATE") || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Fatalf("public key download: %d %v", st, h)
	}

	// Automated enrollment: the token, a sync, a device assigned to a user.
	t.Run("fail/garbage-p7m-token", func(t *testing.T) {
		if st, body := w.uploadFiles("/console/settings/apple/dep/token", map[string]string{"token": "garbage"}, nil); st != 400 || !strings.Contains(body, "not an ADE server token") {
			t.Fatalf("garbage token: %d\n%s", st, body)
		}
	})
	if st, body := w.uploadFiles("/console/settings/apple/dep/token", map[string]string{"token": string(deptest.TokenP7M(t, []byte(body), apple.Token))}, nil); st != 200 || !strings.Contains(body, apple.Token.ConsumerKey) {
		t.Fatalf("token upload: %d\n%s", st, body)
	}
	apple.AddDevices(deptest.Device("C02CONSOLE1", "MacBook Pro", godep.DeviceJsonDeviceFamilyMac, godep.DeviceJsonOsOSX))
	if st, body, _ := w.do("POST", "/console/settings/apple/dep/sync", url.Values{}); st != 200 || !strings.Contains(body, "C02CONSOLE1") || !strings.Contains(body, "Custos test server") {
		t.Fatalf("sync: %d\n%s", st, body)
	}
	e.mustUser("carol@example.com")
	t.Run("fail/assign-to-unknown-user", func(t *testing.T) {
		if st, body, _ := w.do("POST", "/console/settings/apple/dep/assign", url.Values{"serial": {"C02CONSOLE1"}, "user": {"nobody@example.com"}}); st != 404 {
			t.Fatalf("unknown user: %d\n%s", st, body)
		}
	})
	if st, body, _ := w.do("POST", "/console/settings/apple/dep/assign", url.Values{"serial": {"C02CONSOLE1"}, "user": {"carol@example.com"}}); st != 200 || !strings.Contains(body, `value="carol@example.com"`) {
		t.Fatalf("assign: %d\n%s", st, body)
	}
	if a := e.caAudit("apple.dep.device.assign"); len(a.Items) != 2 || a.Items[0].Outcome != "ok" || a.Items[1].Outcome != "failed" {
		t.Fatalf("audit of the assignments: %+v", a.Items)
	}
}
