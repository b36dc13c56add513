package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// CheckinResult is the outcome of one check-in.
type CheckinResult struct {
	// State is the device state the Core reports after the round.
	State string
	// ConfigVersion is the configuration version the device runs.
	ConfigVersion string
	// Acknowledged is true when a configuration was applied and
	// acknowledged in this round (a new version, or a device not yet
	// active).
	Acknowledged bool
	// SoftwareSent is true when the software list was sent (it changed
	// since the last list the Core accepted).
	SoftwareSent bool
	// Items are the per-item outcomes acknowledged, when Acknowledged.
	Items []wire.ItemStatus
	// Unchanged is true when the Core answered that the configuration the
	// device runs is current (no items sent; the device kept its own).
	Unchanged bool
	// PushRegistered is true when the push registration of Options was
	// sent and accepted in this round (it changed since the last one).
	PushRegistered bool
	// Poll is the interval until the next check-in, before jitter.
	Poll time.Duration
}

// Checkin runs one round of steps 9–12 over mutual TLS: it reports the
// device, (when changed) its software and its push registration, and the
// configuration version it runs; it receives the configuration (or
// "unchanged", and keeps its own), and when the version differs from the
// one last acknowledged — or the device is not active yet — applies and
// acknowledges it.
//
// An Applier that fails entirely returns an *ApplyError.
//
// A refused certificate returns a *RefusedError (wrapping ErrRefused) and
// records the refusal in the State: later calls return it again without
// contacting the Core, until the device is activated again. A device
// without a usable certificate returns an error wrapping ErrNotActivated.
func (c *Client) Checkin(ctx context.Context) (*CheckinResult, error) {
	c.op.Lock()
	defer c.op.Unlock()
	return c.checkin(ctx)
}

func (c *Client) checkin(ctx context.Context) (*CheckinResult, error) {
	c.mu.Lock()
	hc, leaf := c.mtls, c.leaf
	var st State
	if c.st != nil {
		st = *c.st
	}
	var notActivated error
	if hc == nil {
		notActivated = c.notActivated()
	}
	c.mu.Unlock()
	if hc == nil {
		return nil, notActivated
	}
	if now := c.clock.Now(); now.After(leaf.NotAfter) {
		// Not recorded: the device's clock may be wrong.
		return nil, &RefusedError{Refusal: Refusal{
			Step: "check-in", Reason: "the device certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339),
		}}
	}
	base := c.serverURL
	if base == "" {
		base = st.ServerURL
	}
	inv, err := c.collect(ctx)
	if err != nil {
		return nil, err
	}

	// Steps 9–10.
	hash := SoftwareHash(inv.Apps)
	req := wire.CheckinRequest{DeviceID: st.DeviceID, Info: inv.Info, ConfigVersion: st.ConfigVersion}
	pushHash := ""
	if c.push != nil {
		pushHash = PushHash(c.push)
		if pushHash != st.PushHash {
			p := *c.push
			req.Push = &p
		}
	}
	sent := hash != st.SoftwareHash
	if sent {
		req.Software = inv.Apps
		if req.Software == nil {
			req.Software = []device.App{} // "no software" is a report, not "unchanged"
		}
	}
	var cr wire.CheckinResponse
	if _, err := c.post(ctx, hc, base, wire.PathCheckin, req, nil, true, maxCheckinAnswer, &cr); err != nil {
		return nil, c.deviceError("check-in", &st, err)
	}
	if st.DeviceID != "" && cr.DeviceID != "" && cr.DeviceID != st.DeviceID {
		return nil, fmt.Errorf("check-in: the Core answered for device %q, this is %q", display(cr.DeviceID), st.DeviceID)
	}
	cfg := cr.Configuration
	cr.State, _ = Clean(cr.State)
	if cr.State == string(device.StateRemoved) {
		return nil, c.refused(&st, &RefusedError{Refusal: Refusal{Step: "check-in", Reason: "the Core reports the device removed"}})
	}
	if cfg.Unchanged {
		// The Core sends no items for the version the device runs: keep
		// ours. An "unchanged" for another version cannot be applied.
		if cfg.Version != st.ConfigVersion {
			return nil, fmt.Errorf("check-in: the Core answered configuration %q unchanged, but the device runs %q", display(cfg.Version), display(st.ConfigVersion))
		}
		cfg.Items = st.ConfigItems
	}
	if sent {
		st.SoftwareHash = hash
	}
	switch {
	case req.Push != nil:
		st.PushHash = pushHash
		c.log.Info("push registration sent", "provider", req.Push.Provider)
	case c.push != nil && !cr.PushRegistered:
		// The Core forgot the token (its provider declared it gone):
		// send it again at the next check-in.
		st.PushHash = ""
		c.log.Info("the Core holds no push token for this device; registering again at the next check-in")
	}
	prev := wire.Configuration{Version: st.ConfigVersion, Items: st.ConfigItems, PollSeconds: st.PollSeconds}
	st.LastCheckin = c.clock.Now().UTC()
	st.PollSeconds = cfg.PollSeconds
	st.State = cr.State
	res := &CheckinResult{State: cr.State, ConfigVersion: st.ConfigVersion, SoftwareSent: sent,
		Unchanged: cfg.Unchanged, PushRegistered: req.Push != nil}

	// Steps 11–12.
	if cfg.Version != st.ConfigVersion || cr.State != StateActive {
		got, err := c.applier.Apply(ctx, prev, cfg)
		if err != nil {
			c.commit(&st)
			return nil, &ApplyError{Version: cfg.Version, Err: err}
		}
		items := statuses(cfg.Items, got)
		var ar wire.AckResponse
		if _, err := c.post(ctx, hc, base, wire.PathAck, wire.AckRequest{DeviceID: st.DeviceID, Version: cfg.Version, Items: items}, nil, true, maxAckAnswer, &ar); err != nil {
			err = c.deviceError("acknowledgment", &st, err)
			if !errors.Is(err, ErrRefused) {
				c.commit(&st)
			}
			return nil, err
		}
		st.ConfigVersion = cfg.Version
		st.ConfigItems = slices.Clone(cfg.Items)
		st.State, _ = Clean(ar.State)
		res.State, res.ConfigVersion, res.Acknowledged, res.Items = st.State, cfg.Version, true, items
		c.log.Info("configuration acknowledged", "version", cfg.Version, "items", len(items), "state", st.State)
	}
	res.Poll = c.pollInterval(cfg.PollSeconds)
	if err := c.commit(&st); err != nil {
		return res, err
	}
	return res, nil
}

// ApplyError is the error of a check-in whose Applier failed entirely
// (nothing was acknowledged).
type ApplyError struct {
	Version string
	Err     error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("apply configuration %q: %v", display(e.Version), e.Err)
}

// Unwrap returns the Applier's error.
func (e *ApplyError) Unwrap() error { return e.Err }

// PushHash returns the hash of a push registration kept in State.PushHash.
func PushHash(p *wire.PushRegistration) string {
	sum := sha256.Sum256([]byte(p.Provider + "\x00" + p.Token + "\x00" + p.Topic))
	return hex.EncodeToString(sum[:])
}

// Push providers of wire.PushRegistration.
var pushProviders = []string{"apns", "fcm", "wns"}

// checkPush checks a push registration of Options against the wire.
func checkPush(p *wire.PushRegistration) error {
	if !slices.Contains(pushProviders, p.Provider) {
		return fmt.Errorf("agent: push provider %q: want one of %s", p.Provider, strings.Join(pushProviders, ", "))
	}
	if len(p.Token) > 4<<10 || len(p.Topic) > wire.MaxField {
		return errors.New("agent: push token or topic too long")
	}
	return nil
}

// commit makes st the Client's state and saves it.
func (c *Client) commit(st *State) error {
	s := *st
	c.mu.Lock()
	c.st = &s
	c.mu.Unlock()
	if err := SaveState(c.store, &s); err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	return nil
}

// deviceError words a failed mutual-TLS step for the user. A refused
// certificate is recorded (refused) and returned as a *RefusedError.
func (c *Client) deviceError(step string, st *State, err error) error {
	if re, ok := refusal(step, err); ok {
		return c.refused(st, re)
	}
	var se *ServerError
	if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 {
		return fmt.Errorf("%s refused: %w", step, se)
	}
	return fmt.Errorf("%s failed: %w", step, err)
}

// refused records the Core's refusal re in st and the Store, and drops the
// Client's identity: until the device is activated again, Checkin and Run
// return the refusal without contacting the Core. It returns re.
func (c *Client) refused(st *State, re *RefusedError) error {
	re.At = c.clock.Now().UTC()
	r := re.Refusal
	st.State, st.Refusal = StateRefused, &r
	if err := c.commit(st); err != nil {
		c.log.Warn("cannot record the refusal", "err", err)
	}
	later := &RefusedError{Refusal: r, Recorded: true, Err: re.Err}
	c.mu.Lock()
	c.mtls, c.leaf, c.idErr = nil, nil, later
	if c.mtlsTr != nil {
		c.mtlsTr.CloseIdleConnections()
		c.mtlsTr = nil
	}
	c.mu.Unlock()
	return re
}

func (c *Client) pollInterval(seconds int) time.Duration {
	switch {
	case c.poll > 0:
		return c.poll
	case seconds <= 0:
		return DefaultPoll
	default:
		return min(time.Duration(seconds)*time.Second, MaxPoll)
	}
}

// jitter returns d spread uniformly over d·(1±f).
func (c *Client) jitter(d time.Duration, f float64) time.Duration {
	c.rmu.Lock()
	r := c.rng.Float64()
	c.rmu.Unlock()
	return time.Duration(float64(d) * (1 - f + 2*f*r))
}

// backoff is the wait after n consecutive failures (n ≥ 1).
func (c *Client) backoff(n int) time.Duration {
	d := BackoffMin
	for i := 1; i < n && d < BackoffMax; i++ {
		d *= 2
	}
	return min(c.jitter(min(d, BackoffMax), 0.2), BackoffMax)
}
