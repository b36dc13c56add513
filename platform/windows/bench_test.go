package windows_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/bench/benchcpu"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/windows"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// inProcess is a RoundTripper that serves requests with the handler in
// this process (no sockets, no TLS), authenticating the device by a store
// read, as CertAuth does once TLS verified the chain.
type inProcess struct {
	db *sqlstore.DB
	h  http.Handler
	id string
}

func (p *inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	d, err := p.db.Device(r.Context(), p.id)
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r.WithContext(device.WithDevice(r.Context(), d)))
	return rec.Result(), nil
}

// benchDevices is how many devices the benchmark emulates.
const benchDevices = 1000

// benchParallelism × GOMAXPROCS sessions run at once.
const benchParallelism = 32

// BenchmarkSessions measures OMA-DM management sessions per second through
// the real handler (HTTP handler, SyncML decoding and encoding, session
// store, command queue, inventory) and database. One session is package 1
// (alerts 1201 and 1224, the DevInfo Replace), our answer (statuses, the
// Get of the WNS channel URI and its status, which every session re-reads,
// and in 1 session of 10 one lock command, queued inside the measured
// loop), the device's statuses and results, and our final statuses: two
// round trips. 1000 emulated devices; sessions of one device never
// overlap. The emulator's own work (building and parsing its messages)
// runs on the same cores and is counted: the figure is conservative. TLS
// is left out (a session's connection costs one handshake, ~0.4 ms of
// server CPU on this machine kind, DESIGN.md §6).
//
// It also reports the steady load of 100,000 idle enrolled devices polling
// at the enrollment's default interval (mde.DefaultPollInterval; pushes
// wake them when there is work): sessions per second, and the cores that
// load keeps busy at the measured cost per session.
func BenchmarkSessions(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) { benchSessions(b, backend) })
	}
}

func benchSessions(b *testing.B, backend string) {
	db := sqltest.Open(b, backend)
	ctx := context.Background()
	commands := &command.Service{Store: db}
	h := &windows.Handler{Devices: &device.Service{Store: db, Remover: db}, Commands: commands, Config: &policy.Service{Store: db},
		Sessions: db, Pushes: db, PFN: "Contoso.Custos_8wekyb3d8bbwe", ServerURL: "https://mdm.example" + windows.PathManagement}
	u := usertest.CreateUser(b, db, "bench").ID
	ems := make([]*wintest.Device, benchDevices)
	ids := make([]string, benchDevices)
	busy := make([]atomic.Bool, benchDevices)
	for i := range ems {
		hw := "hw-" + strconv.Itoa(i)
		d, _ := activationtest.Enroll(b, db, u, hw, activationtest.T0)
		em := &wintest.Device{URL: "https://mdm.example" + windows.PathManagement, DevID: hw, Tree: wintest.NewTree(hw, windows.ProviderID),
			HTTP: &http.Client{Transport: &inProcess{db: db, h: h, id: d.ID}}}
		em.Tree.ChannelURI = "https://db5p.notify.windows.com/?token=" + hw
		// The first session writes the PFN, stores the channel and
		// settles the first configuration.
		if err := em.Session(ctx, syncml.AlertClientInitiated); err != nil {
			b.Fatal(err)
		}
		ems[i], ids[i] = em, d.ID
	}
	var next atomic.Int64
	// Many devices are in a session at once: a session mostly waits for
	// the database (SQLite's group commit, PostgreSQL's round trips).
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	cpu0 := benchcpu.Process()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var i int
			for { // the next device no other goroutine is in a session with
				i = int(next.Add(1) % benchDevices)
				if busy[i].CompareAndSwap(false, true) {
					break
				}
			}
			if i%10 == 0 {
				if _, err := commands.Send(ctx, []string{ids[i]}, command.NewCommand{Type: command.Lock, CreatedBy: "bench"}); err != nil {
					b.Error(err)
				}
			}
			err := ems[i].Session(ctx, syncml.AlertClientInitiated)
			busy[i].Store(false)
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	cpu := benchcpu.Process() - cpu0
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cores-busy")
	// CPU time per session (handler, database driver, emulator): what the
	// session costs whatever else runs on the machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/session")
	rate := float64(b.N) / el.Seconds()
	b.ReportMetric(rate, "sessions/s")
	// 100,000 idle devices at the configured poll interval.
	idle := 100000 / mde.DefaultPollInterval.Seconds()
	b.ReportMetric(idle, "idle100k-sessions/s")
	// Cores that load keeps busy at the measured CPU cost per session.
	b.ReportMetric(idle*cpu.Seconds()/float64(b.N), "idle100k-cores")
}
