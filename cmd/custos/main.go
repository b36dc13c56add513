// Command custos is the single Custos binary. Each subcommand runs one role
// and is a thin shell: it parses flags (each mirrored by a CUSTOS_*
// environment variable) into the role's Main and runs it until a signal.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the Core with everything in one process (embedded database by default)", runServe},
		{"agent", "the device side: activate this device, stay enrolled", runAgent},
		{"admin", "drive the REST API from the command line", runAdmin},
		{"bench", "measure activations per second against an in-process Core", runBench},
		{"relay", "run a relay: activation discovery, licensing, device tunnels, push fan-out", runRelay},
		{"router", "a SOCKS5 proxy for outbound links (the seed's router)", runRouter},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: custos <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'custos <command> -h' for the flags of a command.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
				switch err {
				case errHelp:
					return 0
				case errUsage:
					return 2
				}
				fmt.Fprintf(stderr, "custos %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "custos: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
