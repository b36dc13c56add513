package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// fakeClock records sleeps instead of sleeping, and cancels the context of
// Run after stopAfter sleeps.
type fakeClock struct {
	mu        sync.Mutex
	now       time.Time
	sleeps    []time.Duration
	stopAfter int
	cancel    context.CancelFunc
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	if c.stopAfter > 0 && len(c.sleeps) >= c.stopAfter && c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type setup struct {
	fc    *fakeCore
	store agent.Store
	dev   *sim.Device
	clock *fakeClock
	opts  agent.Options
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	fc := newFakeCore(t)
	dev, err := sim.New("android", 11)
	if err != nil {
		t.Fatal(err)
	}
	s := &setup{fc: fc, store: agent.NewMemStore(), dev: dev, clock: newFakeClock()}
	s.opts = agent.Options{
		ServerURL: fc.srv.URL, ServerCAs: fc.ca.pool, ServerCAPEM: fc.ca.pem,
		Store: s.store, Collector: dev, Clock: s.clock, Rand: mrand.New(mrand.NewPCG(1, 2)),
	}
	return s
}

func (s *setup) client(t *testing.T) *agent.Client {
	t.Helper()
	c, err := agent.New(s.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (s *setup) activate(t *testing.T) (*agent.Client, *agent.Activation) {
	t.Helper()
	c := s.client(t)
	act, err := c.Activate(context.Background(), s.fc.login, s.fc.password)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	return c, act
}

func TestActivate(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, s *setup)
		login   string
		pass    string
		wantErr []string
		check   func(t *testing.T, s *setup, err error)
	}{
		{
			name: "fail/wrong password surfaces code and request ID",
			pass: "wrong",
			wantErr: []string{"activation refused: activation_password_invalid: the activation password is wrong",
				"(HTTP 401, request ID "},
			check: func(t *testing.T, s *setup, err error) {
				var se *agent.ServerError
				if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || len(se.RequestID) != 24 {
					t.Fatalf("ServerError = %+v", se)
				}
				want := "activation refused: activation_password_invalid: the activation password is wrong, expired or already used (HTTP 401, request ID " + se.RequestID + ")"
				if err.Error() != want {
					t.Fatalf("err = %q\nwant  %q", err, want)
				}
				if _, err := s.store.Read(agent.ItemKey); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a key was saved for a refused activation: %v", err)
				}
			},
		},
		{
			name:    "fail/no enrollment session cookie",
			prepare: func(t *testing.T, s *setup) { s.fc.set(func(fc *fakeCore) { fc.omitCookie = true }) },
			wantErr: []string{"no custos_enrollment cookie"},
		},
		{
			name: "fail/certificate for another key",
			prepare: func(t *testing.T, s *setup) {
				s.fc.set(func(fc *fakeCore) {
					fc.badCert = func(csr *x509.CertificateRequest) string {
						other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
						return certPEM(fc.ca.issue(t, &x509.Certificate{Subject: csr.Subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &other.PublicKey))
					}
				})
			},
			wantErr: []string{"the Core's certificate is unusable", "not for this device's key"},
		},
		{
			name: "fail/certificate from another CA",
			prepare: func(t *testing.T, s *setup) {
				rogue := newTestCA(t, "Rogue CA")
				s.fc.set(func(fc *fakeCore) {
					fc.badCert = func(csr *x509.CertificateRequest) string {
						return certPEM(rogue.issue(t, &x509.Certificate{Subject: csr.Subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, csr.PublicKey))
					}
				})
			},
			wantErr: []string{"does not chain to the CA"},
		},
		{
			name: "fail/Core not trusted",
			prepare: func(t *testing.T, s *setup) {
				other := newTestCA(t, "Other CA")
				s.opts.ServerCAs, s.opts.ServerCAPEM = other.pool, other.pem
			},
			wantErr: []string{"activation failed: cannot talk to the Core at https://127.0.0.1:", "certificate signed by unknown authority", "(give the CA that signs the Core's certificate with --ca FILE)"},
		},
		{
			name: "ok/android simulator to active",
			check: func(t *testing.T, s *setup, err error) {
				st, err := agent.LoadState(s.store)
				if err != nil {
					t.Fatal(err)
				}
				inv, _ := s.dev.Collect(context.Background())
				if st.DeviceID != "dev0001" || st.ActivationType != "mdm_controls" || st.Platform != "android" ||
					st.HardwareID != inv.HardwareID || st.State != "active" || st.ConfigVersion != "v1" ||
					st.ServerURL != s.fc.srv.URL || st.ServerTrust != agent.TrustCAFile || st.SoftwareHash == "" || st.CertSerial == "" {
					t.Fatalf("state = %+v", st)
				}
				if d := s.fc.device("dev0001"); d.state != "active" || d.hardwareID != inv.HardwareID || len(d.software) != len(inv.Apps) {
					t.Fatalf("Core's device = %+v", d)
				}
				checkins, acks := s.fc.recorded()
				if len(checkins) != 1 || checkins[0].Software == nil || checkins[0].Info.IMEI != inv.Info.IMEI {
					t.Fatalf("check-ins = %+v", checkins)
				}
				if len(acks) != 1 || acks[0].Version != "v1" {
					t.Fatalf("acks = %+v", acks)
				}
				for _, item := range []string{agent.ItemKey, agent.ItemCert, agent.ItemCA, agent.ItemServerCA} {
					if _, err := s.store.Read(item); err != nil {
						t.Errorf("%s: %v", item, err)
					}
				}
				// State never holds the key.
				b, _ := s.store.Read(agent.ItemState)
				if strings.Contains(string(b), "PRIVATE KEY") {
					t.Fatal("state.json holds the key")
				}
			},
		},
		{
			name:  "ok/login is sent as given",
			login: "ana",
			prepare: func(t *testing.T, s *setup) {
				s.fc.set(func(fc *fakeCore) { fc.login = "ana" })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			if tt.prepare != nil {
				tt.prepare(t, s)
			}
			login, pass := s.fc.login, s.fc.password
			if tt.login != "" {
				login = tt.login
			}
			if tt.pass != "" {
				pass = tt.pass
			}
			c := s.client(t)
			act, err := c.Activate(context.Background(), login, pass)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("Activate succeeded")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("err = %q\nwant it to contain %q", err, w)
					}
				}
			} else {
				if err != nil {
					t.Fatalf("Activate: %v", err)
				}
				if act.State != "active" || act.DeviceID != "dev0001" || act.ActivationType != "mdm_controls" {
					t.Fatalf("activation = %+v", act)
				}
			}
			if tt.check != nil {
				tt.check(t, s, err)
			}
		})
	}
}

// TestActivateDirStore activates into a directory, checks what is on disk,
// and checks in again from a new Client that is told nothing but the
// directory: it trusts the Core through the saved server_ca.pem.
func TestActivateDirStore(t *testing.T) {
	s := newSetup(t)
	dir := filepath.Join(t.TempDir(), "state")
	ds, err := agent.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.store, s.opts.Store = ds, ds
	// The key must be on disk before the CSR reaches the Core.
	s.fc.set(func(fc *fakeCore) {
		fc.onEnroll = func(csr *x509.CertificateRequest) {
			b, err := os.ReadFile(filepath.Join(dir, agent.ItemKey))
			if err != nil {
				t.Errorf("key not saved before the CSR was sent: %v", err)
				return
			}
			blk, _ := pem.Decode(b)
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil || !k.(*ecdsa.PrivateKey).PublicKey.Equal(csr.PublicKey) {
				t.Errorf("saved key does not match the CSR: %v", err)
			}
		}
	})
	s.activate(t)

	for name, want := range map[string]os.FileMode{".": 0o700, agent.ItemKey: 0o600, agent.ItemState: 0o600, agent.ItemCert: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}

	ds2, err := agent.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := agent.New(agent.Options{Store: ds2, Collector: s.dev, Clock: s.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ok, err := c2.Activated(); !ok {
		t.Fatalf("reloaded client not activated: %v", err)
	}
	res, err := c2.Checkin(context.Background())
	if err != nil {
		t.Fatalf("Checkin from the reloaded client: %v", err)
	}
	if res.State != "active" || res.Acknowledged || res.SoftwareSent {
		t.Fatalf("result = %+v", res)
	}
}

func TestSoftwareSentOnlyWhenChanged(t *testing.T) {
	s := newSetup(t)
	c, _ := s.activate(t)
	ctx := context.Background()
	step := func(wantSent bool) *agent.CheckinResult {
		t.Helper()
		res, err := c.Checkin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkins, _ := s.fc.recorded()
		last := checkins[len(checkins)-1]
		if res.SoftwareSent != wantSent || (last.Software != nil) != wantSent {
			t.Fatalf("software sent = %v (on the wire: %v), want %v", res.SoftwareSent, last.Software != nil, wantSent)
		}
		return res
	}
	step(false) // unchanged since activation
	up := s.dev.UpdateApp()
	step(true)
	if d := s.fc.device("dev0001"); !containsApp(d.software, up.ID, up.Version) {
		t.Fatalf("the Core did not get the update %+v", up)
	}
	step(false)

	// A check-in that fails after a change does not count as reported.
	s.dev.UpdateApp()
	s.fc.set(func(fc *fakeCore) { fc.failNext = 1 })
	if _, err := c.Checkin(ctx); err == nil || !strings.Contains(err.Error(), "database_unavailable") {
		t.Fatalf("err = %v", err)
	}
	step(true)
	step(false)
}

func containsApp(apps []device.App, id, version string) bool {
	for _, a := range apps {
		if a.ID == id && a.Version == version {
			return true
		}
	}
	return false
}

// recordingApplier records what it is asked to apply.
type recordingApplier struct {
	mu    sync.Mutex
	calls [][2]wire.Configuration
}

func (r *recordingApplier) Apply(_ context.Context, prev, next wire.Configuration) ([]wire.ItemStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, [2]wire.Configuration{prev, next})
	out := make([]wire.ItemStatus, len(next.Items))
	for i, it := range next.Items {
		out[i] = wire.ItemStatus{ID: it.ID, Status: agent.StatusApplied}
	}
	return out, nil
}

func TestReacknowledgeOnNewVersion(t *testing.T) {
	tests := []struct {
		name      string
		applier   agent.Applier
		wantItems []wire.ItemStatus
	}{
		{name: "fail/default applier reports items failed", wantItems: []wire.ItemStatus{
			{ID: "p1", Status: agent.StatusFailed, Error: "no applier for item kind passcode"},
		}},
		{name: "ok/applier's statuses are acknowledged", applier: &recordingApplier{}, wantItems: []wire.ItemStatus{
			{ID: "p1", Status: agent.StatusApplied},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			s.opts.Applier = tt.applier
			c, _ := s.activate(t)
			res, err := c.Checkin(context.Background())
			if err != nil || res.Acknowledged {
				t.Fatalf("unchanged configuration: %+v, %v", res, err)
			}
			s.fc.set(func(fc *fakeCore) {
				fc.config = wire.Configuration{Version: "v2", PollSeconds: 60, Items: []wire.Item{{ID: "p1", Kind: "passcode", Payload: map[string]any{"min_length": 6}}}}
			})
			res, err = c.Checkin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !res.Acknowledged || res.ConfigVersion != "v2" || res.Poll != time.Minute {
				t.Fatalf("result = %+v", res)
			}
			_, acks := s.fc.recorded()
			last := acks[len(acks)-1]
			if last.Version != "v2" || len(last.Items) != 1 || last.Items[0] != tt.wantItems[0] {
				t.Fatalf("ack = %+v, want items %+v", last, tt.wantItems)
			}
			if st := c.State(); st.ConfigVersion != "v2" || len(st.ConfigItems) != 1 {
				t.Fatalf("state = %+v", st)
			}
			if ra, ok := tt.applier.(*recordingApplier); ok {
				last := ra.calls[len(ra.calls)-1]
				if last[0].Version != "v1" || last[1].Version != "v2" {
					t.Fatalf("applier got prev %q next %q", last[0].Version, last[1].Version)
				}
			}
		})
	}
}

// TestRunStopsWhenRefused removes an active device on the Core: Run stops
// at once with one sentence naming the Core's code and request ID, the
// refusal is recorded in the State, and from then on the agent says so
// without contacting the Core until it is activated again.
func TestRunStopsWhenRefused(t *testing.T) {
	const removed = "the device was removed or its certificate revoked"
	tests := []struct {
		name   string
		remove func(s *setup, deviceID string)
		want   func(err error) (msg string, refusal agent.Refusal)
	}{
		{
			name:   "fail/certificate refused at the TLS handshake",
			remove: func(s *setup, id string) { s.fc.revoke(id) },
			want: func(error) (string, agent.Refusal) {
				return "check-in refused: " + removed + " (TLS alert: bad certificate); activate it again",
					agent.Refusal{Step: "check-in", Reason: removed, Alert: "bad certificate"}
			},
		},
		{
			name: "fail/certificate refused by HTTP 401",
			remove: func(s *setup, id string) {
				s.fc.set(func(fc *fakeCore) { fc.refuseHTTP = true })
				s.fc.revoke(id)
			},
			want: func(err error) (string, agent.Refusal) {
				var se *agent.ServerError
				if !errors.As(err, &se) || len(se.RequestID) != 24 {
					return "no *ServerError with a request ID in " + err.Error(), agent.Refusal{}
				}
				return "check-in refused: " + removed + " (certificate_revoked, HTTP 401, request ID " + se.RequestID + "); activate it again",
					agent.Refusal{Step: "check-in", Reason: removed, Code: "certificate_revoked", Status: 401, RequestID: se.RequestID}
			},
		},
		{
			name:   "fail/the Core reports the device removed",
			remove: func(s *setup, id string) { s.fc.set(func(fc *fakeCore) { fc.devices[id].state = "removed" }) },
			want: func(error) (string, agent.Refusal) {
				return "check-in refused: the Core reports the device removed; activate it again",
					agent.Refusal{Step: "check-in", Reason: "the Core reports the device removed"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			c, act := s.activate(t)
			tt.remove(s, act.DeviceID)
			before, _ := s.fc.recorded()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s.clock.cancel, s.clock.stopAfter = cancel, 50 // a spinning Run would be stopped here
			err := c.Run(ctx)
			if !errors.Is(err, agent.ErrRefused) || errors.Is(err, agent.ErrNotActivated) {
				t.Fatalf("Run = %v, want ErrRefused", err)
			}
			wantMsg, wantRefusal := tt.want(err)
			if err.Error() != wantMsg {
				t.Fatalf("err = %q\nwant  %q", err, wantMsg)
			}
			if n := len(s.clock.slept()); n != 0 {
				t.Fatalf("Run slept %d times before giving up", n)
			}
			if after, _ := s.fc.recorded(); len(after) > len(before)+1 {
				t.Fatalf("the Core recorded %d check-ins from a removed device", len(after)-len(before))
			}

			// The refusal is recorded.
			wantRefusal.At = s.clock.Now().UTC()
			st, lerr := agent.LoadState(s.store)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if st.State != agent.StateRefused || st.Refusal == nil || *st.Refusal != wantRefusal {
				t.Fatalf("state %q, refusal %+v\nwant refusal %+v", st.State, st.Refusal, wantRefusal)
			}
			if st.DeviceID != act.DeviceID || st.CertSerial == "" {
				t.Fatalf("the refusal lost the rest of the state: %+v", st)
			}
			recorded := strings.Replace(wantMsg, "check-in refused:", "check-in refused at "+wantRefusal.At.Format(time.RFC3339)+":", 1)

			// The same Client and a new one say so without contacting the Core.
			contacts := s.fc.contacted()
			if _, err := c.Checkin(ctx); !errors.Is(err, agent.ErrRefused) || err.Error() != recorded {
				t.Fatalf("Checkin after the refusal = %v\nwant %q", err, recorded)
			}
			c2 := s.client(t)
			if ok, err := c2.Activated(); ok || !errors.Is(err, agent.ErrRefused) || errors.Is(err, agent.ErrNotActivated) || err.Error() != recorded {
				t.Fatalf("Activated = %v, %v\nwant %q", ok, err, recorded)
			}
			if err := c2.Run(ctx); !errors.Is(err, agent.ErrRefused) || err.Error() != recorded {
				t.Fatalf("Run on a refused state = %v\nwant %q", err, recorded)
			}
			if _, err := c2.Checkin(ctx); !errors.Is(err, agent.ErrRefused) {
				t.Fatalf("Checkin on a refused state = %v", err)
			}
			if n := s.fc.contacted() - contacts; n != 0 {
				t.Fatalf("the Core was contacted %d times after the refusal", n)
			}

			// Activating again clears the refusal.
			act2, err := c2.Activate(ctx, s.fc.login, s.fc.password)
			if err != nil {
				t.Fatalf("Activate again: %v", err)
			}
			if st := c2.State(); st.State != agent.StateActive || st.Refusal != nil || st.DeviceID != act2.DeviceID {
				t.Fatalf("state after activating again = %+v", st)
			}
			if _, err := c2.Checkin(ctx); err != nil {
				t.Fatalf("Checkin after activating again: %v", err)
			}
		})
	}
}

func TestRunPollsAndBacksOff(t *testing.T) {
	s := newSetup(t)
	c, _ := s.activate(t)
	s.fc.set(func(fc *fakeCore) { fc.failNext = 4; fc.config.PollSeconds = 120 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.clock.cancel, s.clock.stopAfter = cancel, 7
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	sl := s.clock.slept()
	if len(sl) != 7 {
		t.Fatalf("sleeps = %v", sl)
	}
	// Four failures: 1 s, 2 s, 4 s, 8 s ±20 %; then the poll of 120 s ±10 %.
	for i, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 120 * time.Second, 120 * time.Second, 120 * time.Second} {
		f := 0.2
		if i >= 4 {
			f = 0.1
		}
		lo, hi := time.Duration(float64(base)*(1-f)), time.Duration(float64(base)*(1+f))
		if sl[i] < lo || sl[i] > hi {
			t.Errorf("sleep %d = %v, want %v..%v", i, sl[i], lo, hi)
		}
	}
	if sl[4] == sl[5] && sl[5] == sl[6] {
		t.Errorf("poll intervals not jittered: %v", sl[4:])
	}
	if st := c.State(); st.PollSeconds != 120 || st.LastCheckin.IsZero() {
		t.Errorf("state = %+v", st)
	}
}

func TestRunHonoursRetryAfterAndOverride(t *testing.T) {
	s := newSetup(t)
	s.opts.PollInterval = 5 * time.Second
	c, _ := s.activate(t)
	s.fc.set(func(fc *fakeCore) { fc.failNext, fc.retryAfter = 1, "90" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.clock.cancel, s.clock.stopAfter = cancel, 2
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sl := s.clock.slept()
	if sl[0] != 90*time.Second {
		t.Errorf("after a 503 with Retry-After: 90, slept %v", sl[0])
	}
	if sl[1] < 4500*time.Millisecond || sl[1] > 5500*time.Millisecond {
		t.Errorf("poll with the 5 s override: slept %v", sl[1])
	}
}

func TestBackoffCapped(t *testing.T) {
	s := newSetup(t)
	c, _ := s.activate(t)
	s.fc.set(func(fc *fakeCore) { fc.failNext = 1000 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.clock.cancel, s.clock.stopAfter = cancel, 15
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sl := s.clock.slept()
	for i, d := range sl {
		if d > agent.BackoffMax {
			t.Fatalf("sleep %d = %v over the cap", i, d)
		}
	}
	if last := sl[len(sl)-1]; last < agent.BackoffMax*8/10 {
		t.Fatalf("after 15 failures the wait is %v, want near %v", last, agent.BackoffMax)
	}
}

func TestRunNotActivated(t *testing.T) {
	s := newSetup(t)
	c := s.client(t)
	if err := c.Run(context.Background()); !errors.Is(err, agent.ErrNotActivated) {
		t.Fatalf("Run = %v, want ErrNotActivated", err)
	}
	if _, err := c.Checkin(context.Background()); !errors.Is(err, agent.ErrNotActivated) {
		t.Fatalf("Checkin = %v, want ErrNotActivated", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s := newSetup(t)
	s.opts.Clock = nil // the real clock: Run must leave its sleep on cancel
	c, _ := s.activate(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}

// TestManyAgents activates agents concurrently through one shared
// Transport, as a benchmark would.
func TestManyAgents(t *testing.T) {
	fc := newFakeCore(t)
	tr := agent.NewTransport(fc.ca.pool, nil)
	defer tr.CloseIdleConnections()
	const n = 24
	var wg sync.WaitGroup
	errc := make(chan error, n)
	ids := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev, err := sim.New(sim.Platforms[i%len(sim.Platforms)], uint64(i))
			if err != nil {
				errc <- err
				return
			}
			c, err := agent.New(agent.Options{ServerURL: fc.srv.URL, Store: agent.NewMemStore(), Collector: dev, Transport: tr})
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			act, err := c.Activate(context.Background(), fc.login, fc.password)
			if err != nil {
				errc <- err
				return
			}
			if _, err := c.Checkin(context.Background()); err != nil {
				errc <- err
				return
			}
			ids <- act.DeviceID
		}()
	}
	wg.Wait()
	close(errc)
	close(ids)
	for err := range errc {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] || fc.device(id).state != "active" {
			t.Errorf("device %s duplicated or not active", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d devices active, want %d", len(seen), n)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    agent.Options
		wantErr string
	}{
		{name: "fail/no store", opts: agent.Options{}, wantErr: "Store is required"},
		{name: "fail/http URL", opts: agent.Options{Store: agent.NewMemStore(), ServerURL: "http://core.example"}, wantErr: "want https://"},
		{name: "fail/URL with credentials", opts: agent.Options{Store: agent.NewMemStore(), ServerURL: "https://u:p@core.example"}, wantErr: "want https://"},
		{name: "fail/CA PEM without certificates", opts: agent.Options{Store: agent.NewMemStore(), ServerCAPEM: []byte("junk")}, wantErr: "no PEM certificate"},
		{name: "ok/minimal", opts: agent.Options{Store: agent.NewMemStore(), ServerURL: "https://core.example:8443/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := agent.New(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
}

// A broken store (state says active, key missing) still allows a new
// activation, and says why it cannot run.
func TestBrokenStoreCanReactivate(t *testing.T) {
	s := newSetup(t)
	if err := agent.SaveState(s.store, &agent.State{ServerURL: s.fc.srv.URL, State: "active", DeviceID: "dev9999"}); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	ok, err := c.Activated()
	if ok || !errors.Is(err, agent.ErrNotActivated) || !strings.Contains(err.Error(), "key") {
		t.Fatalf("Activated = %v, %v", ok, err)
	}
	if _, err := c.Activate(context.Background(), s.fc.login, s.fc.password); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Activated(); !ok {
		t.Fatal("not activated after Activate")
	}
}

// BenchmarkActivate measures whole activations (steps 5–12) of simulated
// agents sharing one pre-certificate Transport, against the in-process fake
// Core (whose own work is included).
func BenchmarkActivate(b *testing.B) {
	fc := newFakeCore(b)
	tr := agent.NewTransport(fc.ca.pool, nil)
	defer tr.CloseIdleConnections()
	var seq atomicCounter
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			dev, err := sim.New("android", seq.next())
			if err != nil {
				b.Error(err)
				return
			}
			c, err := agent.New(agent.Options{ServerURL: fc.srv.URL, Store: agent.NewMemStore(), Collector: dev, Transport: tr})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Activate(context.Background(), fc.login, fc.password); err != nil {
				b.Error(err)
			}
			c.Close()
		}
	})
}

type atomicCounter struct {
	mu sync.Mutex
	n  uint64
}

func (a *atomicCounter) next() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.n
}
