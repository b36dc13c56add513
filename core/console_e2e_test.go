package core_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/console/consoletest"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// scriptName is what a hostile device reports as its name.
const scriptName = `<script>document.title="pwned"</script>{{.}}`

// hostile reports scriptName as the device's name.
type hostile struct{ agent.Collector }

func (h hostile) Collect(ctx context.Context) (*agent.Inventory, error) {
	inv, err := h.Collector.Collect(ctx)
	if inv != nil {
		inv.Name = scriptName
	}
	return inv, err
}

// browserFor starts Chromium trusting the Core's server certificate.
func browserFor(t *testing.T, e *env) *consoletest.Browser {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(e.dir, pki.TLSFile), filepath.Join(e.dir, pki.TLSKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return consoletest.Start(t, consoletest.LeafOf(t, c))
}

func signIn(t *testing.T, b *consoletest.Browser, url, login, password string) {
	t.Helper()
	b.Run("sign in at "+url, chromedp.Navigate(url+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#login-name"), login),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("form.signout"))) // only a signed-in page has it
}

// TestConsoleEndToEnd is the browser test: an administrator signs
// in, creates a user, generates an activation password; an agent
// activates; its device appears with its inventory (its hostile name
// shown inert); the administrator locks it and sees the lock
// acknowledged. Then the user signs in to Self-Service, locks their own
// device, and cannot act on another user's device.
func TestConsoleEndToEnd(t *testing.T) {
	e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
		if os.Getenv("CONSOLE_DEBUG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
	})
	ctx := context.Background()
	consoleURL, portalURL := e.m.URL()+"/console", e.m.URL()+"/portal"
	pwb, err := os.ReadFile(filepath.Join(e.dir, core.AdminPasswordFile))
	if err != nil {
		t.Fatalf("the first start wrote no console password: %v", err)
	}
	adminPw := strings.TrimSpace(string(pwb))

	b := browserFor(t, e)
	// A wrong password first: refused, and no session.
	b.Run("wrong password", chromedp.Navigate(consoleURL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#login-name"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "not-the-password"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	signIn(t, b, consoleURL, "admin", adminPw)
	if got := b.Text("#total-devices"); got != "0" {
		t.Fatalf("dashboard of an empty installation shows %q devices", got)
	}
	b.Screenshot("console-dashboard")

	b.Run("add a user", chromedp.Navigate(consoleURL+"/users"),
		chromedp.SendKeys(chromedp.CSS("#user-email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#user-name"), "Alice Example"),
		chromedp.Click(chromedp.CSS("#user-add")),
		chromedp.WaitVisible(chromedp.CSS("#generate-password")),
		chromedp.Click(chromedp.CSS("#generate-password")),
		chromedp.WaitVisible(chromedp.CSS("#activation-password")))
	password := b.Text("#activation-password")
	b.Screenshot("console-user")

	dev, err := sim.New("android", 11)
	if err != nil {
		t.Fatal(err)
	}
	opts := dev.Bind(agent.Options{ServerURL: e.m.URL(), ServerCAs: e.roots, Store: agent.NewMemStore(), Wait: agent.WaitNever})
	opts.Collector = hostile{opts.Collector}
	c, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	act, err := c.Activate(ctx, "alice@example.com", password)
	if err != nil {
		t.Fatalf("activate with the password the console showed: %v", err)
	}

	b.Run("devices", chromedp.Navigate(consoleURL+"/devices"), chromedp.WaitVisible(chromedp.CSS("#devices")))
	if list := b.Text("#devices"); !strings.Contains(list, scriptName) {
		t.Fatalf("devices page does not show the device's name as text:\n%s", list)
	}
	b.Run("device page", chromedp.Navigate(consoleURL+"/devices/"+act.DeviceID), chromedp.WaitVisible(chromedp.CSS("#inventory")))
	if title, _ := chromedp.Run(b.Ctx, chromedp.Title()); title == "pwned" {
		t.Fatal("the device's name ran as a script")
	}
	if inv := b.Text("#inventory"); !strings.Contains(inv, "Serial number") || !strings.Contains(inv, "Android") {
		t.Fatalf("inventory on the device page:\n%s", inv)
	}
	b.Screenshot("console-device")
	b.Run("lock", chromedp.SetValue(chromedp.CSS("#command-type"), "lock"),
		chromedp.Click(chromedp.CSS("#command-send")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	if _, err := c.Commands(ctx); err != nil {
		t.Fatalf("the agent's command round trip: %v", err)
	}
	if !dev.Locked() {
		t.Fatal("the device did not lock")
	}
	b.Run("reload", chromedp.Navigate(consoleURL+"/devices/"+act.DeviceID), chromedp.WaitVisible(chromedp.CSS("#commands")))
	if cmds := b.Text("#commands"); !strings.Contains(cmds, "lock") || !strings.Contains(cmds, "acknowledged") {
		t.Fatalf("the command list after the agent answered:\n%s", cmds)
	}
	b.Screenshot("console-device-locked")

	// A state change without its CSRF token is refused.
	b.Run("post without CSRF token", chromedp.Navigate(consoleURL+"/devices/"+act.DeviceID),
		chromedp.WaitVisible(chromedp.CSS("#send-command")),
		chromedp.RemoveAttribute(chromedp.CSS("#send-command input[name=csrf_token]"), "value"),
		chromedp.Click(chromedp.CSS("#command-send")),
		chromedp.WaitVisible(chromedp.CSS("#error")))
	if msg := b.Text("#error"); !strings.Contains(msg, "reload the page") {
		t.Fatalf("a form without its token: %q", msg)
	}

	// Self-Service: the administrator gives Alice a portal password.
	u, _ := e.mustUser("bob@example.com")
	b.Run("portal password", chromedp.Navigate(consoleURL+"/users"), chromedp.WaitVisible(chromedp.CSS("#users")),
		chromedp.Click(chromedp.CSS("#users tbody a")),
		chromedp.WaitVisible(chromedp.CSS("#portal-password-value")),
		chromedp.SendKeys(chromedp.CSS("#portal-password-value"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("#portal-password-set")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))

	// Bob's device, which Alice must not reach.
	bobPw := e.mustPassword(u.ID, "")
	bobDev, err := sim.New("android", 12)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := agent.New(bobDev.Bind(agent.Options{ServerURL: e.m.URL(), ServerCAs: e.roots, Store: agent.NewMemStore(), Wait: agent.WaitNever}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bc.Close)
	bobAct, err := bc.Activate(ctx, "bob@example.com", bobPw)
	if err != nil {
		t.Fatal(err)
	}

	p := browserFor(t, e)
	signIn(t, p, portalURL, "alice@example.com", "correct horse battery")
	if mine := p.Text("#my-devices"); !strings.Contains(mine, scriptName) || strings.Contains(mine, bobAct.DeviceID) {
		t.Fatalf("Alice's devices:\n%s", mine)
	}
	p.Screenshot("portal-devices")
	p.Run("portal lock", chromedp.SetValue(chromedp.CSS("#my-devices select"), "lock"),
		chromedp.Click(chromedp.CSS("#my-devices .send-command")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	if _, err := c.Commands(ctx); err != nil || locks(dev) != 2 {
		t.Fatalf("the lock from Self-Service: %v, %d locks run", err, locks(dev))
	}
	// Another user's device ID in the same form: 404, and nothing queued.
	p.Run("another user's device", chromedp.Navigate(portalURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#my-devices form")),
		chromedp.SetAttributeValue(chromedp.CSS("#my-devices form"), "action", "/portal/devices/"+bobAct.DeviceID+"/commands"),
		chromedp.Click(chromedp.CSS("#my-devices .send-command")),
		chromedp.WaitVisible(chromedp.CSS("#error")))
	if title, _ := chromedp.Run(p.Ctx, chromedp.Title()); !strings.Contains(title, "Not Found") {
		t.Fatalf("another user's device: page %q, want Not Found", title)
	}
	var queue struct {
		Items []struct{ ID string } `json:"items"`
	}
	e.api("GET", "/api/v1/devices/"+bobAct.DeviceID+"/commands?status=open", nil, &queue)
	if len(queue.Items) != 0 {
		t.Fatalf("Bob's device got commands from Alice: %+v", queue.Items)
	}
	// The administrator's actions are in the audit log.
	b.Run("audit", chromedp.Navigate(consoleURL+"/audit"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	audit := b.Text("#audit")
	for _, want := range []string{"user.create", "activation_password.create", "command.send", "user.portal_password"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit log lacks %s:\n%s", want, audit)
		}
	}
	b.Screenshot("console-audit")
	fmt.Fprintln(os.Stderr, "screenshots in", os.Getenv(consoletest.EnvArtifacts))
}

// locks counts the locks the simulated device ran.
func locks(d *sim.Device) int {
	n := 0
	for _, x := range d.Executed() {
		if x.Type == "lock" {
			n++
		}
	}
	return n
}
