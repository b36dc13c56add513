package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/push"
)

// tokens is an in-memory device.PushStore.
type tokens struct {
	mu      sync.Mutex
	byID    map[string]device.PushToken
	dropped []string
}

func (s *tokens) SetPushToken(_ context.Context, t device.PushToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[t.DeviceID] = t
	return nil
}

func (s *tokens) PushTokens(_ context.Context, ids []string) ([]device.PushToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []device.PushToken
	for _, id := range ids {
		if t, ok := s.byID[id]; ok {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *tokens) DropPushToken(_ context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.byID[id]; ok && t.Token == token {
		delete(s.byID, id)
		s.dropped = append(s.dropped, id)
	}
	return nil
}

// sender records pushes and answers with the error set for a token.
type sender struct {
	mu   sync.Mutex
	sent []push.Target
	errs map[string]error
	got  chan push.Target
}

func (s *sender) Send(_ context.Context, t push.Target) error {
	s.mu.Lock()
	s.sent = append(s.sent, t)
	err := s.errs[t.Token]
	s.mu.Unlock()
	s.got <- t
	return err
}

func start(t *testing.T, n *Notifier, origin string) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	<-n.Start(context.Background(), origin, reg)
	t.Cleanup(n.Close)
	return reg
}

func never() (bool, error) { return false, nil }

func TestPushesOnlyDevicesWithTokensAndDropsUnusableOnes(t *testing.T) {
	store := &tokens{byID: map[string]device.PushToken{
		"d1": {DeviceID: "d1", Provider: push.APNs, Token: "t1", Topic: "com.example"},
		"d2": {DeviceID: "d2", Provider: push.FCM, Token: "t2"},
		"d3": {DeviceID: "d3", Provider: push.WNS, Token: "https://x.notify.windows.com/?t=3"},
		"d4": {DeviceID: "d4", Provider: push.WNS, Token: "t4"},
	}}
	s := &sender{got: make(chan push.Target, 10), errs: map[string]error{
		"t2":                                push.Unregistered(push.FCM, 404, "UNREGISTERED"),
		"https://x.notify.windows.com/?t=3": errors.New("503 after every retry"),
		"t4":                                fmt.Errorf("wns: %w", push.ErrInvalidTarget),
	}}
	n := &Notifier{Tokens: store, Sender: s}
	start(t, n, "p1")
	n.Notify([]string{"d1", "d2", "d3", "d4", "no-token"})
	for range 4 {
		select {
		case <-s.got:
		case <-time.After(5 * time.Second):
			t.Fatal("pushes not sent")
		}
	}
	// The drop happens after Send returns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		store.mu.Lock()
		n := len(store.dropped)
		store.mu.Unlock()
		if n > 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and the failed push's outcome, had it dropped anything
	store.mu.Lock()
	defer store.mu.Unlock()
	slices.Sort(store.dropped)
	if !slices.Equal(store.dropped, []string{"d2", "d4"}) {
		t.Fatalf("dropped %v, want d2 (unregistered) and d4 (unusable); a failed push must keep its token", store.dropped)
	}
	if _, ok := store.byID["d3"]; !ok {
		t.Fatal("the token of a device whose push failed was dropped")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) != 4 {
		t.Fatalf("sent %+v, want one push per device with a token", s.sent)
	}
}

func TestWaitWakesOnlyTheNamedDevice(t *testing.T) {
	n := &Notifier{}
	start(t, n, "p1")
	woke := make(chan bool, 2)
	for _, id := range []string{"a", "b"} {
		go func() {
			ok, _ := n.Wait(context.Background(), id, 2*time.Second, never)
			woke <- ok
		}()
	}
	time.Sleep(100 * time.Millisecond) // both waiting
	n.Notify([]string{"a"})
	if !<-woke {
		t.Fatal("the first answer was a timeout, want device a woken")
	}
	if <-woke {
		t.Fatal("device b was woken by a's notification")
	}
}

func TestWaitAnswersAtOnceWhenAlreadyPending(t *testing.T) {
	n := &Notifier{}
	start(t, n, "p1")
	start := time.Now()
	ok, err := n.Wait(context.Background(), "a", time.Minute, func() (bool, error) { return true, nil })
	if !ok || err != nil || time.Since(start) > time.Second {
		t.Fatalf("Wait = %v, %v after %v; want pending at once", ok, err, time.Since(start))
	}
	if _, err := n.Wait(context.Background(), "a", time.Minute, func() (bool, error) { return false, errors.New("db down") }); err == nil {
		t.Fatal("a failing pending check was not reported")
	}
}

// bus is an in-memory stand-in for PostgreSQL LISTEN/NOTIFY between
// notifiers of several processes.
type bus struct {
	mu        sync.Mutex
	listeners []func(string)
}

func (b *bus) Publish(_ context.Context, _ string, payloads []string) error {
	b.mu.Lock()
	ls := append([]func(string){}, b.listeners...)
	b.mu.Unlock()
	for _, p := range payloads {
		for _, l := range ls {
			l(p)
		}
	}
	return nil
}

func (b *bus) Listen(ctx context.Context, _ string, ready func(), fn func(string)) error {
	b.mu.Lock()
	b.listeners = append(b.listeners, fn)
	b.mu.Unlock()
	ready()
	<-ctx.Done()
	return ctx.Err()
}

func TestWakeUpCrossesProcesses(t *testing.T) {
	b := &bus{}
	here, there := &Notifier{Bus: b}, &Notifier{Bus: b}
	start(t, here, "here")
	start(t, there, "there")
	woke := make(chan bool, 1)
	go func() {
		ok, _ := there.Wait(context.Background(), "dev", 5*time.Second, never)
		woke <- ok
	}()
	time.Sleep(100 * time.Millisecond)
	ids := make([]string, 450) // more than one message's worth
	for i := range ids {
		ids[i] = "other"
	}
	ids[449] = "dev"
	here.Notify(ids)
	if !<-woke {
		t.Fatal("a device waiting on another process was not woken")
	}
}

func TestMessagesStayUnderTheNotifyLimit(t *testing.T) {
	n := &Notifier{origin: "host/123/abcdefgh"}
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = "0190f3c2-0000-7000-8000-000000000000"
	}
	msgs := n.messages(ids)
	total := 0
	for _, m := range msgs {
		if len(m) >= 8000 {
			t.Fatalf("a message of %d bytes; PostgreSQL refuses 8000 or more", len(m))
		}
		_, list, _ := strings.Cut(m, "|")
		total += len(strings.Split(list, ","))
	}
	if total != len(ids) {
		t.Fatalf("%d IDs in the messages, want %d", total, len(ids))
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	store := &tokens{byID: map[string]device.PushToken{"d": {DeviceID: "d", Provider: push.APNs, Token: "t"}}}
	n := &Notifier{Tokens: store, Sender: push.SenderFunc(func(ctx context.Context, _ push.Target) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil
	}), Senders: 1}
	start(t, n, "p1")
	defer close(block)
	done := make(chan struct{})
	go func() {
		for range queueLen + 100 {
			n.Notify([]string{"d"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked while the provider hung")
	}
	if value(n.metrics.dropped) == 0 {
		t.Fatal("no dropped hint counted with the queue full")
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
