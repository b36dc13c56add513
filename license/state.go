package license

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
)

// Windows of the licence states.
const (
	// ClockSkew is how far in the future IssuedAt may lie before a licence
	// is NotYetValid: the issuer's and the Core's clocks differ a little.
	ClockSkew = 5 * time.Minute
	// ExpiringSoonWindow is how long before Expires the operator is warned.
	ExpiringSoonWindow = 30 * 24 * time.Hour
	// warnTenths is the share of the device limit, in tenths, from which
	// the operator is warned.
	warnTenths = 9
)

// State is where a licence stands at a point in time.
type State string

const (
	Valid        State = "valid"
	ExpiringSoon State = "expiring_soon" // within ExpiringSoonWindow of Expires
	Grace        State = "grace"         // Expires ≤ now < Expires + grace: warn, keep activating
	Expired      State = "expired"       // past the grace: new activations are refused
	NotYetValid  State = "not_yet_valid" // IssuedAt more than ClockSkew ahead
)

// GracePeriod is the grace after Expires: Grace, or DefaultGrace when zero.
func (l *License) GracePeriod() time.Duration {
	if l.Grace == 0 {
		return DefaultGrace
	}
	return time.Duration(l.Grace)
}

// State returns the licence's state at now.
func (l *License) State(now time.Time) State {
	switch {
	case l.IssuedAt.Sub(now) > ClockSkew:
		return NotYetValid
	case !now.Before(l.Expires.Add(l.GracePeriod())):
		return Expired
	case !now.Before(l.Expires):
		return Grace
	case !now.Before(l.Expires.Add(-ExpiringSoonWindow)):
		return ExpiringSoon
	}
	return Valid
}

// ErrMissing refuses activations while the Core has no validated licence.
var ErrMissing = errs.E(errs.Forbidden, "license_missing", "the server has no validated licence; new activations are refused until the relay validates one")

// Codes of Check's errors whose messages carry numbers or dates.
const (
	CodeDeviceLimit = "license_device_limit"
	CodeExpired     = "license_expired"
	CodeNotYetValid = "license_not_yet_valid"
)

// day formats dates in messages: unambiguous in every locale.
func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Check returns nil if the licence admits one more activation with
// activeDevices enrolled or active, else an errs.Forbidden error whose
// message tells the device's user (and the operator) what to do. A licence
// in its grace still admits. l nil means the Core has no validated
// licence.
func Check(l *License, now time.Time, activeDevices int) error {
	if l == nil {
		return ErrMissing
	}
	switch l.State(now) {
	case NotYetValid:
		// Either the licence is post-dated or this server's clock is
		// behind; both need the operator, and neither may admit.
		return errs.E(errs.Forbidden, CodeNotYetValid,
			fmt.Sprintf("the licence is valid from %s; check the server's clock", day(l.IssuedAt)))
	case Expired:
		return errs.E(errs.Forbidden, CodeExpired,
			fmt.Sprintf("the licence expired on %s; existing devices stay managed, new activations are refused until it is renewed", day(l.Expires)))
	}
	if activeDevices >= l.DeviceLimit {
		return errs.E(errs.Forbidden, CodeDeviceLimit,
			fmt.Sprintf("the licence allows %d devices and %d are active; remove devices or extend the licence", l.DeviceLimit, activeDevices))
	}
	return nil
}

// Warnings returns what the operator should see about the licence at now
// with activeDevices enrolled or active, most urgent first: anything Check
// refuses, the grace, an approaching expiry, a device count at 90 % or
// more of the limit, a development licence. Empty when all is well.
func Warnings(l *License, now time.Time, activeDevices int) []string {
	if l == nil {
		return []string{ErrMissing.Message}
	}
	var w []string
	switch l.State(now) {
	case NotYetValid, Expired:
		_, msg, _ := errs.Public(Check(l, now, 0))
		w = append(w, msg)
	case Grace:
		w = append(w, fmt.Sprintf("the licence expired on %s; new activations will be refused from %s unless it is renewed",
			day(l.Expires), day(l.Expires.Add(l.GracePeriod()))))
	case ExpiringSoon:
		w = append(w, fmt.Sprintf("the licence expires on %s (in %d days); renew it", day(l.Expires), daysUntil(now, l.Expires)))
	}
	// int64: the product must not overflow whatever count a caller passes.
	switch {
	case activeDevices >= l.DeviceLimit:
		w = append(w, fmt.Sprintf("the licence allows %d devices and %d are active; new activations are refused", l.DeviceLimit, activeDevices))
	case 10*int64(activeDevices) >= warnTenths*int64(l.DeviceLimit):
		w = append(w, fmt.Sprintf("%d of the licence's %d devices are active; extend the licence before it is full", activeDevices, l.DeviceLimit))
	}
	if l.Development {
		w = append(w, "this is a development licence, not for production use")
	}
	return w
}

// daysUntil counts started days, so "in 1 days" never reads "in 0 days".
func daysUntil(now, t time.Time) int {
	d := t.Sub(now)
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// Gate admits new activations while the Core's licence allows them. Its
// Admit is activation.Service.Admit: it runs once per new activation, never
// on enrolled devices' later requests, so an expired or full licence stops
// the fleet growing without cutting off the devices already managed.
type Gate struct {
	// Current returns the licence the relay last validated (nil: none yet).
	Current func() *License
	// ActiveDevices counts the devices enrolled or active; the caller
	// wires it to the device store.
	ActiveDevices func(ctx context.Context) (int, error)
	// Now and Log are optional (time.Now, no log).
	Now func() time.Time
	Log *slog.Logger

	mu     sync.Mutex
	warned time.Time // last warning logged
}

// Admit returns nil if the licence admits one more activation, else the
// error of Check. A failure to count devices is returned as an internal
// error: the gate fails closed rather than admit past the limit.
func (g *Gate) Admit(ctx context.Context) error {
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	var l *License
	if g.Current != nil {
		l = g.Current()
	}
	// Checked without the count first: an expired or missing licence
	// refuses without a query, which a burst of refused attempts would
	// otherwise each cost.
	if err := Check(l, now, 0); err != nil {
		return g.refuse(ctx, l, -1, err)
	}
	if g.ActiveDevices == nil {
		return errors.New("license: gate: ActiveDevices is not set")
	}
	n, err := g.ActiveDevices(ctx)
	if err != nil {
		return fmt.Errorf("license: count active devices: %w", err)
	}
	if err := Check(l, now, n); err != nil {
		return g.refuse(ctx, l, n, err)
	}
	g.warn(ctx, l, now, n)
	return nil
}

// WarnEvery spaces the gate's licence warnings (expiring, in grace, near
// the limit) in the log.
const WarnEvery = time.Hour

// warn logs the licence's warnings, at most once per WarnEvery.
func (g *Gate) warn(ctx context.Context, l *License, now time.Time, active int) {
	if g.Log == nil {
		return
	}
	ws := Warnings(l, now, active)
	if len(ws) == 0 {
		return
	}
	g.mu.Lock()
	due := g.warned.IsZero() || now.Sub(g.warned) >= WarnEvery
	if due {
		g.warned = now
	}
	g.mu.Unlock()
	for _, w := range ws {
		if due {
			g.Log.WarnContext(ctx, "licence: "+w, "license_id", l.ID, "active_devices", active)
		}
	}
}

// refuse logs a refusal at Warn: unlike a wrong password, it needs the
// operator, who may not read the devices' error messages.
func (g *Gate) refuse(ctx context.Context, l *License, active int, err error) error {
	if g.Log != nil {
		code, _, _ := errs.Public(err)
		attrs := []any{"code", code}
		if l != nil {
			attrs = append(attrs, "license_id", l.ID, "device_limit", l.DeviceLimit, "expires", l.Expires)
		}
		if active >= 0 {
			attrs = append(attrs, "active_devices", active)
		}
		g.Log.WarnContext(ctx, "activation refused by the licence", attrs...)
	}
	return err
}
