package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
)

// flaky fails a share of the store calls an activation makes, the way a
// database under strain or failing over does.
type flaky struct {
	*sqlstore.DB
	mu    sync.Mutex
	rng   *rand.Rand
	share float64
	fails atomic.Int64
}

var errInjected = errors.New("injected database failure")

func (f *flaky) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.share {
		f.fails.Add(1)
		return errInjected
	}
	return nil
}

func (f *flaky) UserByLogin(ctx context.Context, login string) (*user.User, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.DB.UserByLogin(ctx, login)
}

func (f *flaky) OpenSession(ctx context.Context, s *activation.Session, d *device.Device) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.DB.OpenSession(ctx, s, d)
}

func (f *flaky) SessionByToken(ctx context.Context, h []byte) (*activation.Session, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.DB.SessionByToken(ctx, h)
}

func (f *flaky) CompleteSession(ctx context.Context, id string, c activation.IssuedCert, now time.Time) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.DB.CompleteSession(ctx, id, c, now)
}

func (f *flaky) Device(ctx context.Context, id string) (*device.Device, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.DB.Device(ctx, id)
}

func (f *flaky) SaveReport(ctx context.Context, id string, info device.Info, apps []device.App, now time.Time) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.DB.SaveReport(ctx, id, info, apps, now)
}

func (f *flaky) Acknowledge(ctx context.Context, id, version string, now time.Time) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.DB.Acknowledge(ctx, id, version, now)
}

// TestDatabaseFailingAShareOfCalls: with a fifth of the database calls
// failing, every refused step is a clear 500 with the stable code
// "internal" (never a misleading 4xx, never a leaked cause), no state is
// left half-written, and no goroutine outlives the server.
func TestDatabaseFailingAShareOfCalls(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			// Counted after the database is open: its pools' goroutines
			// (and sqltest's shared connection) are not the server's.
			before := runtime.NumGoroutine()
			ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
			if err != nil {
				t.Fatal(err)
			}
			store := &flaky{DB: db, rng: rand.New(rand.NewPCG(1, 2))}
			act := &activation.Service{Store: store, CA: ca, Pepper: make([]byte, 32)}
			if act.DefaultProfileID, err = act.EnsureDefaultProfile(context.Background()); err != nil {
				t.Fatal(err)
			}
			devs := &device.Service{Store: store, Remover: db}
			rt := httpx.NewRouter(device.CertAuth(store, httpx.WriteError), func(http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) })
			})
			(&wire.Handler{Activation: act, Devices: devs, Config: &policy.Service{Store: db},
				Commands: &command.Service{Store: db}, Pushes: db}).Register(rt)
			srv := httptest.NewUnstartedServer(httpx.Observe(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, rt))
			srv.TLS = serverTLS(t, ca)
			srv.StartTLS()

			const n = 40
			var creds [n][2]string
			for i := range creds {
				u := &user.User{ID: id.New(), Email: "u" + id.New() + "@example.org", Source: user.SourceLocal, CreatedAt: time.Now(), UpdatedAt: time.Now()}
				if err := db.CreateUser(context.Background(), u); err != nil {
					t.Fatal(err)
				}
				pw, _, err := act.SetPassword(context.Background(), activation.SetPasswordInput{UserID: u.ID})
				if err != nil {
					t.Fatal(err)
				}
				creds[i] = [2]string{u.Email, pw}
			}
			store.share = 0.2
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			ok := 0
			for i, c := range creds {
				dev, _ := sim.New("android", uint64(i)+1)
				cl, err := agent.New(agent.Options{ServerURL: srv.URL, ServerCAs: roots, Store: agent.NewMemStore(), Collector: dev})
				if err != nil {
					t.Fatal(err)
				}
				_, err = cl.Activate(context.Background(), c[0], c[1])
				cl.Close()
				var se *agent.ServerError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &se):
					if se.Status != 500 || se.Code != "internal" || se.RequestID == "" {
						t.Errorf("activation %d refused with %d %q (request %q), want 500 internal", i, se.Status, se.Code, se.RequestID)
					}
				default:
					t.Errorf("activation %d: %v", i, err)
				}
			}
			if store.fails.Load() == 0 || ok == 0 {
				t.Fatalf("%d injected failures, %d activations completed: the test tested nothing", store.fails.Load(), ok)
			}
			store.share = 0
			assertConsistent(t, db)

			srv.Close()
			srv.Client().CloseIdleConnections()
			db.Close()
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if g := runtime.NumGoroutine(); g > before+2 {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines after the server closed, %d before:\n%s", g, before, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// assertConsistent checks that no failure left a half-done enrollment: a
// device past activating has its current certificate recorded and the
// password it used marked with it.
func assertConsistent(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	ctx := context.Background()
	devs, err := db.ListDevices(ctx, device.Query{Limit: device.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.State == device.StateActivating {
			if d.CertSerial != "" {
				t.Errorf("device %s activating but has a certificate", d.ID)
			}
			continue
		}
		if d.CertSerial == "" || d.EnrolledAt == nil {
			t.Errorf("device %s is %s without a certificate", d.ID, d.State)
		}
		pws, err := db.Passwords(ctx, d.UserID)
		if err != nil {
			t.Fatal(err)
		}
		used := false
		for _, p := range pws {
			used = used || (p.UsedAt != nil && p.DeviceID == d.ID)
		}
		if !used {
			t.Errorf("device %s is %s but no password records it", d.ID, d.State)
		}
	}
}

// serverTLS is the Core's TLS configuration for a test server: a
// certificate from ca for 127.0.0.1, client certificates verified against
// ca when given.
func serverTLS(t *testing.T, ca *pki.CA) *tls.Config {
	t.Helper()
	cert, err := ca.LoadOrIssueServerCert(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
}
