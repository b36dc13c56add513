package appletest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/secret"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// Server is the Apple MDM handler on a real store and CA behind a TLS
// test server, wired as core wires it.
type Server struct {
	DB         *sqlstore.DB
	CA         *pki.CA
	Activation *activation.Service
	Devices    *device.Service
	Commands   *command.Service
	Policies   *policy.Service
	Box        *secret.Box
	Handler    *apple.Handler
	HTTP       *httptest.Server
	// Client trusts the CA (no client certificate).
	Client *http.Client
	// Reports counts OnReport calls.
	Reports chan string
}

// NewServer starts a Server on backend ("sqlite" or "postgres").
func NewServer(t testing.TB, backend string) *Server {
	t.Helper()
	db := sqltest.Open(t, backend)
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	act := &activation.Service{Store: db, CA: ca, Pepper: make([]byte, 32)}
	if act.DefaultProfileID, err = act.EnsureDefaultProfile(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &Server{DB: db, CA: ca, Activation: act, Box: box, Reports: make(chan string, 1000)}
	s.Devices = &device.Service{Store: db, Remover: db, OnRemove: ca.InvalidateCRL}
	s.Commands = &command.Service{Store: db, Box: box}
	s.Policies = &policy.Service{Store: db, Box: box}
	s.Policies.Changed = func(ctx context.Context, ids []string) error {
		_, err := s.Commands.Send(ctx, ids, command.NewCommand{Type: command.SyncConfig, CreatedBy: "system"})
		return err
	}
	s.Handler = &apple.Handler{
		Identifier: &apple.Identifier{Roots: ca.Pool(), Store: db},
		Store:      db, Devices: s.Devices, Commands: s.Commands, Config: s.Policies, Pushes: db, Box: box,
		OnReport: func(ctx context.Context, d *device.Device) {
			select {
			case s.Reports <- d.ID:
			default:
			}
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	rt := httpx.NewRouter(device.CertAuth(db, httpx.WriteError), func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	})
	s.Handler.Register(rt)
	cert, err := ca.LoadOrIssueServerCert(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTP = httptest.NewUnstartedServer(httpx.Observe(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, rt))
	s.HTTP.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	s.HTTP.StartTLS()
	t.Cleanup(s.HTTP.Close)
	s.Client = s.client(nil)
	return s
}

func (s *Server) client(certs []tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: certs},
		MaxIdleConnsPerHost: 64,
	}}
}

// NewDevice activates a device and returns its emulator, not yet enrolled
// in MDM (call Enroll).
func (s *Server) NewDevice(t testing.TB) (*Device, *Identity) {
	t.Helper()
	idn := MustIdentity(t, s.Activation, s.DB)
	return &Device{UDID: NewUDID(), Cert: idn.Cert, Key: idn.Key, BaseURL: s.HTTP.URL, Client: s.Client}, idn
}

// MTLSClient returns a client presenting idn's certificate.
func (s *Server) MTLSClient(idn *Identity) *http.Client {
	return s.client([]tls.Certificate{{Certificate: [][]byte{idn.Cert.Raw}, PrivateKey: idn.Key, Leaf: idn.Cert}})
}

// MustEnroll returns an emulated device that completed Authenticate and
// TokenUpdate, with the commands enrollment queues (device information,
// installed apps, configuration sync) already answered.
func (s *Server) MustEnroll(t testing.TB) (*Device, *Identity) {
	t.Helper()
	d, idn := s.NewDevice(t)
	ctx := context.Background()
	if err := d.Enroll(ctx); err != nil {
		t.Fatal(err)
	}
	c, st, err := d.Idle(ctx)
	for err == nil && c != nil {
		c, st, err = d.Answer(ctx, c, apple.StatusAcknowledged, nil)
	}
	if err != nil || st != http.StatusOK {
		t.Fatalf("draining the enrollment commands: HTTP %d, %v", st, err)
	}
	return d, idn
}
