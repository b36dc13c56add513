// Package apitest starts the administrator API the way the Core wires it —
// real services on a real sqltest database, the deny-by-default router
// with the token middleware, request IDs from httpx.Observe — on an
// httptest server, for the tests of package api and of `custos admin`.
package apitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
)

// Clock is a settable clock shared by every service of an Env.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is a running API.
type Env struct {
	DB         *sqlstore.DB
	Server     *httptest.Server
	URL        string
	DataDir    string
	Token      string // the bootstrap token
	AdminID    string
	Clock      *Clock
	CA         *pki.CA
	Activation *activation.Service
	Devices    *device.Service
	Users      *user.Service
	Auth       *auth.Service
	Audit      *audit.Logger
	Commands   *command.Service
	Policies   *policy.Service
	Compliance *compliance.Engine
	// FailAudit, when set, makes every audit append fail (the store is
	// down for the audit trail only).
	FailAudit atomic.Bool

	mu      sync.Mutex
	changed []string // devices the policy service told of a change
}

// Changed returns, and forgets, the devices the policy service has told
// that their configuration may have changed, in the order told.
func (e *Env) Changed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.changed
	e.changed = nil
	return out
}

type auditStore struct {
	audit.Store
	fail *atomic.Bool
}

func (s auditStore) AppendAudit(ctx context.Context, e *audit.Entry) error {
	if s.fail.Load() {
		return errors.New("apitest: audit store down")
	}
	return s.Store.AppendAudit(ctx, e)
}

// New starts the API on a fresh database of backend; with useTLS the
// server speaks HTTPS with a certificate of its own (Server.Certificate).
// Logs go to t.Log when verbose is set in the environment
// (CUSTOS_TEST_LOG=1), else nowhere.
func New(t testing.TB, backend string, useTLS bool) *Env {
	t.Helper()
	ctx := context.Background()
	db := sqltest.Open(t, backend)
	dir := t.TempDir()
	// Whole seconds: what the database stores (microseconds) compares equal.
	clk := &Clock{t: time.Now().UTC().Truncate(time.Second)}
	ca, _, err := pki.LoadOrCreateCA(dir, pki.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{DB: db, DataDir: dir, Clock: clk, CA: ca}
	e.Activation = &activation.Service{Store: db, CA: ca, Pepper: []byte("test pepper"), Now: clk.Now}
	if e.Activation.DefaultProfileID, err = e.Activation.EnsureDefaultProfile(ctx); err != nil {
		t.Fatal(err)
	}
	e.Devices = &device.Service{Store: db, Remover: db, OnRemove: ca.InvalidateCRL, Now: clk.Now}
	e.Users = &user.Service{Store: db, Devices: e.Devices, Now: clk.Now}
	e.Audit = &audit.Logger{Store: auditStore{Store: db, fail: &e.FailAudit}, Now: clk.Now}
	e.Auth = &auth.Service{Admins: db, Tokens: db, Scope: db, Audit: e.Audit, Now: clk.Now}
	e.Commands = &command.Service{Store: db, Now: clk.Now}
	e.Policies = &policy.Service{Store: db, Now: clk.Now, Changed: func(_ context.Context, ids []string) error {
		e.mu.Lock()
		e.changed = append(e.changed, ids...)
		e.mu.Unlock()
		return nil
	}}
	e.Compliance = &compliance.Engine{Store: db, Devices: db, Commands: e.Commands, Remove: e.Devices.Remove, Now: clk.Now,
		Profile: e.complianceProfile}
	if _, path, err := e.Auth.Bootstrap(ctx, dir); err != nil {
		t.Fatal(err)
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		e.Token = strings.TrimSpace(string(b))
	}
	admins, err := db.ListAdmins(ctx)
	if err != nil || len(admins) != 1 {
		t.Fatalf("admins: %v %v", admins, err)
	}
	e.AdminID = admins[0].ID

	rt := httpx.NewRouter(device.CertAuth(db, httpx.WriteError), e.Auth.Middleware(httpx.WriteError))
	api.New(e.Deps()).Register(rt)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("CUSTOS_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	h := httpx.Observe(log, nil, rt)
	if useTLS {
		e.Server = httptest.NewTLSServer(h)
	} else {
		e.Server = httptest.NewServer(h)
	}
	t.Cleanup(e.Server.Close)
	e.URL = e.Server.URL
	return e
}

// Deps are the services of e as the API takes them.
func (e *Env) Deps() api.Deps {
	return api.Deps{Users: e.Users, Activation: e.Activation, Devices: e.Devices, Auth: e.Auth, Audit: e.Audit,
		Commands: e.Commands, Policies: e.Policies, Compliance: e.Compliance}
}

// complianceProfile is the compliance profile of d: the settings of the
// compliance policy of its effective configuration, if any.
func (e *Env) complianceProfile(ctx context.Context, d *device.Device) (*compliance.Profile, error) {
	eff, err := e.Policies.Effective(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, it := range eff.Items {
		if it.Kind == policy.Compliance {
			raw, err := json.Marshal(it.Payload)
			if err != nil {
				return nil, err
			}
			return compliance.ParseProfile(raw)
		}
	}
	return nil, nil
}

// EnrollDevice activates and enrolls a device for the user with login and
// activation password, as the agent would (seed steps 5–8), and returns
// its ID.
func (e *Env) EnrollDevice(t testing.TB, login, password, hardwareID, name string) string {
	t.Helper()
	ctx := context.Background()
	a, err := e.Activation.Activate(ctx, activation.ActivateInput{Login: login, Password: password, Platform: activation.Linux, OSVersion: "6.1", HardwareID: hardwareID, Model: "test", Name: name})
	if err != nil {
		t.Fatalf("activate: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: a.Device.ID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Activation.Enroll(ctx, a.SessionToken, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return a.Device.ID
}

// Report stores an inventory report for an enrolled device.
func (e *Env) Report(t testing.TB, deviceID string, info device.Info, apps []device.App) {
	t.Helper()
	if err := e.DB.SaveReport(context.Background(), deviceID, info, apps, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
}

// CAFile writes the server's certificate (TLS servers) to a file in the
// data directory and returns its path.
func (e *Env) CAFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(e.DataDir, "server-ca.pem")
	c := e.Server.Certificate()
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
