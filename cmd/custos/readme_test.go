package main

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// TestREADMEWalkThrough runs the README's walk-through through the real
// command line (the same run() as the binary): serve, add a user, give
// them an activation password, activate a simulated Android device with the
// agent, list devices, give it a policy and lock it, remove the device, and
// see the agent refused.
func TestREADMEWalkThrough(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "custos-data")
			serveArgs := []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0", "--metrics-listen", "", "--log-level", "error"}
			if backend != "sqlite" {
				serveArgs = append(serveArgs, "--database", sqltest.DSN(t, backend))
			}
			url, relayAddr := mustServe(t, serveArgs)
			cli := func(args ...string) string {
				t.Helper()
				var out, errOut strings.Builder
				if code := run(context.Background(), args, &out, &errOut); code != 0 {
					t.Fatalf("custos %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
				}
				return out.String()
			}
			admin := func(args ...string) string {
				t.Helper()
				return cli(append([]string{"admin", "--server", url, "--data", data}, args...)...)
			}

			admin("users", "add", "--email", "alice@example.com", "--name", "Alice Example")
			pw := outField(t, admin("users", "password", "alice@example.com"), "activation password")
			phone := filepath.Join(dir, "alice-phone")
			act := cli("agent", "activate", "--server", url, "--ca", filepath.Join(data, "ca.pem"),
				"--email", "alice@example.com", "--password", pw, "--state", phone, "--simulate", "android")
			id := outField(t, act, "device_id")
			if outField(t, act, "state") != "active" {
				t.Fatalf("activation output:\n%s", act)
			}
			if list := admin("devices", "list"); !strings.Contains(list, id) || !strings.Contains(list, "active") {
				t.Fatalf("devices list:\n%s", list)
			}
			cli("agent", "run", "--state", phone, "--once")

			// Step 6: a policy and a lock reach the phone at its check-in.
			pol := outField(t, admin("policies", "add", "--kind", "it_policy", "--name", "Phones", "--rank", "1",
				"--settings", `{"password_required":true,"password_min_length":8,"screen_lock_timeout_seconds":300}`), "id")
			admin("policies", "assign", pol, "user", "alice@example.com")
			lock := outField(t, admin("devices", "command", id, "lock", "--payload", `{"message":"Call the help desk"}`), "id")
			if run := cli("agent", "run", "--state", phone, "--once"); !strings.Contains(run, "lock "+lock+": acknowledged") {
				t.Fatalf("agent run:\n%s", run)
			}
			if cfg := admin("devices", "configuration", id); outField(t, cfg, "up_to_date") != "true" || !strings.Contains(cfg, "applied") {
				t.Fatalf("configuration:\n%s", cfg)
			}
			if hist := admin("devices", "commands", id, "--history"); !strings.Contains(hist, lock) || !strings.Contains(hist, "acknowledged") {
				t.Fatalf("history:\n%s", hist)
			}

			// Step 7: a second phone knows only its user's address; the
			// relay tells it where its Core is and carries it there.
			admin("users", "add", "--email", "bob@example.com", "--name", "Bob Example")
			bobPw := outField(t, admin("users", "password", "bob@example.com"), "activation password")
			var bob string
			for try := 0; ; try++ { // the new user reaches the relay's discovery within moments
				var out, errOut strings.Builder
				code := run(context.Background(), []string{"agent", "activate", "--relay", "http://" + relayAddr, "--ca", filepath.Join(data, "ca.pem"),
					"--email", "bob@example.com", "--password", bobPw, "--state", filepath.Join(dir, "bob-phone"), "--simulate", "ios"}, &out, &errOut)
				if code == 0 {
					bob = out.String()
					break
				}
				if try == 50 || !strings.Contains(errOut.String(), "no_route") {
					t.Fatalf("activate through the relay: exit %d\n%s%s", code, out.String(), errOut.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if outField(t, bob, "state") != "active" || !strings.Contains(bob, "through "+relayAddr) {
				t.Fatalf("activation through the relay:\n%s", bob)
			}
			if run := cli("agent", "run", "--state", filepath.Join(dir, "bob-phone"), "--once"); outField(t, run, "state") != "active" {
				t.Fatalf("agent run through the relay:\n%s", run)
			}

			admin("devices", "remove", id)

			var out, errOut strings.Builder
			code := run(context.Background(), []string{"agent", "run", "--state", phone, "--once"}, &out, &errOut)
			if code == 0 || !strings.Contains(errOut.String(), "check-in refused: the device was removed or its certificate revoked (certificate_revoked") {
				t.Fatalf("removed device: exit %d\n%s", code, errOut.String())
			}
		})
	}
}

// mustServe runs "custos serve" in the background until the test ends and
// returns the URL it printed and its embedded relay's device address.
func mustServe(t *testing.T, args []string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("custos serve exited %d", code)
		}
	})
	urls, relays := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`listening on (https://\S+)`)
		rr := regexp.MustCompile(`devices on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
			if m := rr.FindStringSubmatch(sc.Text()); m != nil {
				relays <- m[1]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	var u, r string
	for u == "" || r == "" {
		select {
		case u = <-urls:
		case r = <-relays:
		case code := <-done:
			t.Fatalf("custos serve exited %d before listening", code)
		case <-time.After(30 * time.Second):
			t.Fatal("custos serve did not print its addresses")
		}
	}
	return u, r
}

// outField returns the value of "name: value" in out.
func outField(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q in:\n%s", name, out)
	return ""
}
