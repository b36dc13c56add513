package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	wire "github.com/custos-uem/custos/platform/agent"
)

// simSetup is a setup whose simulated device is also the agent's Applier
// and Executor.
func simSetup(t *testing.T) *setup {
	t.Helper()
	s := newSetup(t)
	s.opts = s.dev.Bind(s.opts)
	return s
}

func cmd(typ, payload string) wire.Command {
	c := wire.Command{Type: typ}
	if payload != "" {
		c.Payload = json.RawMessage(payload)
	}
	return c
}

// executions counts the simulated device's executions of id that were not
// answered "not now".
func executions(dev *sim.Device, id string) int {
	n := 0
	for _, e := range dev.Executed() {
		if e.ID == id && e.Status != agent.ResultNotNow {
			n++
		}
	}
	return n
}

func mustCommands(t *testing.T, c *agent.Client) *agent.CommandsResult {
	t.Helper()
	res, err := c.Commands(context.Background())
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	return res
}

func TestCommandsUntilIdle(t *testing.T) {
	s := simSetup(t)
	c, act := s.activate(t)
	ids := s.fc.enqueue(act.DeviceID,
		cmd("lock", ""),
		cmd("install_app", `{"app_id":"com.example.work","url":"https://apps.example.com/work.apk"}`),
		cmd("installed_apps", ""),
		cmd("device_info", ""),
		cmd("message", `{"text":"Please update today"}`),
	)
	res := mustCommands(t, c)
	if res.RoundTrips != 6 || res.Executed != 5 || res.Repeated != 0 {
		t.Fatalf("result = %+v", res)
	}
	results, dups := s.fc.commandResults()
	if len(results) != 5 || dups != 0 {
		t.Fatalf("results = %+v, duplicates %d", results, dups)
	}
	for i, r := range results {
		if r.CommandID != ids[i] || r.Status != agent.ResultAcknowledged {
			t.Errorf("result %d = %+v, want %s acknowledged", i, r, ids[i])
		}
	}
	var apps agent.InstalledAppsData
	if err := json.Unmarshal(results[2].Data, &apps); err != nil || apps.Truncated || apps.Total != len(apps.Apps) || !containsApp(apps.Apps, "com.example.work", "1.0") {
		t.Fatalf("installed_apps data: %v, %d apps, total %d, truncated %v", err, len(apps.Apps), apps.Total, apps.Truncated)
	}
	var info agent.DeviceInfoData
	if err := json.Unmarshal(results[3].Data, &info); err != nil || info.HardwareID != s.dev.HardwareID() || info.Platform != "android" || info.Info.IMEI == "" {
		t.Fatalf("device_info data: %v, %+v", err, info)
	}
	if !s.dev.Locked() || len(s.dev.Executed()) != 5 {
		t.Fatalf("device locked %v, executed %+v", s.dev.Locked(), s.dev.Executed())
	}
	if st := c.State(); st.PendingResult != nil || len(st.Commands) != 5 {
		t.Fatalf("state: pending %+v, %d remembered", st.PendingResult, len(st.Commands))
	}
	// Nothing queued: one round trip, idle.
	if res := mustCommands(t, c); res.RoundTrips != 1 || res.Executed != 0 {
		t.Fatalf("idle result = %+v", res)
	}
	// The app installed is reported at the next check-in.
	if r, err := c.Checkin(context.Background()); err != nil || !r.SoftwareSent {
		t.Fatalf("check-in after install: %+v, %v", r, err)
	}
}

// TestCommandRunOnceWhenDeliveredTwice: a command delivered again after its
// result (at-least-once delivery) is answered from memory, by this Client
// and by a new one on the same Store (a restarted agent).
func TestCommandRunOnceWhenDeliveredTwice(t *testing.T) {
	s := simSetup(t)
	c, act := s.activate(t)
	ids := s.fc.enqueue(act.DeviceID, cmd("wipe_work", ""), cmd("restart", ""))
	s.fc.set(func(fc *fakeCore) { fc.again[ids[0]] = true })
	res := mustCommands(t, c)
	if res.Executed != 2 || res.Repeated != 1 {
		t.Fatalf("result = %+v", res)
	}
	if n := executions(s.dev, ids[0]); n != 1 {
		t.Fatalf("wipe_work ran %d times", n)
	}
	got := s.fc.resultsOf(ids[0])
	if len(got) != 2 || got[0].Status != agent.ResultAcknowledged || got[0].Message != got[1].Message {
		t.Fatalf("results of the twice-delivered command = %+v", got)
	}

	// A restarted agent remembers too.
	s.fc.set(func(fc *fakeCore) { fc.queue[act.DeviceID][1].status = "pending" })
	c2 := s.client(t)
	res = mustCommands(t, c2)
	if res.Executed != 0 || res.Repeated != 1 || executions(s.dev, ids[1]) != 1 {
		t.Fatalf("after restart: result %+v, restart ran %d times", res, executions(s.dev, ids[1]))
	}
}

// TestCommandResultsReportedAfterLostAnswer: a result whose answer is lost,
// or whose request fails, is sent again — by the same Client or after a
// restart — and the command is not run again.
func TestCommandResultsReportedAfterLostAnswer(t *testing.T) {
	t.Run("ok/answer lost after the Core recorded the result", func(t *testing.T) {
		s := simSetup(t)
		c, act := s.activate(t)
		ids := s.fc.enqueue(act.DeviceID, cmd("lock", ""), cmd("wipe_work", ""))
		s.fc.set(func(fc *fakeCore) { fc.dropAnswers = 1 })
		var err error
		for range 3 {
			if _, err = c.Commands(context.Background()); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("Commands never completed: %v", err)
		}
		results, dups := s.fc.commandResults()
		if len(results) != 2 || results[0].CommandID != ids[0] || results[1].CommandID != ids[1] || dups != 1 {
			t.Fatalf("results = %+v, duplicates %d (want the lock result repeated once)", results, dups)
		}
		if executions(s.dev, ids[0]) != 1 || executions(s.dev, ids[1]) != 1 {
			t.Fatalf("executed = %+v", s.dev.Executed())
		}
	})
	t.Run("ok/request failed, result kept across a restart", func(t *testing.T) {
		s := simSetup(t)
		c, act := s.activate(t)
		ids := s.fc.enqueue(act.DeviceID, cmd("lock", ""))
		s.fc.set(func(fc *fakeCore) { fc.failResults = 1 })
		if _, err := c.Commands(context.Background()); err == nil || !strings.Contains(err.Error(), "database_unavailable") {
			t.Fatalf("Commands = %v, want the 503", err)
		}
		if st := c.State(); st.PendingResult == nil || st.PendingResult.CommandID != ids[0] {
			t.Fatalf("pending result = %+v", st.PendingResult)
		}
		c.Close()
		c2 := s.client(t)
		if res := mustCommands(t, c2); res.Executed != 0 || res.RoundTrips != 1 {
			t.Fatalf("result after restart = %+v", res)
		}
		if got := s.fc.resultsOf(ids[0]); len(got) != 1 || got[0].Status != agent.ResultAcknowledged {
			t.Fatalf("results = %+v", got)
		}
		if executions(s.dev, ids[0]) != 1 || c2.State().PendingResult != nil {
			t.Fatalf("executed %+v, pending %+v", s.dev.Executed(), c2.State().PendingResult)
		}
	})
}

// failingExecutor fails every command with err, or returns r.
type fixedExecutor struct {
	r   wire.CommandResult
	err error
}

func (f fixedExecutor) Execute(context.Context, wire.Command) (wire.CommandResult, error) {
	return f.r, f.err
}

// TestCommandResults checks the result reported for each kind of outcome:
// unsupported commands are errors (never silently acknowledged), bad
// payloads are errors, executor mistakes are caught.
func TestCommandResults(t *testing.T) {
	tests := []struct {
		name       string
		executor   func(s *setup) agent.Executor // nil: the simulated device
		cmd        wire.Command
		wantStatus string
		wantMsg    string
	}{
		{name: "fail/raw is unsupported by the simulated device", cmd: cmd("raw", `{"platform":"apple","body":{}}`),
			wantStatus: agent.ResultError, wantMsg: "raw is not supported by the simulated device"},
		{name: "fail/unknown type", cmd: cmd("self_destruct", ""),
			wantStatus: agent.ResultError, wantMsg: "self_destruct is not supported by the simulated device"},
		{name: "fail/default executor refuses restart", executor: func(*setup) agent.Executor { return nil }, cmd: cmd("restart", ""),
			wantStatus: agent.ResultError, wantMsg: "restart is not supported by this agent"},
		{name: "fail/install_app without app_id", cmd: cmd("install_app", `{"url":"https://x.example/a"}`),
			wantStatus: agent.ResultError, wantMsg: "the payload names no app_id"},
		{name: "fail/install_app over plain http", cmd: cmd("install_app", `{"app_id":"a.b","url":"http://x.example/a"}`),
			wantStatus: agent.ResultError, wantMsg: "must be https://"},
		{name: "fail/remove_app of an app not installed", cmd: cmd("remove_app", `{"app_id":"com.example.none"}`),
			wantStatus: agent.ResultError, wantMsg: "com.example.none is not installed"},
		{name: "fail/message without text", cmd: cmd("message", `{"text":"  "}`),
			wantStatus: agent.ResultError, wantMsg: "the message has no text"},
		{name: "fail/executor returns no status",
			executor: func(*setup) agent.Executor { return fixedExecutor{r: wire.CommandResult{Status: "done"}} },
			cmd:      cmd("lock", ""), wantStatus: agent.ResultError, wantMsg: "no valid status"},
		{name: "fail/executor returns data that is not JSON",
			executor: func(*setup) agent.Executor {
				return fixedExecutor{r: wire.CommandResult{Status: agent.ResultAcknowledged, Data: json.RawMessage("{nope")}}
			},
			cmd: cmd("lock", ""), wantStatus: agent.ResultError, wantMsg: "not JSON"},
		{name: "fail/executor message cut to the limit",
			executor: func(*setup) agent.Executor { return fixedExecutor{err: errors.New(strings.Repeat("é", 2000))} },
			cmd:      cmd("lock", ""), wantStatus: agent.ResultError, wantMsg: "éé"},
		{name: "ok/default executor answers device_info", executor: func(*setup) agent.Executor { return nil }, cmd: cmd("device_info", ""),
			wantStatus: agent.ResultAcknowledged},
		{name: "ok/set_password", cmd: cmd("set_password", `{"password":"S3cret!"}`), wantStatus: agent.ResultAcknowledged, wantMsg: "password set"},
		{name: "ok/remove_app of an installed app", cmd: cmd("remove_app", `{"app_id":"com.android.chrome"}`),
			wantStatus: agent.ResultAcknowledged, wantMsg: "removed com.android.chrome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			if tt.executor != nil {
				s.opts.Executor = tt.executor(s)
			}
			s.opts = s.dev.Bind(s.opts)
			if tt.executor != nil && s.opts.Executor == agent.Executor(s.dev) {
				s.opts.Executor = tt.executor(s) // nil: the Client's default
			}
			c, act := s.activate(t)
			ids := s.fc.enqueue(act.DeviceID, tt.cmd)
			mustCommands(t, c)
			got := s.fc.resultsOf(ids[0])
			if len(got) != 1 || got[0].Status != tt.wantStatus || !strings.Contains(got[0].Message, tt.wantMsg) {
				t.Fatalf("results = %+v\nwant status %s, message containing %q", got, tt.wantStatus, tt.wantMsg)
			}
			if len(got[0].Message) > 1024 {
				t.Fatalf("message of %d bytes", len(got[0].Message))
			}
		})
	}
}

func TestCommandNotNow(t *testing.T) {
	s := simSetup(t)
	c, act := s.activate(t)
	ids := s.fc.enqueue(act.DeviceID, cmd("lock", ""))
	s.dev.SetBusy("the user is in a call")
	mustCommands(t, c)
	got := s.fc.resultsOf(ids[0])
	if len(got) != 1 || got[0].Status != agent.ResultNotNow || got[0].Message != "the user is in a call" || s.dev.Locked() {
		t.Fatalf("results = %+v, locked %v", got, s.dev.Locked())
	}
	// Held by the Core: nothing due.
	if res := mustCommands(t, c); res.Executed != 0 {
		t.Fatalf("a held command was delivered: %+v", res)
	}
	// Resent later it runs: a not-now answer is not remembered as done.
	s.dev.SetBusy("")
	s.fc.release(act.DeviceID)
	if res := mustCommands(t, c); res.Executed != 1 || res.Repeated != 0 {
		t.Fatalf("result = %+v", res)
	}
	got = s.fc.resultsOf(ids[0])
	if len(got) != 2 || got[1].Status != agent.ResultAcknowledged || !s.dev.Locked() {
		t.Fatalf("results = %+v, locked %v", got, s.dev.Locked())
	}
}

// failApplier fails entirely from configuration v2 on.
type failApplier struct{}

func (failApplier) Apply(_ context.Context, _, next wire.Configuration) ([]wire.ItemStatus, error) {
	if next.Version == "v1" {
		return nil, nil
	}
	return nil, errors.New("the policy engine is down")
}

func TestSyncConfig(t *testing.T) {
	item := wire.Item{ID: "p1", Kind: "it_policy", Name: "Screen lock", Revision: 2, Payload: map[string]any{"screen_lock_timeout_seconds": 300.0}}
	tests := []struct {
		name       string
		applier    agent.Applier
		wantStatus string
		wantMsg    string
		wantAck    bool
	}{
		{name: "fail/applier fails entirely", applier: failApplier{}, wantStatus: agent.ResultError,
			wantMsg: `apply configuration "v2": the policy engine is down`},
		{name: "ok/configuration fetched, applied and acknowledged", wantStatus: agent.ResultAcknowledged,
			wantMsg: "configuration v2 applied", wantAck: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			s.opts.Applier = tt.applier
			s.opts = s.dev.Bind(s.opts)
			c, act := s.activate(t)
			s.fc.set(func(fc *fakeCore) {
				fc.config = wire.Configuration{Version: "v2", PollSeconds: 600, Items: []wire.Item{item}}
			})
			checkinsBefore, acksBefore := s.fc.recorded()
			ids := s.fc.enqueue(act.DeviceID, cmd("sync_config", ""))
			res := mustCommands(t, c)
			if res.Executed != 1 {
				t.Fatalf("result = %+v", res)
			}
			checkins, acks := s.fc.recorded()
			if len(checkins) != len(checkinsBefore)+1 || checkins[len(checkins)-1].ConfigVersion != "v1" {
				t.Fatalf("sync_config did not check in with the version it runs: %+v", checkins[len(checkinsBefore):])
			}
			got := s.fc.resultsOf(ids[0])
			if len(got) != 1 || got[0].Status != tt.wantStatus || got[0].Message != tt.wantMsg {
				t.Fatalf("results = %+v, want %s %q", got, tt.wantStatus, tt.wantMsg)
			}
			if (len(acks) == len(acksBefore)+1) != tt.wantAck {
				t.Fatalf("acknowledgments %d → %d", len(acksBefore), len(acks))
			}
			if tt.wantAck {
				if applied := s.dev.Applied(); len(applied) != 1 || applied[0].ID != "p1" || applied[0].Revision != 2 {
					t.Fatalf("applied = %+v", applied)
				}
				var data struct {
					Version string            `json:"version"`
					Items   []wire.ItemStatus `json:"items"`
				}
				if err := json.Unmarshal(got[0].Data, &data); err != nil || data.Version != "v2" || len(data.Items) != 1 || data.Items[0].Status != agent.StatusApplied {
					t.Fatalf("data = %s (%v)", got[0].Data, err)
				}
			}
		})
	}
}

// TestUnchangedConfigurationKept: the device sends the version it runs; an
// "unchanged" answer carries no items and the device keeps its own,
// re-acknowledging them when the Core reports it not active.
func TestUnchangedConfigurationKept(t *testing.T) {
	s := simSetup(t)
	items := []wire.Item{{ID: "p1", Kind: "it_policy", Payload: map[string]any{"camera": false}}}
	s.fc.set(func(fc *fakeCore) { fc.config.Items = items })
	c, act := s.activate(t)
	res, err := c.Checkin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkins, acks := s.fc.recorded()
	if !res.Unchanged || res.Acknowledged || checkins[len(checkins)-1].ConfigVersion != "v1" {
		t.Fatalf("result = %+v, sent version %q", res, checkins[len(checkins)-1].ConfigVersion)
	}
	if st := c.State(); len(st.ConfigItems) != 1 || st.ConfigItems[0].ID != "p1" || len(s.dev.Applied()) != 1 {
		t.Fatalf("items lost: state %+v, applied %+v", st.ConfigItems, s.dev.Applied())
	}
	// Not active on the Core: acknowledged again, with the kept items.
	s.fc.set(func(fc *fakeCore) { fc.devices[act.DeviceID].state = "enrolled" })
	res, err = c.Checkin(context.Background())
	if err != nil || !res.Unchanged || !res.Acknowledged || len(res.Items) != 1 {
		t.Fatalf("result = %+v, %v", res, err)
	}
	if _, acks2 := s.fc.recorded(); len(acks2) != len(acks)+1 || acks2[len(acks2)-1].Items[0].ID != "p1" {
		t.Fatalf("acks = %+v", acks2)
	}
	// An "unchanged" for a version the device does not run is refused.
	if st := c.State(); st.ConfigVersion != "v1" {
		t.Fatalf("version %q", st.ConfigVersion)
	}
}

func TestPushRegisteredOnce(t *testing.T) {
	s := newSetup(t)
	ios, err := sim.New("ios", 5)
	if err != nil {
		t.Fatal(err)
	}
	s.dev = ios
	s.opts.Collector = ios
	s.opts.PushProvider, s.opts.PushToken, s.opts.PushTopic = ios.FakePush()
	c, _ := s.activate(t)
	if c.Listening() {
		t.Fatal("a device with a push token holds the long poll open by default")
	}
	c.Checkin(context.Background())
	c.Checkin(context.Background())
	checkins, _ := s.fc.recorded()
	var pushes []wire.PushRegistration
	for _, ci := range checkins {
		if ci.Push != nil {
			pushes = append(pushes, *ci.Push)
		}
	}
	if len(pushes) != 1 || pushes[0].Provider != "apns" || len(pushes[0].Token) != 64 || !strings.HasPrefix(pushes[0].Topic, "com.apple.mgmt.External.") {
		t.Fatalf("push registrations = %+v", pushes)
	}
	// A new token (the OS rotated it) is registered once more.
	s.opts.PushToken = strings.Repeat("ab", 32)
	c2 := s.client(t)
	if res, err := c2.Checkin(context.Background()); err != nil || !res.PushRegistered {
		t.Fatalf("check-in with a new token: %+v, %v", res, err)
	}
	if res, err := c2.Checkin(context.Background()); err != nil || res.PushRegistered {
		t.Fatalf("check-in after: %+v, %v", res, err)
	}

	t.Run("fail/unknown provider", func(t *testing.T) {
		_, err := agent.New(agent.Options{Store: agent.NewMemStore(), PushProvider: "pager", PushToken: "x"})
		if err == nil || !strings.Contains(err.Error(), `push provider "pager"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestPushRegisteredAgainWhenTheCoreForgot: the Core drops a token its
// provider declared gone and says so (push_registered false); the agent
// registers again at its next check-in, once.
func TestPushRegisteredAgainWhenTheCoreForgot(t *testing.T) {
	s := newSetup(t)
	ios, err := sim.New("ios", 6)
	if err != nil {
		t.Fatal(err)
	}
	s.dev = ios
	s.opts.Collector = ios
	s.opts.PushProvider, s.opts.PushToken, s.opts.PushTopic = ios.FakePush()
	c, _ := s.activate(t)
	s.fc.mu.Lock()
	for _, d := range s.fc.devices {
		d.push = nil // the provider said 410
	}
	s.fc.mu.Unlock()
	for range 3 {
		if _, err := c.Checkin(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	checkins, _ := s.fc.recorded()
	var with []int
	for i, ci := range checkins {
		if ci.Push != nil {
			with = append(with, i)
		}
	}
	// Activation's check-in registered; the first check-in after the drop
	// learns it; the next one registers again; the last sends nothing.
	if len(with) != 2 || with[1] != len(checkins)-2 {
		t.Fatalf("check-ins with a push registration: %v of %d", with, len(checkins))
	}
}

// gateClock blocks each Sleep until the test releases it (or the context
// ends), so that a test knows where Run is.
type gateClock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
	blocked int
	release chan struct{}
}

func newGateClock() *gateClock { return &gateClock{now: time.Now(), release: make(chan struct{})} }

func (g *gateClock) Now() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

func (g *gateClock) Sleep(ctx context.Context, d time.Duration) error {
	g.mu.Lock()
	g.sleeps = append(g.sleeps, d)
	g.blocked++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.blocked--
		g.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.release:
		g.mu.Lock()
		g.now = g.now.Add(d)
		g.mu.Unlock()
		return nil
	}
}

func (g *gateClock) sleeping() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked
}

// releaseOne ends one blocked Sleep.
func (g *gateClock) releaseOne(t *testing.T) {
	t.Helper()
	select {
	case g.release <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing sleeps")
	}
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRun runs c.Run until the test ends, then checks it returned nil.
func startRun(t *testing.T, c *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	})
}

func (fc *fakeCore) counts() (checkins, cmdRequests, waits, waiting int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.checkins), fc.cmdRequests, fc.waits, fc.waiting
}

// TestRunWaitPendingRunsCommands: between check-ins an hour apart, the long
// poll's "pending" runs the command at once.
func TestRunWaitPendingRunsCommands(t *testing.T) {
	s := simSetup(t)
	gc := newGateClock()
	s.opts.Clock, s.opts.PollInterval = gc, time.Hour
	c, act := s.activate(t)
	if !c.Listening() {
		t.Fatal("a device without push does not listen by default")
	}
	startRun(t, c)
	eventually(t, "the long poll", func() bool { _, _, _, waiting := s.fc.counts(); return waiting == 1 && gc.sleeping() == 1 })
	ids := s.fc.enqueue(act.DeviceID, cmd("lock", ""))
	eventually(t, "the lock result", func() bool { return len(s.fc.resultsOf(ids[0])) == 1 })
	if checkins, _, _, _ := s.fc.counts(); checkins != 2 { // activation + Run's first
		t.Fatalf("%d check-ins: the command waited for a check-in", checkins)
	}
	// And it listens again.
	eventually(t, "the next long poll", func() bool { _, _, waits, waiting := s.fc.counts(); return waits == 2 && waiting == 1 })
}

// TestRunWakeRunsCommands: with the long poll off, a push wake-up runs the
// command at once.
func TestRunWakeRunsCommands(t *testing.T) {
	s := simSetup(t)
	gc := newGateClock()
	s.opts.Clock, s.opts.PollInterval, s.opts.Wait = gc, time.Hour, agent.WaitNever
	c, act := s.activate(t)
	s.dev.Attach(c)
	startRun(t, c)
	eventually(t, "Run idle", func() bool { _, reqs, _, _ := s.fc.counts(); return reqs == 1 && gc.sleeping() == 1 })
	ids := s.fc.enqueue(act.DeviceID, cmd("device_info", ""))
	if !s.dev.Wake() {
		t.Fatal("no Client attached")
	}
	eventually(t, "the device_info result", func() bool { return len(s.fc.resultsOf(ids[0])) == 1 })
	checkins, _, waits, _ := s.fc.counts()
	if checkins != 2 || waits != 0 {
		t.Fatalf("%d check-ins, %d long polls", checkins, waits)
	}
}

// TestRunWaitNotOffered: an older Core answers 404 on /wait; the agent
// stops asking and goes on polling.
func TestRunWaitNotOffered(t *testing.T) {
	s := simSetup(t)
	gc := newGateClock()
	s.opts.Clock = gc
	s.fc.set(func(fc *fakeCore) { fc.noWait = true })
	c, _ := s.activate(t)
	startRun(t, c)
	eventually(t, "the refused long poll", func() bool { _, _, waits, _ := s.fc.counts(); return waits == 1 && !c.Listening() })
	for round := 3; round <= 4; round++ {
		gc.releaseOne(t) // the poll interval ends
		eventually(t, "the next check-in", func() bool { n, _, _, _ := s.fc.counts(); return n == round && gc.sleeping() == 1 })
	}
	if _, _, waits, _ := s.fc.counts(); waits != 1 {
		t.Fatalf("%d long polls after the 404", waits)
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, d := range gc.sleeps {
		if d < 500*time.Second { // the Core's 600 s ±10 %: no backoff
			t.Fatalf("sleeps %v: a backoff", gc.sleeps)
		}
	}
}

// TestRunCommandsNotOffered: a Core without the command channel is polled
// as before, without backoff.
func TestRunCommandsNotOffered(t *testing.T) {
	s := simSetup(t)
	s.opts.Wait = agent.WaitNever
	c, _ := s.activate(t)
	s.fc.set(func(fc *fakeCore) { fc.noCommands = true })
	if _, err := c.Commands(context.Background()); !errors.Is(err, agent.ErrNotOffered) {
		t.Fatalf("Commands = %v, want ErrNotOffered", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.clock.cancel, s.clock.stopAfter = cancel, 3
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.clock.slept() {
		if d < 500*time.Second {
			t.Fatalf("sleeps %v: a backoff", s.clock.slept())
		}
	}
}

// TestCommandsRefused: a removed device is told so on the command channel
// too, and the refusal is recorded.
func TestCommandsRefused(t *testing.T) {
	s := simSetup(t)
	c, act := s.activate(t)
	s.fc.set(func(fc *fakeCore) { fc.refuseHTTP = true })
	s.fc.revoke(act.DeviceID)
	if _, err := c.Commands(context.Background()); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "commands refused") {
		t.Fatalf("Commands = %v", err)
	}
	if st := c.State(); st.State != agent.StateRefused {
		t.Fatalf("state = %q", st.State)
	}
}
