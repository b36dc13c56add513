package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// fleet is simulated iOS devices whose agents are woken by the fake APNs:
// a push the Core sends reaches the device it names, as Apple's would.
type fleet struct {
	e       *env
	apns    *apnstest.Server
	mu      sync.Mutex
	byToken map[string]*sim.Device
	// poll is the agents' check-in interval: an hour unless a test wants
	// polling to matter.
	poll time.Duration
}

const agentTopic = "com.example.custos.agent"

func newFleetEnv(t *testing.T, backend string) *fleet {
	t.Helper()
	fake := apnstest.NewServer(t, apnstest.Options{})
	client, err := apns.New(apns.Config{Certificate: fake.ClientCertificate(t, agentTopic),
		URL: fake.URL, RootCAs: fake.RootCAs(), Topic: agentTopic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sender := push.NewRouter(map[string]push.Sender{push.APNs: client}, nil)
	f := &fleet{apns: fake, byToken: map[string]*sim.Device{}, poll: time.Hour}
	f.e = newEnvWith(t, backend, func(c *core.Config) { c.PushSender = sender })
	fake.OnPush(func(n apnstest.Notification) {
		f.mu.Lock()
		d := f.byToken[n.Token]
		f.mu.Unlock()
		if d != nil {
			d.Wake()
		}
	})
	return f
}

// member is one activated simulated device and its agent.
type member struct {
	dev      *sim.Device
	c        *agent.Client
	deviceID string
	token    string
	stop     context.CancelFunc
	done     chan error
}

// activate enrolls a simulated iPhone for the user; it polls only once an
// hour, so anything it does sooner came through a push.
func (f *fleet) activate(login, password string, seed uint64) *member {
	e := f.e
	e.t.Helper()
	dev, err := sim.New("ios", seed)
	if err != nil {
		e.t.Fatal(err)
	}
	// The topic is the agent app's, which the push certificate covers.
	provider, token, _ := dev.FakePush()
	topic := agentTopic
	opts := dev.Bind(agent.Options{ServerURL: e.m.URL(), ServerCAs: e.roots, Store: agent.NewMemStore(),
		PollInterval: f.poll, Wait: agent.WaitNever, PushProvider: provider, PushToken: token, PushTopic: topic})
	c, err := agent.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	dev.Attach(c)
	a, err := c.Activate(context.Background(), login, password)
	if err != nil {
		e.t.Fatalf("activate %s: %v", login, err)
	}
	f.mu.Lock()
	f.byToken[token] = dev
	f.mu.Unlock()
	return &member{dev: dev, c: c, deviceID: a.DeviceID, token: token}
}

func (m *member) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan error, 1)
	go func() { m.done <- m.c.Run(ctx) }()
	t.Cleanup(m.halt)
}

func (m *member) halt() {
	if m.stop != nil {
		m.stop()
		<-m.done
		m.stop = nil
	}
}

type configOut struct {
	Version  string `json:"version"`
	UpToDate bool   `json:"up_to_date"`
	Items    []struct {
		ID       string         `json:"id"`
		Status   string         `json:"status"`
		Revision int            `json:"revision"`
		Payload  map[string]any `json:"payload"`
	} `json:"items"`
}

func (e *env) configuration(deviceID string) configOut {
	e.t.Helper()
	var c configOut
	if st := e.api("GET", "/api/v1/devices/"+deviceID+"/configuration", nil, &c); st != 200 {
		e.t.Fatalf("configuration of %s: %d", deviceID, st)
	}
	return c
}

// eventually retries cond until it holds or 20 seconds pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after 20s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type commandOut struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// TestPolicyChangeReachesDevicesThroughPush is the end-to-end test:
// an administrator changes a policy; the devices it reaches (and only
// those) get a push through the fake APNs, their agents ask for their
// commands, fetch, apply and acknowledge the configuration, and the API
// shows the new state. Then: a lock outranks a device-information request
// queued before it, and a cancelled command is never delivered.
func TestPolicyChangeReachesDevicesThroughPush(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := newFleetEnv(t, backend)
			e := f.e
			var group struct {
				ID string `json:"id"`
			}
			if st := e.api("POST", "/api/v1/groups", map[string]string{"name": "sales"}, &group); st != 201 {
				t.Fatalf("create group: %d", st)
			}
			var members []*member
			for i := range 3 {
				u, pw := e.mustUser(fmt.Sprintf("user%d@example.com", i))
				if i < 2 {
					if st := e.api("POST", "/api/v1/groups/"+group.ID+"/members", map[string]string{"user_id": u.ID}, nil); st != 204 {
						t.Fatalf("add member: %d", st)
					}
				}
				m := f.activate(u.Email, pw, uint64(100+i))
				m.run(t)
				members = append(members, m)
			}
			inGroup, outside := members[:2], members[2]

			var pol struct {
				ID string `json:"id"`
			}
			settings := map[string]any{"password_required": true, "password_min_length": 8, "screen_lock_timeout_seconds": 300}
			if st := e.api("POST", "/api/v1/policies", map[string]any{"name": "Sales phones", "kind": "it_policy", "rank": 1, "settings": settings}, &pol); st != 201 {
				t.Fatalf("create policy: %d", st)
			}
			if st := e.api("POST", "/api/v1/policies/"+pol.ID+"/assignments", map[string]string{"target_kind": "group", "target_id": group.ID}, nil); st != 201 && st != 204 {
				t.Fatalf("assign policy: %d", st)
			}

			applied := func(m *member, minLen float64) func() (bool, string) {
				return func() (bool, string) {
					c := e.configuration(m.deviceID)
					ok := c.UpToDate && len(c.Items) == 1 && c.Items[0].ID == pol.ID && c.Items[0].Status == "applied" &&
						c.Items[0].Payload["password_min_length"] == minLen
					return ok, fmt.Sprintf("%+v", c)
				}
			}
			for _, m := range inGroup {
				eventually(t, "policy applied on "+m.deviceID, applied(m, 8))
				got := m.dev.Applied()
				if len(got) != 1 || got[0].ID != pol.ID || got[0].Payload["password_min_length"] != float64(8) {
					t.Fatalf("device %s applied %+v", m.deviceID, got)
				}
			}
			// The push went through the provider to the group's devices only.
			pushed := map[string]bool{}
			for _, n := range f.apns.Delivered() {
				pushed[n.Token] = true
			}
			for _, m := range inGroup {
				if !pushed[m.token] {
					t.Errorf("device %s was not pushed", m.deviceID)
				}
			}
			if pushed[outside.token] {
				t.Errorf("device %s outside the group was pushed", outside.deviceID)
			}
			if c := e.configuration(outside.deviceID); len(c.Items) != 0 {
				t.Errorf("device outside the group has items: %+v", c)
			}

			// A change of the policy reaches the devices again.
			settings["password_min_length"] = 12
			if st := e.api("PATCH", "/api/v1/policies/"+pol.ID, map[string]any{"settings": settings}, nil); st != 200 {
				t.Fatalf("update policy: %d", st)
			}
			for _, m := range inGroup {
				eventually(t, "policy change applied on "+m.deviceID, applied(m, 12))
			}

			// Lock outranks a device-information request queued before it.
			// The device is offline while both are queued.
			o := outside
			o.halt()
			var info, lock, restart commandOut
			if st := e.api("POST", "/api/v1/devices/"+o.deviceID+"/commands", map[string]string{"type": "device_info"}, &info); st != 201 {
				t.Fatalf("send device_info: %d", st)
			}
			if st := e.api("POST", "/api/v1/devices/"+o.deviceID+"/commands", map[string]string{"type": "lock"}, &lock); st != 201 {
				t.Fatalf("send lock: %d", st)
			}
			// A cancelled command is never delivered.
			if st := e.api("POST", "/api/v1/devices/"+o.deviceID+"/commands", map[string]string{"type": "restart"}, &restart); st != 201 {
				t.Fatalf("send restart: %d", st)
			}
			if st := e.api("POST", "/api/v1/commands/"+restart.ID+"/cancel", nil, nil); st != 200 {
				t.Fatalf("cancel restart: %d", st)
			}
			if _, err := o.c.Commands(context.Background()); err != nil {
				t.Fatal(err)
			}
			var order []string
			for _, x := range o.dev.Executed() {
				order = append(order, x.Type)
			}
			if !slices.Equal(order, []string{"lock", "device_info"}) {
				t.Fatalf("the offline device ran %v, want [lock device_info] (lock first, restart cancelled)", order)
			}
			if !o.dev.Locked() {
				t.Error("the device is not locked")
			}
			var history struct {
				Items []commandOut `json:"items"`
			}
			if st := e.api("GET", "/api/v1/devices/"+o.deviceID+"/commands?status=final", nil, &history); st != 200 {
				t.Fatalf("history: %d", st)
			}
			want := map[string]string{info.ID: "acknowledged", lock.ID: "acknowledged", restart.ID: "cancelled"}
			for _, c := range history.Items {
				if w, ok := want[c.ID]; ok && c.Status != w {
					t.Errorf("command %s (%s) is %s, want %s", c.ID, c.Type, c.Status, w)
				}
				delete(want, c.ID)
			}
			if len(want) != 0 {
				t.Errorf("missing from the history: %v", want)
			}
			// device_info carried the inventory back.
			var got struct {
				Result json.RawMessage `json:"result"`
			}
			e.api("GET", "/api/v1/commands/"+info.ID, nil, &got)
			if len(got.Result) < 10 {
				t.Errorf("device_info result: %s", got.Result)
			}
		})
	}
}

// TestFailedPushLosesNoCommand: a provider that fails every push for one
// device (5xx after the retries) and answers 410 Unregistered for another
// loses neither device its command: both get it at their next scheduled
// check-in. The unregistered token is dropped (that device is reached by
// polling until it registers again); the failing one is kept.
func TestFailedPushLosesNoCommand(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := newFleetEnv(t, backend)
			f.poll = 500 * time.Millisecond
			e := f.e
			ua, pwa := e.mustUser("a@example.com")
			ub, pwb := e.mustUser("b@example.com")
			a := f.activate(ua.Email, pwa, 1)
			b := f.activate(ub.Email, pwb, 2)
			f.apns.Fail(a.token, apnstest.ServerError(500, 0))
			f.apns.Fail(b.token, apnstest.Unregistered())
			a.run(t)
			b.run(t)
			for _, m := range []*member{a, b} {
				if st := e.api("POST", "/api/v1/devices/"+m.deviceID+"/commands", map[string]string{"type": "lock"}, nil); st != 201 {
					t.Fatalf("send lock: %d", st)
				}
			}
			for _, m := range []*member{a, b} {
				eventually(t, "device "+m.deviceID+" locked", func() (bool, string) {
					return m.dev.Locked(), fmt.Sprintf("%+v", m.dev.Executed())
				})
			}
			eventually(t, "unregistered token dropped", func() (bool, string) {
				toks, err := e.m.DB.PushTokens(context.Background(), []string{b.deviceID})
				return err == nil && len(toks) == 0, fmt.Sprintf("%+v %v", toks, err)
			})
			if toks, _ := e.m.DB.PushTokens(context.Background(), []string{a.deviceID}); len(toks) != 1 {
				t.Fatalf("the token of a device whose pushes failed was dropped: %+v", toks)
			}
		})
	}
}
