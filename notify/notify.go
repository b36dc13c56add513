// Package notify tells devices that something is pending for them: the
// seed's "Core → infrastructure → APNs/FCM/WNS → device → the device
// contacts the Core". A notification is only a hint. It carries nothing but
// "come and ask"; the command queue holds the work, and devices check in on
// a schedule besides, so a lost or failed notification delays a command
// until the next scheduled check-in and never loses it.
//
// Two channels reach a device:
//
//   - its push token (APNs, FCM, WNS), through a push.Sender; a token the
//     provider says is gone is dropped, and the device falls back to
//     polling until it registers a new one;
//   - the agent's own long poll (PathWait), held open on whichever Core
//     process the device's connection reached. Wake-ups are published to
//     every process sharing the database (PostgreSQL LISTEN/NOTIFY) so a
//     command queued through one Core wakes a device waiting on another.
//
// Notify never blocks its caller on the network: the work is queued
// (bounded) and sent by a small pool of workers.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/push"
)

// Limits of the notifier.
const (
	// queueLen bounds the batches waiting for a worker; when it is full a
	// batch is dropped (counted), and its devices get their commands at
	// their next check-in.
	queueLen = 1024
	// tokenChunk is how many devices' push tokens one lookup fetches.
	tokenChunk = 1000
	// DefaultSenders is how many pushes are in flight at once per process.
	DefaultSenders = 256
	// Channel is the PostgreSQL notification channel of wake-ups.
	Channel = "custos_wake"
	// idsPerMessage: 36-byte IDs and a separator, under the 8000-byte
	// NOTIFY payload limit with the origin prefix.
	idsPerMessage = 200
)

// Bus carries wake-ups between Core processes sharing one database
// (sqlstore.DB implements it).
type Bus interface {
	Publish(ctx context.Context, channel string, payloads []string) error
	Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error
}

// Notifier sends the hints.
type Notifier struct {
	Tokens device.PushStore
	// Sender delivers pushes; nil sends none (long polls and polling
	// still work).
	Sender push.Sender
	// Bus, when set, shares wake-ups with other processes.
	Bus     Bus
	Log     *slog.Logger
	Senders int

	origin  string
	queue   chan []string
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	metrics metrics
}

// metrics of the notifier; the outcome of each push is counted by the
// push.Router (custos_push_sends_total).
type metrics struct {
	dropped prometheus.Counter
	wakes   prometheus.Counter
}

// Start starts the workers and, with a Bus, the listener; origin names
// this process in published wake-ups, so it skips its own. ready is
// closed once the listener is in place (at once without a Bus that can
// listen).
func (n *Notifier) Start(ctx context.Context, origin string, reg prometheus.Registerer) (ready <-chan struct{}) {
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if n.Log == nil {
		n.Log = slog.New(slog.DiscardHandler)
	}
	if n.Senders <= 0 {
		n.Senders = DefaultSenders
	}
	n.origin = origin
	n.queue = make(chan []string, queueLen)
	n.waiters = map[string]map[chan struct{}]struct{}{}
	n.metrics = metrics{
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "custos_push_dropped_total", Help: "Devices whose push hint was dropped because the queue was full (they get their commands at the next check-in)."}),
		wakes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "custos_wait_wakeups_total", Help: "Long polls answered because something became pending."}),
	}
	if reg != nil {
		reg.MustRegister(n.metrics.dropped, n.metrics.wakes)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.work(ctx)
	}()
	r := make(chan struct{})
	if n.Bus == nil {
		close(r)
		return r
	}
	var once sync.Once
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.Bus.Listen(ctx, Channel, func() { once.Do(func() { close(r) }) }, n.remote)
		once.Do(func() { close(r) }) // no listener (SQLite): local wake-ups suffice
		if err != nil && !errors.Is(err, context.Canceled) {
			n.Log.Debug("notify: no cross-process wake-ups", "err", err)
		}
	}()
	return r
}

// Close stops the workers; queued hints are dropped.
func (n *Notifier) Close() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
}

// Notify tells the devices that something is pending. It returns at once.
func (n *Notifier) Notify(deviceIDs []string) {
	if len(deviceIDs) == 0 || n.queue == nil {
		return
	}
	ids := append([]string(nil), deviceIDs...)
	n.wakeLocal(ids)
	select {
	case n.queue <- ids:
	default:
		n.metrics.dropped.Add(float64(len(ids)))
	}
}

// Wait blocks until something is pending for the device (true), the
// timeout passes or ctx ends (false). The caller checks the queue after
// registering, through pending, so a command queued in between is not
// missed: Wait registers first, then calls pending.
func (n *Notifier) Wait(ctx context.Context, deviceID string, timeout time.Duration, pending func() (bool, error)) (bool, error) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	set := n.waiters[deviceID]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		n.waiters[deviceID] = set
	}
	set[ch] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		// A set leaves the map only when empty, so the one holding ch is
		// still the current one.
		if s := n.waiters[deviceID]; s != nil {
			delete(s, ch)
			if len(s) == 0 {
				delete(n.waiters, deviceID)
			}
		}
		n.mu.Unlock()
	}()
	if ok, err := pending(); err != nil || ok {
		return ok, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		n.metrics.wakes.Inc()
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, nil
	}
}

func (n *Notifier) wakeLocal(ids []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.waiters) == 0 {
		return
	}
	for _, id := range ids {
		for ch := range n.waiters[id] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// remote handles a wake-up published by any process.
func (n *Notifier) remote(payload string) {
	origin, list, ok := strings.Cut(payload, "|")
	if !ok || origin == n.origin {
		return
	}
	n.wakeLocal(strings.Split(list, ","))
}

func (n *Notifier) work(ctx context.Context) {
	sem := make(chan struct{}, n.Senders)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		var ids []string
		select {
		case <-ctx.Done():
			return
		case ids = <-n.queue:
		}
		if n.Bus != nil {
			if err := n.Bus.Publish(ctx, Channel, n.messages(ids)); err != nil {
				n.Log.Warn("notify: publish wake-ups", "err", err)
			}
		}
		if n.Sender == nil || n.Tokens == nil {
			continue
		}
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), tokenChunk)]
			ids = ids[len(chunk):]
			toks, err := n.Tokens.PushTokens(ctx, chunk)
			if err != nil {
				n.Log.Warn("notify: look up push tokens", "err", err)
				continue
			}
			for _, tok := range toks {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				inflight.Add(1)
				go func() {
					defer func() { <-sem; inflight.Done() }()
					n.send(ctx, tok)
				}()
			}
		}
	}
}

func (n *Notifier) messages(ids []string) []string {
	var out []string
	for len(ids) > 0 {
		k := min(len(ids), idsPerMessage)
		out = append(out, n.origin+"|"+strings.Join(ids[:k], ","))
		ids = ids[k:]
	}
	return out
}

func (n *Notifier) send(ctx context.Context, tok device.PushToken) {
	err := n.Sender.Send(ctx, push.Target{Provider: tok.Provider, Token: tok.Token, Topic: tok.Topic, PushMagic: tok.PushMagic})
	switch {
	case err == nil:
	case errors.Is(err, push.ErrUnregistered), errors.Is(err, push.ErrInvalidTarget):
		// The provider says the token is gone, or the client refuses it
		// (a WNS channel off Microsoft's domain): it will never work. The
		// device falls back to polling until it registers anew.
		if err := n.Tokens.DropPushToken(ctx, tok.DeviceID, tok.Token); err != nil {
			n.Log.Warn("notify: drop push token", "device", tok.DeviceID, "err", err)
		}
		n.Log.Info("notify: push token unusable; dropped, the device falls back to polling", "device", tok.DeviceID, "provider", tok.Provider, "err", err)
	case errors.Is(err, push.ErrNotConfigured):
		// Said once at start-up would be better; per push it is noise.
		n.Log.Debug("notify: no credentials for the device's push provider", "device", tok.DeviceID, "provider", tok.Provider)
	default:
		n.Log.Warn("notify: push failed; the device gets its commands at its next check-in", "device", tok.DeviceID, "provider", tok.Provider, "err", err)
	}
}
