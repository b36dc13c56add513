// Package pushtest has helpers for testing push senders without sleeping:
// a Sleeper that records the delays a RetryPolicy asked for.
package pushtest

import (
	"context"
	"sync"
	"time"

	"github.com/custos-uem/custos/push"
)

// Sleeper records requested sleeps and returns at once.
type Sleeper struct {
	mu    sync.Mutex
	slept []time.Duration
	// OnSleep, if set, runs on every sleep (e.g. to cancel a context).
	OnSleep func(d time.Duration)
}

// Sleep records d and returns ctx.Err().
func (s *Sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.slept = append(s.slept, d)
	f := s.OnSleep
	s.mu.Unlock()
	if f != nil {
		f(d)
	}
	return ctx.Err()
}

// Slept returns the recorded sleeps.
func (s *Sleeper) Slept() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.slept...)
}

// Policy returns a RetryPolicy that records its sleeps in s, with jitter
// fixed at the middle of its range (Rand returns 0.5), the clock fixed at
// now, and attemptTimeout per attempt.
func Policy(s *Sleeper, maxAttempts int, attemptTimeout time.Duration, now time.Time) push.RetryPolicy {
	return push.RetryPolicy{
		MaxAttempts:    maxAttempts,
		AttemptTimeout: attemptTimeout,
		Sleep:          s.Sleep,
		Rand:           func() float64 { return 0.5 },
		Now:            func() time.Time { return now },
	}
}
