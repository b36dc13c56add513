// Package bench measures Custos end to end, in process: a real Core (core.Main
// on 127.0.0.1:0, real TLS, a real database) and many simulated agents
// speaking the real protocol to it over loopback. `custos bench` and the
// Go benchmarks in this package share it.
package bench

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/custos-uem/custos/id"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/user"
	"net/http"
)

// Result of an activation run.
type Result struct {
	Activations int
	Failures    int
	Elapsed     time.Duration
	PerSecond   float64
	P50, P95    time.Duration
	FirstError  error
}

func (r Result) String() string {
	return fmt.Sprintf("%d activations in %v: %.0f/s (p50 %v, p95 %v, %d failed)",
		r.Activations, r.Elapsed.Round(time.Millisecond), r.PerSecond, r.P50.Round(time.Microsecond), r.P95.Round(time.Microsecond), r.Failures)
}

// PrepareUsersAPI creates n users with activation passwords through the
// admin API of the Core at url (token is an administrator's API token).
func PrepareUsersAPI(ctx context.Context, url, token string, roots *x509.CertPool, n int) ([]Credential, error) {
	hc := &http.Client{Transport: agent.NewTransport(roots, nil)}
	defer hc.CloseIdleConnections()
	call := func(path string, in, out any) error {
		b, _ := json.Marshal(in)
		req, err := http.NewRequestWithContext(ctx, "POST", url+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			return fmt.Errorf("POST %s: %s: %s", path, resp.Status, body)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	run := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	seedBase := sim.RandomSeed() >> 1
	out := make([]Credential, n)
	for i := range out {
		var u struct{ ID, Email string }
		if err := call("/api/v1/users", map[string]string{"email": fmt.Sprintf("bench-%s-%d@example.org", run, i)}, &u); err != nil {
			return nil, err
		}
		var p struct{ Password string }
		if err := call("/api/v1/users/"+u.ID+"/activation-passwords", map[string]string{}, &p); err != nil {
			return nil, err
		}
		out[i] = Credential{Login: u.Email, Password: p.Password, Seed: seedBase + uint64(i)}
	}
	return out, nil
}

// Credential is a login with a fresh activation password.
type Credential struct {
	Login, Password string
	// Seed makes the simulated device; distinct per credential, so no two
	// share hardware.
	Seed uint64
}

// PrepareUsers creates n users, each with an activation password, directly
// through the Core's services (the set-up is not what is measured).
func PrepareUsers(ctx context.Context, m *core.Main, n int) ([]Credential, error) {
	out := make([]Credential, n)
	run := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	seedBase := sim.RandomSeed() >> 1
	for i := range out {
		now := time.Now().UTC()
		u := &user.User{ID: id.New(), Email: fmt.Sprintf("bench-%s-%d@example.org", run, i), Username: fmt.Sprintf("bench-%s-%d", run, i), Source: user.SourceLocal, CreatedAt: now, UpdatedAt: now}
		if err := m.DB.CreateUser(ctx, u); err != nil {
			return nil, err
		}
		pw, _, err := m.Activation.SetPassword(ctx, activation.SetPasswordInput{UserID: u.ID, CreatedBy: "bench"})
		if err != nil {
			return nil, err
		}
		out[i] = Credential{Login: u.Email, Password: pw, Seed: seedBase + uint64(i)}
	}
	return out, nil
}

// Activate runs one full activation per credential (activate, enroll,
// first check-in over mutual TLS, acknowledgment) with concurrency agents
// at a time, each a separate simulated device with its own key and its
// own mutual-TLS connection; the pre-certificate steps share one
// connection pool, as devices behind one carrier NAT would.
func Activate(ctx context.Context, m *core.Main, creds []Credential, concurrency int, platform string) Result {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.CA.CertPEM)
	return ActivateAt(ctx, m.URL(), roots, creds, concurrency, platform)
}

// ActivateAt is Activate against the Core at url whose TLS certificate
// roots verify.
func ActivateAt(ctx context.Context, url string, roots *x509.CertPool, creds []Credential, concurrency int, platform string) Result {
	tr := agent.NewTransport(roots, nil)
	tr.MaxIdleConnsPerHost = concurrency
	defer tr.CloseIdleConnections()

	var next atomic.Int64
	var failures atomic.Int64
	var firstErr atomic.Value
	lat := make([]time.Duration, len(creds))
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(creds) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := activateOne(ctx, url, tr, creds[i], platform); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	r := Result{Activations: len(creds), Failures: int(failures.Load()), Elapsed: el, PerSecond: float64(len(creds)) / el.Seconds()}
	if len(lat) > 0 {
		r.P50, r.P95 = lat[len(lat)/2], lat[len(lat)*95/100]
	}
	if e, ok := firstErr.Load().(error); ok {
		r.FirstError = e
	}
	return r
}

func activateOne(ctx context.Context, url string, tr *http.Transport, c Credential, platform string) error {
	dev, err := sim.New(platform, c.Seed)
	if err != nil {
		return err
	}
	cl, err := agent.New(agent.Options{ServerURL: url, Store: agent.NewMemStore(), Collector: dev, Transport: tr})
	if err != nil {
		return err
	}
	defer cl.Close()
	a, err := cl.Activate(ctx, c.Login, c.Password)
	if err != nil {
		return err
	}
	if a.State != "active" {
		return fmt.Errorf("device %s ended in state %q", a.DeviceID, a.State)
	}
	return nil
}
