package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/linux"
	"github.com/custos-uem/custos/agent/sim"
)

// defaultAgentState is the agent's state directory when --state is not
// given, relative like the Core's data directory.
const defaultAgentState = "custos-agent"

// maxCAFile bounds the --ca file read.
const maxCAFile = 1 << 20

func agentUsage(w io.Writer) {
	fmt.Fprint(w, `usage: custos agent <command> [flags]

The device side: activate this device with a Core and keep it enrolled.

commands:
  activate  --server URL --email E --password P [--state DIR] [--ca FILE] [--simulate PLATFORM]
            activate this device (or a simulated one) and apply its configuration
  run       [--state DIR] [--poll DURATION] [--work-dir DIR] [--no-wait] [--once]
            check in with the Core on schedule and run its commands until stopped
  status    [--state DIR] [--json]
            show what the agent remembers (never the key)

Each flag may also be set as CUSTOS_<FLAG>, e.g. CUSTOS_PASSWORD.
Run 'custos agent <command> -h' for the flags of a command.
`)
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		agentUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		agentUsage(stderr)
		return errHelp
	case "activate":
		return agentActivate(ctx, args[1:], stdout, stderr)
	case "run":
		return agentRun(ctx, args[1:], stdout, stderr)
	case "status":
		return agentStatus(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "custos agent: unknown command %q\n\n", args[0])
	agentUsage(stderr)
	return errUsage
}

func agentActivate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent activate", stderr)
	var server, email, login, password, passwordFile, stateDir, caFile, simulate, logLevel string
	fs.StringVar(&server, "server", "", "URL of the Core, https://host[:port] (this or --relay is required)")
	relayURL := fs.String("relay", "", "URL of a relay, http://host:port: discovery finds the Core for --email, and the device reaches it through the relays")
	fs.StringVar(&email, "email", "", "the user's email address")
	fs.StringVar(&login, "login", "", "the user's username (instead of --email)")
	fs.StringVar(&password, "password", "", "activation password (prefer CUSTOS_PASSWORD or --password-file: arguments are visible to other local users)")
	fs.StringVar(&passwordFile, "password-file", "", "file holding the activation password")
	fs.StringVar(&stateDir, "state", defaultAgentState, "state directory: key, certificates, state.json (created 0700)")
	fs.StringVar(&caFile, "ca", "", "PEM CA certificate that signs the Core's TLS certificate (default: the system roots)")
	fs.StringVar(&simulate, "simulate", "", "simulate a device of this platform instead of this machine: "+joinPlatforms())
	fs.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if server == "" && *relayURL == "" {
		return usageError(fs, stderr, "--server or --relay is required")
	}
	user := email
	if login != "" {
		if email != "" && email != login {
			return usageError(fs, stderr, "--email and --login name different users")
		}
		user = login
	}
	if user == "" {
		return usageError(fs, stderr, "--email (or --login) is required")
	}
	if passwordFile != "" {
		b, err := readBounded(passwordFile, 4<<10)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		password = trimNewline(string(b))
	}
	if password == "" {
		return usageError(fs, stderr, "--password, --password-file or CUSTOS_PASSWORD is required")
	}
	log, err := newLogger(stderr, "text", logLevel)
	if err != nil {
		return err
	}
	store, err := agent.OpenDir(stateDir)
	if err != nil {
		return err
	}
	col, err := activationCollector(store, simulate, stdout)
	if err != nil {
		return err
	}
	opts := agent.Options{ServerURL: server, Store: store, Collector: col, Logger: log}
	if *relayURL != "" && server == "" {
		// Activation discovery: the relay answers with the server and the
		// relays that carry it.
		route, err := agent.Discover(ctx, nil, *relayURL, user)
		if err != nil {
			return err
		}
		opts.ServerURL, opts.Relays = agent.ServerURLFor(route.ServerID), route.Relays
		fmt.Fprintf(stdout, "server %s through %s\n", route.ServerID, strings.Join(route.Relays, ", "))
	}
	// The configuration is applied at activation (step 11) by what will
	// run the device: the simulated device itself, or this Linux system.
	if dev, ok := col.(*sim.Device); ok {
		opts = dev.Bind(opts)
	} else {
		opts.Applier = &linux.Applier{StateDir: stateDir}
	}
	if caFile != "" {
		if opts.ServerCAPEM, err = readBounded(caFile, maxCAFile); err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
	}
	c, err := agent.New(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	act, err := c.Activate(ctx, user, password)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "device_id:\t%s\nactivation_type:\t%s\nstate:\t%s\n", act.DeviceID, act.ActivationType, act.State)
	return tw.Flush()
}

// activationCollector picks what the device is: a simulation (--simulate,
// or the one the state directory already holds, so activating again is the
// same device), else this Linux machine.
func activationCollector(store agent.Store, simulate string, stdout io.Writer) (agent.Collector, error) {
	prev, err := agent.LoadState(store)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if simulate == "" && prev != nil && prev.Simulation != nil {
		simulate = prev.Simulation.Platform
		fmt.Fprintf(stdout, "this state directory holds a simulated %s device: activating it again\n", simulate)
	}
	if simulate == "" {
		return hostCollector()
	}
	if !slices.Contains(sim.Platforms, simulate) {
		return nil, fmt.Errorf("--simulate: no simulator for %q (have %s)", simulate, joinPlatforms())
	}
	if prev == nil || prev.Simulation == nil || prev.Simulation.Platform != simulate {
		// A new simulated device: its seed is saved before anything is
		// sent, so a failed activation retried is the same device.
		if prev == nil {
			prev = &agent.State{}
		}
		prev.Simulation = &agent.Simulation{Platform: simulate, Seed: sim.RandomSeed()}
		if err := agent.SaveState(store, prev); err != nil {
			return nil, err
		}
	}
	return sim.New(simulate, prev.Simulation.Seed)
}

func hostCollector() (agent.Collector, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("no inventory collector for %s yet: use --simulate (%s)", runtime.GOOS, joinPlatforms())
	}
	return &linux.Collector{}, nil
}

// agentRunConfig is what the flags of `agent run` ask for.
type agentRunConfig struct {
	stateDir, server, logLevel, workDir string
	poll                                time.Duration
	once, noWait                        bool
}

// parseAgentRun parses the flags of `agent run` (each also CUSTOS_<FLAG>).
func parseAgentRun(args []string, stderr io.Writer) (*agentRunConfig, error) {
	fs := newFlagSet("agent run", stderr)
	var cfg agentRunConfig
	fs.StringVar(&cfg.stateDir, "state", defaultAgentState, "state directory of an activated agent")
	fs.StringVar(&cfg.server, "server", "", "URL of the Core (default: the one the device activated with)")
	fs.DurationVar(&cfg.poll, "poll", 0, "check-in interval, replacing the Core's (default: the Core's, else 15m)")
	fs.StringVar(&cfg.workDir, "work-dir", "", "work-data directory that a wipe_work command empties (created 0700; default: <state>/"+linux.DefaultWorkDir+")")
	fs.BoolVar(&cfg.noWait, "no-wait", false, "do not hold a long poll open for commands between check-ins (rely on --poll)")
	fs.BoolVar(&cfg.once, "once", false, "check in once, run the commands due, print the result and exit")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if cfg.poll < 0 {
		return nil, usageError(fs, stderr, "--poll must be positive")
	}
	if cfg.workDir == "" {
		cfg.workDir = filepath.Join(cfg.stateDir, linux.DefaultWorkDir)
	}
	abs, err := filepath.Abs(cfg.workDir)
	if err != nil {
		return nil, usageError(fs, stderr, "--work-dir: %v", err)
	}
	cfg.workDir = abs
	return &cfg, nil
}

func agentRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseAgentRun(args, stderr)
	if err != nil {
		return err
	}
	stateDir := cfg.stateDir
	log, err := newLogger(stderr, "text", cfg.logLevel)
	if err != nil {
		return err
	}
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w: run 'custos agent activate' first", stateDir, agent.ErrNotActivated)
	}
	store, err := agent.OpenDir(stateDir)
	if err != nil {
		return err
	}
	st, err := agent.LoadState(store)
	if errors.Is(err, agent.ErrNotActivated) {
		return fmt.Errorf("%s: %w: run 'custos agent activate' first", stateDir, agent.ErrNotActivated)
	}
	if err != nil {
		return err
	}
	opts := agent.Options{ServerURL: cfg.server, Store: store, PollInterval: cfg.poll, Logger: log}
	if cfg.noWait {
		opts.Wait = agent.WaitNever
	}
	var simDev *sim.Device
	if st.Simulation != nil {
		if simDev, err = sim.New(st.Simulation.Platform, st.Simulation.Seed); err != nil {
			return err
		}
		opts = simDev.Bind(opts)
	} else {
		col, err := hostCollector()
		if err != nil {
			return err
		}
		ex := &linux.Executor{Collector: col, WorkDir: cfg.workDir, StateDir: stateDir, Out: stdout, Logger: log}
		if err := ex.Prepare(); err != nil {
			return fmt.Errorf("--work-dir: %w", err)
		}
		opts.Collector, opts.Applier, opts.Executor = col, &linux.Applier{StateDir: stateDir}, ex
	}
	c, err := agent.New(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if simDev != nil {
		simDev.Attach(c)
	}
	if ok, err := c.Activated(); !ok {
		if errors.Is(err, agent.ErrRefused) {
			return err // it says so, and when, without contacting the Core
		}
		return fmt.Errorf("%s: %w: run 'custos agent activate' again", stateDir, err)
	}
	if cfg.once {
		return agentOnce(ctx, c, st.DeviceID, stdout)
	}
	log.Info("agent running", "device_id", st.DeviceID, "server", c.State().ServerURL, "long_poll", c.Listening())
	if err := c.Run(ctx); err != nil {
		return err
	}
	log.Info("agent stopped")
	return nil
}

// agentOnce checks in, runs the commands due, and prints what happened.
func agentOnce(ctx context.Context, c *agent.Client, deviceID string, stdout io.Writer) error {
	res, err := c.Checkin(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "device_id:\t%s\nstate:\t%s\nconfig_version:\t%s\nacknowledged:\t%t\nsoftware_sent:\t%t\nnext_checkin:\t%s\n",
		deviceID, res.State, res.ConfigVersion, res.Acknowledged, res.SoftwareSent, res.Poll)
	cr, err := c.Commands(ctx)
	switch {
	case errors.Is(err, agent.ErrNotOffered):
		fmt.Fprintf(tw, "commands:\tnot offered by this Core\n")
	case err != nil:
		tw.Flush()
		return err
	default:
		fmt.Fprintf(tw, "commands:\t%d run, %d answered again\n", cr.Executed, cr.Repeated)
		for _, o := range cr.Commands {
			line := o.Type + " " + o.ID + ": " + o.Status
			if o.Message != "" {
				line += " (" + o.Message + ")"
			}
			fmt.Fprintf(tw, "\t%s\n", agent.DisplayText(line))
		}
	}
	return tw.Flush()
}

func agentStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent status", stderr)
	var stateDir string
	var asJSON bool
	fs.StringVar(&stateDir, "state", defaultAgentState, "state directory")
	fs.BoolVar(&asJSON, "json", false, "print state.json as is")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if _, err := os.Stat(stateDir); err != nil {
		return fmt.Errorf("%s: %w", stateDir, agent.ErrNotActivated)
	}
	store, err := agent.OpenDir(stateDir)
	if err != nil {
		return err
	}
	st, err := agent.LoadState(store)
	if err != nil {
		return fmt.Errorf("%s: %w", stateDir, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	usable := "yes"
	c, err := agent.New(agent.Options{Store: store})
	if err != nil {
		usable = "no: " + err.Error()
	} else {
		if ok, err := c.Activated(); errors.Is(err, agent.ErrRefused) {
			usable = "no: the Core refused it; run 'custos agent activate' again"
		} else if !ok {
			usable = "no: " + err.Error()
		}
		c.Close()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("server", st.ServerURL)
	row("device_id", st.DeviceID)
	row("activation_type", st.ActivationType)
	row("platform", st.Platform)
	row("hardware_id", st.HardwareID)
	row("state", st.State)
	if r := st.Refusal; r != nil && st.State == agent.StateRefused {
		row("refused_at", timeString(r.At))
		refusal := r.Reason
		if d := r.Detail(); d != "" {
			refusal += " (" + d + ")"
		}
		row("refusal", refusal)
	}
	if st.Simulation != nil {
		row("simulation", st.Simulation.Platform+" (seed "+strconv.FormatUint(st.Simulation.Seed, 10)+")")
	}
	row("server_trust", st.ServerTrust)
	row("cert_serial", st.CertSerial)
	row("cert_not_after", timeString(st.CertNotAfter))
	row("config_version", st.ConfigVersion)
	if st.ConfigVersion != "" {
		row("config_items", strconv.Itoa(len(st.ConfigItems)))
	}
	if st.PollSeconds > 0 {
		row("poll_seconds", strconv.Itoa(st.PollSeconds))
	}
	row("software_hash", st.SoftwareHash)
	row("activated_at", timeString(st.ActivatedAt))
	row("last_checkin", timeString(st.LastCheckin))
	row("certificate_usable", usable)
	return tw.Flush()
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func joinPlatforms() string { return strings.Join(sim.Platforms, ", ") }

// usageError reports a flag problem with the command's flags, as parse does.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// readBounded reads a small file, refusing one over limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
