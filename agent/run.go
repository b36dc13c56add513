package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	wire "github.com/custos-uem/custos/platform/agent"
)

// WaitMode says whether Run holds the long poll of PathWait open between
// check-ins (Options.Wait).
type WaitMode int

const (
	// WaitAuto holds it open when the device has no push token: the long
	// poll is the notification channel of devices without one.
	WaitAuto WaitMode = iota
	// WaitAlways holds it open even with a push token.
	WaitAlways
	// WaitNever relies on the poll schedule and push wake-ups only.
	WaitNever
)

// waitSlack is added to the long poll's own timeout for the request: the
// Core answers at the timeout, and the answer needs time to arrive.
const waitSlack = 15 * time.Second

// Wake tells a running Run that a push notification for this device
// arrived: it runs the command round trips at once instead of at the next
// check-in. It never blocks; wake-ups that arrive while Run is busy (or
// before it runs) are kept as one.
func (c *Client) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Listening reports whether Run holds the long poll open between
// check-ins: Options.Wait allows it and the Core has not answered that it
// has no such endpoint.
func (c *Client) Listening() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listen && !c.noWait
}

// Wait holds one long poll of PathWait open, for at most timeout (rounded
// down to whole seconds, 1 s to wire.MaxWait), and reports whether a
// command is pending. An older Core without the endpoint answers 404 or
// 405: the error wraps ErrNotOffered. A refused certificate returns a
// *RefusedError without recording it: the Commands or Checkin that
// follows records it. Wait may run concurrently with the other methods.
func (c *Client) Wait(ctx context.Context, timeout time.Duration) (bool, error) {
	hc, st, base, err := c.session()
	if err != nil {
		return false, err
	}
	secs := int(min(max(timeout, time.Second), wire.MaxWait) / time.Second)
	var wr wire.WaitResponse
	_, err = c.postWithin(ctx, time.Duration(secs)*time.Second+waitSlack, hc, base, wire.PathWait,
		wire.WaitRequest{DeviceID: st.DeviceID, TimeoutSeconds: secs}, nil, true, maxWaitAnswer, &wr)
	if err != nil {
		if re, ok := refusal("wait", err); ok {
			return false, re
		}
		var se *ServerError
		if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
			return false, fmt.Errorf("wait: %w: %w", ErrNotOffered, se)
		}
		return false, fmt.Errorf("wait failed: %w", err)
	}
	return wr.Pending, nil
}

// Run keeps the device enrolled until ctx is done: it checks in at once,
// then every poll interval (the Core's poll_seconds, DefaultPoll if none, or
// Options.PollInterval) with ±10 % jitter, acknowledging each new
// configuration, and after each check-in runs the command round trips
// until idle. Between check-ins it runs them at once when Wake is called
// (a push arrived) or when the long poll of PathWait (see Options.Wait)
// answers that something is pending; a Core that answers 404 there has no
// long poll, and Run goes on with polling alone. After a failure it waits
// BackoffMin, doubling per consecutive failure up to BackoffMax, jittered.
//
// Run returns nil when ctx is done, a *RefusedError (wrapping ErrRefused)
// when the Core refuses the certificate or refused it before (the device
// was removed: retrying cannot help), and one wrapping ErrNotActivated when
// there is nothing to run. It does not log the error it returns.
func (c *Client) Run(ctx context.Context) error {
	if ok, err := c.Activated(); !ok {
		return err
	}
	failures := 0
	for {
		step := "check-in"
		res, err := c.Checkin(ctx)
		if err == nil {
			step = "commands"
			err = c.drain(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrRefused), errors.Is(err, ErrNotActivated):
			return err
		case err != nil:
			failures++
			wait = c.backoff(failures)
			var se *ServerError
			if errors.As(err, &se) && se.RetryAfter > wait {
				wait = min(se.RetryAfter, MaxRetryAfter)
			}
			c.log.Warn(step+" failed", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
		default:
			failures = 0
			wait = c.jitter(res.Poll, PollJitter)
			c.log.Debug("checked in", "state", res.State, "config_version", res.ConfigVersion, "next_in", wait.Round(time.Second))
		}
		// The long poll only after a good round: during a backoff the Core
		// is unreachable or failing, and polling it harder cannot help.
		if err := c.idle(ctx, wait, err == nil); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// drain runs Commands until idle; a Core without a command channel is not
// a failure.
func (c *Client) drain(ctx context.Context) error {
	r, err := c.Commands(ctx)
	if errors.Is(err, ErrNotOffered) {
		c.log.Debug("the Core offers no command channel", "err", err)
		return nil
	}
	if err == nil && len(r.Commands) > 0 {
		c.log.Info("commands done", "executed", r.Executed, "repeated", r.Repeated)
	}
	return err
}

// idle waits d until the next check-in. Meanwhile a Wake, or a pending
// answer of the long poll (when listen), runs the command round trips at
// once. It returns nil when the time is up or ctx is done, and the error
// of a refused or lost identity.
func (c *Client) idle(ctx context.Context, d time.Duration, listen bool) error {
	deadline := c.clock.Now().Add(d)
	quiet := 0 // wake-ups in a row that found nothing to do, or failed
	for {
		var delay time.Duration
		if quiet > 0 {
			// A Core that keeps saying "pending" with nothing due must not
			// turn the long poll into a busy loop.
			delay = c.backoff(quiet)
		}
		if !c.pause(ctx, d, listen && c.Listening(), delay) || ctx.Err() != nil {
			return nil
		}
		r, err := c.Commands(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRefused), errors.Is(err, ErrNotActivated):
			return err
		case errors.Is(err, ErrNotOffered):
			quiet++
		case err != nil:
			quiet++
			c.log.Warn("commands failed", "err", err)
		case r.Executed+r.Repeated == 0:
			quiet++
		default:
			quiet = 0
			c.log.Info("commands done", "executed", r.Executed, "repeated", r.Repeated)
		}
		if d = deadline.Sub(c.clock.Now()); d <= 0 {
			return nil
		}
	}
}

// pause sleeps d and reports whether it was woken before: by Wake, or by
// the long poll (when listen, after delay) answering that something is
// pending. Both helpers end before it returns.
func (c *Client) pause(ctx context.Context, d time.Duration, listen bool, delay time.Duration) bool {
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	slept := make(chan struct{})
	wg.Go(func() {
		_ = c.clock.Sleep(pctx, d)
		close(slept)
	})
	pending := make(chan struct{})
	if listen {
		wg.Go(func() {
			if c.hold(pctx, delay) {
				close(pending)
			}
		})
	}
	select {
	case <-slept:
		return false
	case <-c.wake:
		return true
	case <-pending:
		return true
	}
}

// hold keeps the long poll open, one request after the other, until the
// Core says something is pending (true) or ctx ends (false). A Core without
// the endpoint turns listening off for the life of the Client; other
// failures are retried with backoff.
func (c *Client) hold(ctx context.Context, delay time.Duration) bool {
	if delay > 0 && c.clock.Sleep(ctx, delay) != nil {
		return false
	}
	failures := 0
	for {
		pending, err := c.Wait(ctx, c.waitFor)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case errors.Is(err, ErrNotOffered):
			c.mu.Lock()
			c.noWait = true
			c.mu.Unlock()
			c.log.Info("the Core has no long poll; relying on the poll schedule", "err", err)
			return false
		case errors.Is(err, ErrRefused), errors.Is(err, ErrNotActivated):
			return true // the round trip that follows records it and stops Run
		case err != nil:
			failures++
			wait := c.backoff(failures)
			c.log.Debug("long poll failed", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
			if c.clock.Sleep(ctx, wait) != nil {
				return false
			}
		case pending:
			return true
		default:
			failures = 0
		}
	}
}
