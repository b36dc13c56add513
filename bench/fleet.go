package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for seeding PostgreSQL
	_ "modernc.org/sqlite"             // "sqlite" for seeding SQLite

	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/policy"
)

// Fleet is many simulated devices enrolled straight into the database (the
// fan-out benchmarks measure delivery, not activation, which
// BenchmarkActivation measures), each with its own client certificate and
// push token, all members of one group. Each device, when woken, speaks the
// agent protocol over mutual TLS like the reference agent: command round
// trips until idle, a check-in that fetches only a changed configuration,
// an acknowledgment with one status per item.
type Fleet struct {
	GroupID string
	IDs     []string // device IDs
	Tokens  []string // APNs tokens (hex)

	url     string
	roots   *x509.CertPool
	certs   []tls.Certificate
	byTok   map[string]int
	online  bool
	trs     []*http.Transport        // per device when online
	tickets []tls.ClientSessionCache // per device: resumption, as the agent does

	state   []atomic.Int32 // devIdle, devQueued, devRunning, devAgain
	acked   []atomic.Pointer[string]
	doneAt  []atomic.Int64 // unix nanos of the last acknowledged command
	wake    chan int
	errs    atomic.Int64
	firstMu sync.Mutex
	first   error
	wg      sync.WaitGroup
	stop    context.CancelFunc
}

const (
	devIdle int32 = iota
	devQueued
	devRunning
	devAgain
)

// seedChunk rows per INSERT statement.
const seedChunk = 400

// SeedFleet inserts n active devices (one user each, all in one new group)
// into the database dsn of a Core that is not running yet, with client
// certificates issued by ca. The group's ID and the devices' IDs and push
// tokens are returned in the Fleet.
func SeedFleet(ctx context.Context, dsn string, ca *pki.CA, n int) (*Fleet, error) {
	driver, src := "pgx", dsn
	if !strings.HasPrefix(dsn, "postgres") {
		driver, src = "sqlite", strings.TrimPrefix(dsn, "sqlite://")
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	f := &Fleet{GroupID: id.New(), byTok: make(map[string]int, n)}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	f.IDs = make([]string, n)
	f.Tokens = make([]string, n)
	f.certs = make([]tls.Certificate, n)
	serials := make([]string, n)
	ders := make([][]byte, n)
	// Signing is the slow part of seeding: spread it over the cores.
	var wg sync.WaitGroup
	var signErr atomic.Pointer[error]
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f.IDs[i] = id.New()
				// One key for the whole fleet (key generation is not what
				// is measured); a request and a certificate per device.
				der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: f.IDs[i]}}, key)
				if err != nil {
					signErr.Store(&err)
					return
				}
				csr, err := x509.ParseCertificateRequest(der)
				if err != nil {
					signErr.Store(&err)
					return
				}
				c, err := ca.SignDeviceCSR(csr, f.IDs[i], 365*24*time.Hour)
				if err != nil {
					signErr.Store(&err)
					return
				}
				f.certs[i] = tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
				serials[i], ders[i] = pki.SerialHex(c.SerialNumber), c.Raw
				sum := sha256.Sum256([]byte(f.IDs[i]))
				f.Tokens[i] = hex.EncodeToString(sum[:])
			}
		}()
	}
	wg.Wait()
	if p := signErr.Load(); p != nil {
		return nil, *p
	}
	for i, t := range f.Tokens {
		f.byTok[t] = i
	}
	now := time.Now().UnixMicro()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO groups (id, name, description, created_at, updated_at) VALUES ($1, 'fleet', 'benchmark fleet', $2, $2)`, f.GroupID, now); err != nil {
		return nil, fmt.Errorf("seed group: %w", err)
	}
	type table struct {
		head string
		cols int
		row  func(i int) []any
	}
	userIDs := make([]string, n)
	for i := range userIDs {
		userIDs[i] = id.New()
	}
	tables := []table{
		{`INSERT INTO users (id, email, display_name, source, created_at, updated_at) VALUES `, 6, func(i int) []any {
			return []any{userIDs[i], fmt.Sprintf("fleet%d@example.com", i), "Fleet user", "local", now, now}
		}},
		{`INSERT INTO group_members (group_id, user_id) VALUES `, 2, func(i int) []any { return []any{f.GroupID, userIDs[i]} }},
		{`INSERT INTO devices (id, user_id, hardware_id, platform, os_version, model, name, activation_type, state, cert_serial, config_version, created_at, enrolled_at, activated_at, last_seen_at) VALUES `, 15, func(i int) []any {
			return []any{f.IDs[i], userIDs[i], "fleet-hw-" + f.IDs[i], "ios", "17.4", "iPhone15,2", fmt.Sprintf("phone-%d", i), "mdm", "active", serials[i], policy.EmptyVersion, now, now, now, now}
		}},
		{`INSERT INTO certificates (serial, device_id, not_before, not_after, der) VALUES `, 5, func(i int) []any {
			return []any{serials[i], f.IDs[i], now, now + int64(365*24*time.Hour/time.Microsecond), ders[i]}
		}},
		{`INSERT INTO device_push (device_id, provider, token, topic, push_magic, updated_at) VALUES `, 6, func(i int) []any {
			return []any{f.IDs[i], "apns", f.Tokens[i], FleetTopic, "", now}
		}},
	}
	for _, tb := range tables {
		for start := 0; start < n; start += seedChunk {
			end := min(start+seedChunk, n)
			var q strings.Builder
			q.WriteString(tb.head)
			args := make([]any, 0, (end-start)*tb.cols)
			for i := start; i < end; i++ {
				if i > start {
					q.WriteString(", ")
				}
				q.WriteString("(")
				for c := range tb.cols {
					if c > 0 {
						q.WriteString(", ")
					}
					if driver == "pgx" {
						fmt.Fprintf(&q, "$%d", len(args)+c+1)
					} else { // SQLite resolves $N names in quadratic time
						q.WriteString("?")
					}
				}
				q.WriteString(")")
				args = append(args, tb.row(i)...)
			}
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return nil, fmt.Errorf("seed: %w", err)
			}
		}
	}
	return f, tx.Commit()
}

// FleetTopic is the APNs topic of the fleet's agent app.
const FleetTopic = "com.example.custos.agent"

// Start runs workers simulated devices at a time against the Core at url.
// Online devices contact the Core once at start (a full handshake, which
// leaves them a TLS session ticket) and on each wake-up reconnect
// resuming that session, as a phone with a live network does: it holds no
// idle connection to the Core, its push service is its standing channel.
// Offline devices make their first contact when woken. Either way a
// device hangs up after its round trips, so open connections stay within
// workers (both ends of each are in this process).
func (f *Fleet) Start(url string, roots *x509.CertPool, workers int, online bool) error {
	f.url, f.roots, f.online = url, roots, online
	n := len(f.IDs)
	f.state = make([]atomic.Int32, n)
	f.acked = make([]atomic.Pointer[string], n)
	f.doneAt = make([]atomic.Int64, n)
	f.wake = make(chan int, n)
	f.tickets = make([]tls.ClientSessionCache, n)
	for i := range f.tickets {
		f.tickets[i] = tls.NewLRUClientSessionCache(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	if online {
		f.trs = make([]*http.Transport, n)
		for i := range f.trs {
			f.trs[i] = f.transport(i)
		}
	}
	for range workers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case i := <-f.wake:
					f.run(ctx, i)
				}
			}
		}()
	}
	if online { // connect every device once: "online"
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for i := range n {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, err := f.post(ctx, &http.Client{Transport: f.trs[i]}, wire.PathCommands, wire.CommandsRequest{DeviceID: f.IDs[i]}, &wire.CommandsResponse{}); err != nil {
					f.fail(err)
				}
				f.trs[i].CloseIdleConnections()
			}()
		}
		wg.Wait()
	}
	return f.Err()
}

// Close stops the workers and hangs up.
func (f *Fleet) Close() {
	if f.stop != nil {
		f.stop()
	}
	f.wg.Wait()
	for _, tr := range f.trs {
		tr.CloseIdleConnections()
	}
}

// Wake is what a push does to device i: if it is asleep it wakes and asks
// for its commands; if it is busy it asks again when done.
func (f *Fleet) Wake(i int) {
	for {
		switch s := f.state[i].Load(); s {
		case devIdle:
			if f.state[i].CompareAndSwap(devIdle, devQueued) {
				f.wake <- i
				return
			}
		case devRunning:
			if f.state[i].CompareAndSwap(devRunning, devAgain) {
				return
			}
		default: // queued or already marked again
			return
		}
	}
}

// WakeToken wakes the device of an APNs token (the fake provider's
// delivery); it reports whether the token is the fleet's.
func (f *Fleet) WakeToken(token string) bool {
	i, ok := f.byTok[token]
	if ok {
		f.Wake(i)
	}
	return ok
}

// Acked returns how many devices acknowledged configuration version v.
func (f *Fleet) Acked(v string) int {
	n := 0
	for i := range f.acked {
		if p := f.acked[i].Load(); p != nil && *p == v {
			n++
		}
	}
	return n
}

// DoneAt is when device i last acknowledged a command (zero: never).
func (f *Fleet) DoneAt(i int) time.Time {
	ns := f.doneAt[i].Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Err is the first error a device met, with how many there were.
func (f *Fleet) Err() error {
	f.firstMu.Lock()
	defer f.firstMu.Unlock()
	if f.first == nil {
		return nil
	}
	return fmt.Errorf("%d device errors; first: %w", f.errs.Load(), f.first)
}

func (f *Fleet) fail(err error) {
	if f.errs.Add(1) == 1 {
		f.firstMu.Lock()
		f.first = err
		f.firstMu.Unlock()
	}
}

func (f *Fleet) transport(i int) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: f.roots, Certificates: []tls.Certificate{f.certs[i]}, ClientSessionCache: f.tickets[i]},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     10 * time.Minute,
		ForceAttemptHTTP2:   false,
	}
}

func (f *Fleet) run(ctx context.Context, i int) {
	f.state[i].Store(devRunning)
	tr := (*http.Transport)(nil)
	if f.online {
		tr = f.trs[i]
	} else {
		tr = f.transport(i)
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	for {
		if err := f.session(ctx, hc, i); err != nil && ctx.Err() == nil {
			f.fail(fmt.Errorf("device %d: %w", i, err))
		}
		if f.state[i].CompareAndSwap(devRunning, devIdle) {
			return
		}
		f.state[i].Store(devRunning) // woken while busy: go again
	}
}

// session runs command round trips until idle.
func (f *Fleet) session(ctx context.Context, hc *http.Client, i int) error {
	req := wire.CommandsRequest{DeviceID: f.IDs[i]}
	for range 100 {
		var resp wire.CommandsResponse
		if _, err := f.post(ctx, hc, wire.PathCommands, req, &resp); err != nil {
			return err
		}
		if req.Result != nil && req.Result.Status == "acknowledged" {
			f.doneAt[i].Store(time.Now().UnixNano())
		}
		if resp.Idle {
			return nil
		}
		if resp.Command == nil {
			return errors.New("neither a command nor idle")
		}
		res := &wire.CommandResult{CommandID: resp.Command.ID, Status: "acknowledged"}
		if resp.Command.Type == "sync_config" {
			if err := f.sync(ctx, hc, i); err != nil {
				res.Status, res.Message = "error", err.Error()
			}
		}
		req.Result = res
	}
	return errors.New("more than 100 commands in one session")
}

// sync checks in with the version the device runs and applies and
// acknowledges a changed configuration.
func (f *Fleet) sync(ctx context.Context, hc *http.Client, i int) error {
	known := ""
	if p := f.acked[i].Load(); p != nil {
		known = *p
	}
	var cr wire.CheckinResponse
	if _, err := f.post(ctx, hc, wire.PathCheckin, wire.CheckinRequest{DeviceID: f.IDs[i], ConfigVersion: known}, &cr); err != nil {
		return err
	}
	cfg := cr.Configuration
	if cfg.Unchanged {
		return nil
	}
	ack := wire.AckRequest{DeviceID: f.IDs[i], Version: cfg.Version}
	for _, it := range cfg.Items {
		ack.Items = append(ack.Items, wire.ItemStatus{ID: it.ID, Status: "applied"})
	}
	if _, err := f.post(ctx, hc, wire.PathAck, ack, &wire.AckResponse{}); err != nil {
		return err
	}
	v := cfg.Version
	f.acked[i].Store(&v)
	return nil
}

func (f *Fleet) post(ctx context.Context, hc *http.Client, path string, in, out any) (int, error) {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, "POST", f.url+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s: %d %.200s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, json.Unmarshal(raw, out)
}

// apiClient calls the admin API.
type apiClient struct {
	url, token string
	hc         *http.Client
}

func newAPI(url, token string, roots *x509.CertPool) *apiClient {
	return &apiClient{url: url, token: token, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
}

// do sends in as JSON and decodes a 2xx answer into out (if not nil).
func (a *apiClient) do(method, path string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}
