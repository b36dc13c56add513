package core

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/notify"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// Default intervals of the scheduled jobs.
const (
	DefaultComplianceInterval = 15 * time.Minute
	DefaultExpiryInterval     = time.Minute
	// DefaultWebSessionSweep is how often expired console and Self-Service
	// sessions and stale sign-in failures are deleted.
	DefaultWebSessionSweep = 10 * time.Minute
	// DefaultCommandRetention keeps a command's history as long as a
	// command may live (command.MaxTTL); MinCommandRetention leaves an
	// administrator a day to read a result.
	DefaultCommandRetention = command.MaxTTL
	MinCommandRetention     = 24 * time.Hour
	commandPruneInterval    = time.Hour
)

// startServices builds the command queue, policies, compliance and the
// notifier, and starts the scheduled jobs.
func (m *Main) startServices(ctx context.Context) error {
	cfg := &m.Config

	sender := cfg.PushSender
	if sender == nil {
		var err error
		if sender, err = m.pushSender(); err != nil {
			return err
		}
	}
	// MDM pushes through the uploaded push certificate (core/apple_push.go).
	sender, err := m.newApplePush(sender)
	if err != nil {
		return err
	}
	if err := m.newAppleDEP(); err != nil {
		return err
	}
	m.Notifier = &notify.Notifier{Tokens: m.DB, Sender: sender, Bus: m.DB, Log: cfg.Logger}
	ready := m.Notifier.Start(ctx, m.ProcessID, m.Registry)

	retention := interval(cfg.CommandRetention, DefaultCommandRetention)
	if retention > 0 && retention < MinCommandRetention {
		return fmt.Errorf("command retention %v: keep commands at least %v, or a negative value to keep them all", retention, MinCommandRetention)
	}
	m.Commands = &command.Service{Store: m.DB, Notify: m.Notifier.Notify, Now: cfg.Now, Box: m.box, Retention: retention}
	m.Policies = &policy.Service{Store: m.DB, Changed: m.configChanged, Now: cfg.Now, Box: m.box}
	m.Compliance = &compliance.Engine{Store: m.DB, Devices: m.DB, Profile: m.complianceProfile,
		Commands: m.Commands, Remove: m.Devices.Remove, Now: cfg.Now, Logger: cfg.Logger}

	select { // cross-process wake-ups in place before devices are served
	case <-ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		cfg.Logger.Warn("wake-up listener not ready after 10s; long polls rely on this process's own queue until it is")
	}

	var userStore user.Stores = m.DB
	if m.Relay != nil {
		userStore = routeSyncing{Stores: m.DB, sync: m.Relay.RequestRouteSync}
	}
	m.Users = &user.Service{Store: userStore, Devices: m.Devices, Now: cfg.Now}
	if err := m.startMail(); err != nil {
		return err
	}
	var verifier websession.Verifier
	if cfg.Directory.enabled() {
		if err := m.startDirectory(); err != nil {
			return err
		}
		verifier = directoryVerifier{dir: m.Directory.Dir, users: m.DB, admins: m.DB}
	}
	if err := m.newSessions(verifier); err != nil {
		return err
	}
	m.sched = newScheduler(m.DB, m.ProcessID, cfg.Now, cfg.Logger, m.Registry)
	jobs := []job{
		{name: "compliance", every: interval(cfg.ComplianceInterval, DefaultComplianceInterval), run: m.Compliance.Sweep},
		{name: "command-expiry", every: interval(cfg.ExpiryInterval, DefaultExpiryInterval), run: m.Commands.Expire},
		{name: "web-sessions", every: DefaultWebSessionSweep, run: m.Sessions.Sweep},
		{name: "windows-sessions", every: DefaultWebSessionSweep, run: m.sweepWindowsSessions},
	}
	if retention > 0 {
		jobs = append(jobs, job{name: "command-history", every: commandPruneInterval, run: m.Commands.Prune})
	}
	if m.Directory != nil && cfg.Directory.SyncInterval >= 0 {
		jobs = append(jobs, job{name: "directory-sync", every: m.Directory.Period(), run: m.directoryJob})
	}
	jobs = append(jobs, m.appleJobs()...)
	m.sched.start(ctx, jobs)
	return nil
}

func interval(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v // negative: the scheduler skips it
}

// configChanged queues a configuration sync for devices whose effective
// configuration may have changed: the command makes the change durable
// for each device (it is delivered even if every push is lost) and its
// commit sends the push hints.
func (m *Main) configChanged(ctx context.Context, deviceIDs []string) error {
	for len(deviceIDs) > 0 {
		chunk := deviceIDs[:min(len(deviceIDs), command.MaxBulk)]
		deviceIDs = deviceIDs[len(chunk):]
		if _, err := m.Commands.Send(ctx, chunk, command.NewCommand{Type: command.SyncConfig, CreatedBy: "system"}); err != nil {
			return fmt.Errorf("queue configuration sync: %w", err)
		}
	}
	return nil
}

// complianceProfile is the compliance profile in the device's effective
// configuration, or nil.
func (m *Main) complianceProfile(ctx context.Context, d *device.Device) (*compliance.Profile, error) {
	eff, err := m.Policies.Effective(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, it := range eff.Items {
		if it.Kind != policy.Compliance {
			continue
		}
		raw, err := json.Marshal(it.Payload)
		if err != nil {
			return nil, err
		}
		p, err := compliance.ParseProfile(raw)
		if err != nil {
			return nil, fmt.Errorf("compliance profile %s: %w", it.ID, err)
		}
		p.ID = it.ID
		return p, nil
	}
	return nil, nil
}

// checkCompliance evaluates a device that just reported. Its failure is
// logged, never the device's: the scheduled sweep evaluates it again.
func (m *Main) checkCompliance(ctx context.Context, d *device.Device) {
	if _, err := m.Compliance.Check(ctx, d.ID); err != nil {
		m.Config.Logger.WarnContext(ctx, "compliance check failed; the sweep retries", "device", d.ID, "err", err)
	}
}
