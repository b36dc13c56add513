package bench

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/bench/benchcpu"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/platform/apple/appletest"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// appleDevices is how many emulated devices run round trips at once.
const appleDevices = 64

// appleFleet is emulated Apple devices enrolled in one MDM server, each
// with its Idle report signed ahead of time.
type appleFleet struct {
	devs     []*appletest.Device
	idle     []string // Mdm-Signature of each device's Idle report
	idleBody [][]byte
	// enqueue queues k DeviceLock commands for every device and returns
	// their UUIDs per device.
	enqueue func(b *testing.B, k int) [][]string
}

// BenchmarkAppleRoundTrips measures Apple MDM command round trips per
// second (a device reports Idle or a result and receives its next command
// in the same answer) with 64 concurrent emulated devices, against the
// Core on PostgreSQL and, in the same run, NanoMDM v0.9.0's own server on
// the same PostgreSQL (its own database). Both see identical traffic:
// RSA-2048 identity certificates, an Mdm-Signature on every request
// (signed before the timer starts, so the emulator's signing is not
// measured), DeviceLock commands queued ahead and acknowledged. The Core
// serves HTTPS (connections kept alive), NanoMDM plain HTTP, as each is
// deployed (NanoMDM expects a TLS-terminating proxy in front). Goal on
// the 2-core machine: ≥ 3,000 round trips/s and ≥ 2× NanoMDM.
func BenchmarkAppleRoundTrips(b *testing.B) {
	if len(sqltest.Backends(b)) < 2 {
		b.Fatal("BenchmarkAppleRoundTrips needs PostgreSQL: set CUSTOS_TEST_POSTGRES")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	custos := custosFleet(b, key)
	nano := nanoFleet(b, key)
	b.Run("custos", func(b *testing.B) { runAppleFleet(b, custos, key) })
	b.Run("nanomdm", func(b *testing.B) { runAppleFleet(b, nano, key) })
}

func custosFleet(b *testing.B, key crypto.Signer) *appleFleet {
	m := core.NewMain(core.Config{
		DataDir: b.TempDir(), Database: sqltest.DSN(b, "postgres"), Listen: "127.0.0.1:0", ActivationRate: -1,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		PushSender:         push.SenderFunc(func(context.Context, push.Target) error { return nil }),
		ComplianceInterval: -1, ExpiryInterval: -1,
	})
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(m.CA.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: appleDevices}}
	f := &appleFleet{}
	ids := make([]string, appleDevices)
	for i := range appleDevices {
		idn, err := appletest.NewIdentityKey(ctx, m.Activation, m.DB, activation.IOS, key)
		if err != nil {
			b.Fatal(err)
		}
		d := &appletest.Device{UDID: appletest.NewUDID(), Cert: idn.Cert, Key: key, BaseURL: m.URL(), Client: client}
		if err := d.Enroll(ctx); err != nil {
			b.Fatal(err)
		}
		// Answer what enrollment queued.
		for c, _, err := d.Idle(ctx); c != nil || err != nil; c, _, err = d.Answer(ctx, c, apple.StatusAcknowledged, nil) {
			if err != nil {
				b.Fatal(err)
			}
		}
		f.devs = append(f.devs, d)
		ids[i] = idn.DeviceID
	}
	f.enqueue = func(b *testing.B, k int) [][]string {
		uuids := make([][]string, appleDevices)
		for range k {
			cs, err := m.Commands.Send(ctx, ids, command.NewCommand{Type: command.Lock, CreatedBy: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			for i, c := range cs {
				uuids[i] = append(uuids[i], c.ID)
			}
		}
		return uuids
	}
	f.signIdle(b)
	return f
}

// nanoFleet starts NanoMDM on its own PostgreSQL database with its
// schema, and enrolls the devices (certificates from a CA of the test,
// which NanoMDM is told to trust).
func nanoFleet(b *testing.B, key crypto.Signer) *appleFleet {
	ctx := context.Background()
	bin := appletest.MustBuildNanoMDM(b)
	dsn := sqltest.DSN(b, "postgres")
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	dbName := "nanomdm_bench_" + strings.ReplaceAll(id.New(), "-", "")[:12]
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		a, err := sql.Open("pgx", dsn)
		if err == nil {
			a.Exec("DROP DATABASE IF EXISTS " + dbName + " WITH (FORCE)")
			a.Close()
		}
	})
	nanoDSN := fmt.Sprintf("postgres://postgres@127.0.0.1:5432/%s?sslmode=disable", dbName)
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		b.Fatal(err)
	}
	schema := filepath.Join(strings.TrimSpace(string(gomodcache)), "github.com/micromdm/nanomdm@v0.9.0/storage/pgsql/schema.sql")
	if out, err := exec.Command("psql", "-q", "-v", "ON_ERROR_STOP=1", nanoDSN, "-f", schema).CombinedOutput(); err != nil {
		b.Fatalf("load NanoMDM's schema: %v\n%s", err, out)
	}
	ca, err := newTestCA()
	if err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const apiKey = "bench-api-key"
	cmd := exec.Command(bin, "-storage", "pgsql", "-storage-dsn", nanoDSN, "-listen", addr, "-ca", caFile, "-api", apiKey, "-checkin")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(base + "/version"); err == nil {
			res.Body.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			b.Fatal("NanoMDM did not start")
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: appleDevices}}
	f := &appleFleet{}
	udids := make([]string, appleDevices)
	for i := range appleDevices {
		udid := appletest.NewUDID()
		cert, err := ca.issue(udid, key.Public())
		if err != nil {
			b.Fatal(err)
		}
		d := &appletest.Device{UDID: udid, Cert: cert, Key: key, BaseURL: base, Client: client, CheckinPath: "/checkin", ServerPath: "/mdm"}
		if err := d.Enroll(ctx); err != nil {
			b.Fatal(err)
		}
		f.devs = append(f.devs, d)
		udids[i] = udid
	}
	f.enqueue = func(b *testing.B, k int) [][]string {
		uuids := make([][]string, appleDevices)
		for range k {
			u := strings.ToUpper(id.New())
			body, _ := plist.Marshal(map[string]any{"CommandUUID": u, "Command": map[string]any{"RequestType": "DeviceLock"}})
			req, _ := http.NewRequest(http.MethodPut, base+"/v1/enqueue/"+strings.Join(udids, ",")+"?nopush=1", bytes.NewReader(body))
			req.SetBasicAuth("nanomdm", apiKey)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("NanoMDM enqueue: %d %s", res.StatusCode, out)
			}
			for i := range uuids {
				uuids[i] = append(uuids[i], u)
			}
		}
		return uuids
	}
	f.signIdle(b)
	return f
}

func (f *appleFleet) signIdle(b *testing.B) {
	f.idle = make([]string, len(f.devs))
	f.idleBody = make([][]byte, len(f.devs))
	for i, d := range f.devs {
		body, _ := plist.Marshal(map[string]any{"UDID": d.UDID, "Status": apple.StatusIdle})
		sig, err := appletest.Sign(d.Cert, d.Key, body)
		if err != nil {
			b.Fatal(err)
		}
		f.idle[i], f.idleBody[i] = sig, body
	}
}

type signed struct {
	body []byte
	sig  string
}

// runAppleFleet queues b.N/devices commands per device, signs every
// device's acknowledgments, then times the devices draining their queues:
// Idle, then one acknowledgment per command, each answered with the next
// command, the last with an empty body.
func runAppleFleet(b *testing.B, f *appleFleet, key crypto.Signer) {
	k := max(1, b.N/len(f.devs))
	uuids := f.enqueue(b, k)
	acks := make([]map[string]signed, len(f.devs))
	var wg sync.WaitGroup
	var signErr atomic.Pointer[error]
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(f.devs); i += workers {
				d := f.devs[i]
				acks[i] = make(map[string]signed, k)
				for _, u := range uuids[i] {
					body, _ := plist.Marshal(map[string]any{"UDID": d.UDID, "Status": apple.StatusAcknowledged, "CommandUUID": u})
					sig, err := appletest.Sign(d.Cert, key, body)
					if err != nil {
						signErr.Store(&err)
						return
					}
					acks[i][u] = signed{body, sig}
				}
			}
		}()
	}
	wg.Wait()
	if p := signErr.Load(); p != nil {
		b.Fatal(*p)
	}
	ctx := context.Background()
	var trips, fails atomic.Int64
	var first atomic.Pointer[string]
	fail := func(msg string) {
		fails.Add(1)
		first.CompareAndSwap(nil, &msg)
	}
	b.ResetTimer()
	start, cpu0, busy0 := time.Now(), benchcpu.Process(), benchcpu.Machine()
	for i, d := range f.devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := signed{f.idleBody[i], f.idle[i]}
			for n := 0; ; n++ {
				c, st, err := d.ReportSigned(ctx, next.body, next.sig)
				trips.Add(1)
				if err != nil || st != http.StatusOK {
					fail(fmt.Sprintf("device %d: HTTP %d, %v", i, st, err))
					return
				}
				if c == nil {
					if n != k {
						fail(fmt.Sprintf("device %d: the session ended after %d commands, want %d", i, n, k))
					}
					return
				}
				var ok bool
				if next, ok = acks[i][c.UUID]; !ok {
					fail(fmt.Sprintf("device %d: an unexpected command %s %s", i, c.UUID, c.RequestType))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu, busy := time.Since(start), benchcpu.Process()-cpu0, benchcpu.Machine()-busy0
	b.StopTimer()
	if fails.Load() > 0 {
		b.Fatalf("%d devices failed; first: %s", fails.Load(), *first.Load())
	}
	n := float64(trips.Load())
	b.ReportMetric(n/elapsed.Seconds(), "roundtrips/s")
	// Where a round trip's time goes: this process (the emulated devices,
	// and the Core in its run) and every other process of the machine (the
	// database server, and NanoMDM in its run).
	b.ReportMetric(cpu.Seconds()*1e6/n, "µs-cpu-here/op")
	if busy > 0 {
		b.ReportMetric(max(0, (busy-cpu).Seconds())*1e6/n, "µs-cpu-elsewhere/op")
	}
}

// testCA is a CA for NanoMDM's devices.
type testCA struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
	pem  []byte
}

func newTestCA() (*testCA, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: bigSerial(), Subject: pkix.Name{CommonName: "bench device CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (ca *testCA) issue(cn string, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: bigSerial(), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func bigSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
