package core

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Claimer claims the run of a scheduled job that is due, for exactly one of
// the Core processes sharing the database (sqlstore.DB.ClaimRun: a
// conditional UPDATE of the job's row, so the database's row lock decides,
// not an election of ours).
type Claimer interface {
	ClaimRun(ctx context.Context, name, owner string, interval time.Duration, now time.Time) (bool, error)
}

// job is work that must run once per interval across all Core processes.
type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) (int, error)
}

// scheduler runs jobs. Every process ticks; whoever claims the due run
// does it, the others find it claimed.
type scheduler struct {
	claim Claimer
	owner string
	now   func() time.Time
	log   *slog.Logger
	runs  *prometheus.CounterVec
	done  *prometheus.CounterVec

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newScheduler(c Claimer, owner string, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *scheduler {
	s := &scheduler{claim: c, owner: owner, now: now, log: log,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custos_job_runs_total", Help: "Scheduled job runs this process claimed and ran, by job and outcome."}, []string{"job", "outcome"}),
		done: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custos_job_items_total", Help: "Items (devices, commands) handled by scheduled jobs in this process."}, []string{"job"}),
	}
	reg.MustRegister(s.runs, s.done)
	return s
}

// start runs each job on its own ticker. A process checks a few times per
// interval, so a run is late by at most a quarter interval after the
// process that last ran it stops.
func (s *scheduler) start(ctx context.Context, jobs []job) {
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, j := range jobs {
		if j.every <= 0 {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tick := time.NewTicker(max(j.every/4, 10*time.Millisecond))
			defer tick.Stop()
			for {
				s.tryRun(ctx, j)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
}

func (s *scheduler) tryRun(ctx context.Context, j job) {
	ok, err := s.claim.ClaimRun(ctx, j.name, s.owner, j.every, s.now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("scheduler: claim failed", "job", j.name, "err", err)
		}
		return
	}
	if !ok {
		return
	}
	n, err := j.run(ctx)
	s.done.WithLabelValues(j.name).Add(float64(n))
	if err != nil {
		s.runs.WithLabelValues(j.name, "error").Inc()
		if ctx.Err() == nil {
			s.log.Error("scheduler: job failed", "job", j.name, "err", err)
		}
		return
	}
	s.runs.WithLabelValues(j.name, "ok").Inc()
	s.log.Debug("scheduler: job ran", "job", j.name, "items", n)
}

func (s *scheduler) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}
