package core_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// binary builds cmd/custos once for the tests that run Cores as processes
// (kill -9 needs a process; scale-out needs several).
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "custos-core-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "custos")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/custos").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is a `custos serve` process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	url     string
	metrics string
	exited  chan struct{}
}

var (
	listeningRE = regexp.MustCompile(`listening on (https://\S+)`)
	metricsRE   = regexp.MustCompile(`Prometheus metrics: (http://\S+)`)
)

// startProc runs `custos serve` on dir and database dsn and waits until it
// serves.
func startProc(t *testing.T, dir, dsn string, extra ...string) *proc {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data", dir, "--database", dsn, "--listen", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--activation-rate", "-1", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CUSTOS_TEST_POSTGRES=") // the child reads flags only
	stdout, _ := cmd.StdoutPipe()
	logf, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				p.url = m[1]
			}
			if m := metricsRE.FindStringSubmatch(line); m != nil {
				p.metrics = m[1]
				close(found)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-found:
	case <-p.exited:
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("custos serve exited at start: %s", b)
	case <-time.After(30 * time.Second):
		t.Fatal("custos serve did not start in 30s")
	}
	return p
}

// kill sends SIGKILL: no shutdown, no flush, as a crash or an OOM kill.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (p *proc) token() string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "admin-token"))
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (p *proc) roots() *x509.CertPool {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, pki.CAFile))
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

// api calls the admin API of the process with token.
func (p *proc) api(token, method, path string, body, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(mustJSON(body)))
	}
	req, _ := http.NewRequest(method, p.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots()}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// jobRuns is the custos_job_runs_total of job in the process's metrics.
func (p *proc) jobRuns(job string) int {
	p.t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `custos_job_runs_total{job="`+job+`",`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

// copyInstallation gives a second Core the files every Core of one
// installation shares: the CA and the password-hashing secret.
func copyInstallation(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{pki.CAFile, pki.CAKeyFile, core.PepperFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// procAgent activates a simulated Android device of a new user through p.
func procAgent(t *testing.T, p *proc, token string, seed uint64) (*agent.Client, *sim.Device, agent.Store) {
	t.Helper()
	var u struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}
	if st := p.api(token, "POST", "/api/v1/users", map[string]string{"email": fmt.Sprintf("u%d@example.com", seed)}, &u); st != 201 {
		t.Fatalf("create user: %d", st)
	}
	var pw struct {
		Password string `json:"password"`
	}
	if st := p.api(token, "POST", "/api/v1/users/"+u.ID+"/activation-passwords", map[string]string{}, &pw); st != 201 {
		t.Fatalf("password: %d", st)
	}
	dev, err := sim.New("android", seed)
	if err != nil {
		t.Fatal(err)
	}
	store := agent.NewMemStore()
	c := clientFor(t, p, dev, store)
	if _, err := c.Activate(context.Background(), u.Email, pw.Password); err != nil {
		t.Fatal(err)
	}
	return c, dev, store
}

// clientFor is an agent of dev on store talking to p.
func clientFor(t *testing.T, p *proc, dev *sim.Device, store agent.Store) *agent.Client {
	t.Helper()
	c, err := agent.New(dev.Bind(agent.Options{ServerURL: p.url, ServerCAs: p.roots(), Store: store, Wait: agent.WaitNever}))
	if err != nil {
		t.Fatal(err)
	}
	dev.Attach(c)
	t.Cleanup(c.Close)
	return c
}

func executedOf(dev *sim.Device, id string) int {
	n := 0
	for _, x := range dev.Executed() {
		if x.ID == id {
			n++
		}
	}
	return n
}

// TestKilledCoreDeliversAfterRestart: a command the API accepted survives
// kill -9 of the Core before any device asked for it; after the restart the
// device gets it, runs it once, and its queue is idle.
func TestKilledCoreDeliversAfterRestart(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			dsn := sqltest.DSN(t, backend)
			dir := t.TempDir()
			p := startProc(t, dir, dsn)
			token := p.token()
			c, dev, store := procAgent(t, p, token, 7)
			deviceID := c.State().DeviceID
			var cmd struct {
				ID string `json:"id"`
			}
			if st := p.api(token, "POST", "/api/v1/devices/"+deviceID+"/commands", map[string]string{"type": "device_info"}, &cmd); st != 201 {
				t.Fatalf("send: %d", st)
			}
			p.kill()

			p = startProc(t, dir, dsn)
			c.Close()
			c = clientFor(t, p, dev, store)
			for range 2 { // the second round finds the queue idle
				if _, err := c.Commands(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if n := executedOf(dev, cmd.ID); n != 1 {
				t.Fatalf("the device ran the command %d times, want once", n)
			}
			var got struct {
				Status string `json:"status"`
			}
			p.api(token, "GET", "/api/v1/commands/"+cmd.ID, nil, &got)
			if got.Status != "acknowledged" {
				t.Fatalf("command after restart: %s, want acknowledged", got.Status)
			}
		})
	}
}

// TestTwoCoresOnOnePostgreSQL is the scale-out test: two Core processes
// share one PostgreSQL database. A command queued through one is delivered
// by the other, a device is served by either, a device waiting on one Core
// is woken by a command queued through the other, and each scheduled sweep
// runs once per interval across both.
func TestTwoCoresOnOnePostgreSQL(t *testing.T) {
	if os.Getenv(sqltest.EnvPostgres) == "" {
		t.Fatal(sqltest.EnvPostgres + " must be set: scale-out runs on PostgreSQL")
	}
	dsn := sqltest.DSN(t, sqlstore.Postgres)
	const interval = time.Second
	flags := []string{"--compliance-interval", interval.String(), "--expiry-interval", interval.String()}
	dirA, dirB := t.TempDir(), t.TempDir()
	// The window counts from before A starts: A runs each job as it
	// starts, and B may take a while to start under load.
	start := time.Now()
	a := startProc(t, dirA, dsn, flags...)
	copyInstallation(t, dirA, dirB)
	b := startProc(t, dirB, dsn, flags...)
	token := a.token()

	// Activated through B, checks in through A.
	cB, dev, store := procAgent(t, b, token, 11)
	deviceID := cB.State().DeviceID
	cA := clientFor(t, a, dev, store)
	if _, err := cA.Checkin(context.Background()); err != nil {
		t.Fatalf("check-in through the other Core: %v", err)
	}
	dev.Attach(cB)

	// Queued through A, delivered by B.
	var lock struct {
		ID string `json:"id"`
	}
	if st := a.api(token, "POST", "/api/v1/devices/"+deviceID+"/commands", map[string]string{"type": "lock"}, &lock); st != 201 {
		t.Fatalf("send through A: %d", st)
	}
	if _, err := cB.Commands(context.Background()); err != nil {
		t.Fatal(err)
	}
	if executedOf(dev, lock.ID) != 1 {
		t.Fatalf("lock queued through A not delivered by B: %+v", dev.Executed())
	}

	// A long poll held on B is answered when A queues a command.
	waited := make(chan error, 1)
	var pending bool
	go func() {
		var err error
		pending, err = cB.Wait(context.Background(), 50*time.Second)
		waited <- err
	}()
	time.Sleep(500 * time.Millisecond) // the poll is open on B
	sent := time.Now()
	if st := a.api(token, "POST", "/api/v1/devices/"+deviceID+"/commands", map[string]string{"type": "device_info"}, nil); st != 201 {
		t.Fatalf("send through A: %d", st)
	}
	if err := <-waited; err != nil || !pending {
		t.Fatalf("long poll on B: pending %v, %v", pending, err)
	}
	t.Logf("wake-up across processes took %v", time.Since(sent))

	// Sweeps: by now both processes have ticked many times per interval.
	time.Sleep(3 * time.Second)
	for _, job := range []string{"compliance", "command-expiry"} {
		runsA, runsB := a.jobRuns(job), b.jobRuns(job)
		elapsed := time.Since(start)
		most := int(math.Floor(elapsed.Seconds()/interval.Seconds())) + 1
		t.Logf("%s: A ran %d, B ran %d in %v", job, runsA, runsB, elapsed)
		if runsA+runsB > most {
			t.Errorf("%s ran %d times in %v across both Cores, at most %d expected (once per %v)", job, runsA+runsB, elapsed, most, interval)
		}
		if runsA+runsB < most-2 {
			t.Errorf("%s ran only %d times in %v", job, runsA+runsB, elapsed)
		}
	}
}
