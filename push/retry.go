package push

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults of RetryPolicy. A push is a hint: a few quick attempts are worth
// it, long persistence is not (the device polls on its own schedule).
const (
	DefaultMaxAttempts    = 4
	DefaultBaseDelay      = 250 * time.Millisecond
	DefaultMaxDelay       = 8 * time.Second
	DefaultAttemptTimeout = 15 * time.Second
)

// RetryPolicy is the retry behaviour every provider client shares:
//
//   - a *ProviderError with Retryable (429, 5xx, transport errors and
//     per-attempt timeouts) is retried, at most MaxAttempts attempts in all;
//   - the delay is the provider's Retry-After when it sent one (capped at
//     MaxRetryAfter), else capped exponential backoff with jitter:
//     BaseDelay·2^(n-1), at most MaxDelay, of which a random half is waived
//     ("equal jitter", so a fleet of senders does not retry in lockstep);
//   - anything else (ErrUnregistered, 4xx, invalid target) is returned at once;
//   - ctx is respected between and during attempts.
//
// The zero value is usable and means the defaults. Sleep, Rand and Now are
// injected so that tests neither sleep nor depend on chance.
type RetryPolicy struct {
	MaxAttempts    int
	BaseDelay      time.Duration
	MaxDelay       time.Duration
	MaxRetryAfter  time.Duration // cap on Retry-After; default MaxRetryAfter
	AttemptTimeout time.Duration // deadline of one attempt; default DefaultAttemptTimeout

	// Sleep waits d or until ctx is done (then returns ctx.Err()).
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a float in [0, 1) for jitter.
	Rand func() float64
	// Now is the clock used to read HTTP-date Retry-After values.
	Now func() time.Time
	// Metrics, if set, is told about every retry.
	Metrics Metrics
}

// SleepContext waits d or until ctx is done.
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithDefaults returns p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = MaxRetryAfter
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = DefaultAttemptTimeout
	}
	if p.Sleep == nil {
		p.Sleep = SleepContext
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

// Backoff returns the delay before attempt n+1 after n failed attempts
// (n ≥ 1) when the provider gave no Retry-After.
func (p RetryPolicy) Backoff(n int) time.Duration {
	p = p.WithDefaults()
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	if d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + time.Duration(p.Rand()*float64(d-half))
}

// Do runs attempt until it succeeds, fails permanently, MaxAttempts are used
// up, or ctx is done. Each attempt gets its own deadline (AttemptTimeout);
// an attempt that ran out of it while ctx is still live is a retryable
// timeout. provider labels errors and metrics.
func (p RetryPolicy) Do(ctx context.Context, provider string, attempt func(ctx context.Context) error) error {
	p = p.WithDefaults()
	var last error
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return fmt.Errorf("push %s: %w; last attempt: %w", provider, err, last)
			}
			return fmt.Errorf("push %s: %w", provider, err)
		}
		actx, cancel := context.WithTimeout(ctx, p.AttemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The caller gave up during the attempt: report that, not a
			// timeout of ours.
			return fmt.Errorf("push %s: %w; last attempt: %w", provider, ctx.Err(), err)
		}
		var pe *ProviderError
		if !errors.As(err, &pe) {
			if errors.Is(err, context.DeadlineExceeded) {
				pe = TransportError(provider, err)
				err = pe
			} else {
				return err
			}
		}
		last = err
		if !pe.Retryable {
			return err
		}
		if n >= p.MaxAttempts {
			return fmt.Errorf("push %s: giving up after %d attempts: %w", provider, n, err)
		}
		delay := pe.RetryAfter
		if delay > p.MaxRetryAfter {
			delay = p.MaxRetryAfter
		}
		if delay <= 0 {
			delay = p.Backoff(n)
		}
		if p.Metrics != nil {
			p.Metrics.ObserveRetry(provider, retryReason(pe))
		}
		if err := p.Sleep(ctx, delay); err != nil {
			return fmt.Errorf("push %s: %w; last attempt: %w", provider, err, last)
		}
	}
}

func retryReason(pe *ProviderError) string {
	switch {
	case pe.Status == 429:
		return "throttled"
	case pe.Status >= 500:
		return "server_error"
	case pe.Reason == "timeout":
		return "timeout"
	case pe.Status == 0:
		return "transport"
	}
	return "other"
}
