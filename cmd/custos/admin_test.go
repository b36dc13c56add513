package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-uem/custos/api/apitest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// adminRun runs "custos admin" with the server flags of e and args.
type adminRun struct {
	t    *testing.T
	e    *apitest.Env
	base []string
}

func newAdminRun(t *testing.T, e *apitest.Env) *adminRun {
	base := []string{"--server", e.URL, "--data", e.DataDir}
	if strings.HasPrefix(e.URL, "https://") {
		base = append(base, "--ca", e.CAFile(t))
	}
	return &adminRun{t: t, e: e, base: base}
}

func (a *adminRun) run(args ...string) (string, string, error) {
	a.t.Helper()
	var out, errOut bytes.Buffer
	err := runAdmin(context.Background(), append(append([]string{}, a.base...), args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// ok runs and fails the test on an error.
func (a *adminRun) ok(args ...string) string {
	a.t.Helper()
	out, errOut, err := a.run(args...)
	if err != nil {
		a.t.Fatalf("custos admin %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// json runs with --json and decodes the answer.
func (a *adminRun) json(args ...string) map[string]any {
	a.t.Helper()
	out := a.ok(append(args, "--json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		a.t.Fatalf("custos admin %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

func apiErr(t *testing.T, err error, code string) {
	t.Helper()
	var e *apiError
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	if e.RequestID == "" || !strings.Contains(err.Error(), "request ID "+e.RequestID) || !strings.Contains(err.Error(), code) {
		t.Errorf("error message lacks code or request ID: %q", err.Error())
	}
}

var passwordLine = regexp.MustCompile(`activation password: (\S+)`)

func TestAdminCLI(t *testing.T) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			e := apitest.New(t, b, true)
			a := newAdminRun(t, e)

			// Users.
			out := a.ok("users", "add", "--email", "Alice@Example.com", "--name", "Alice A.")
			if !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "Alice A.") {
				t.Errorf("users add: %s", out)
			}
			u := a.json("users", "get", "alice")
			uid := u["id"].(string)
			if list := a.ok("users", "list"); !strings.Contains(list, uid) || !strings.HasPrefix(list, "ID ") || !strings.Contains(list, "alice@example.com") {
				t.Errorf("users list:\n%s", list)
			}
			if out := a.ok("users", "update", "alice@example.com", "--name", "Alice B."); !strings.Contains(out, "Alice B.") {
				t.Errorf("users update: %s", out)
			}
			_, _, err := a.run("users", "add", "--email", "alice@example.com", "--username", "other")
			apiErr(t, err, "user_email_taken")
			_, _, err = a.run("users", "add", "--email", "not-an-email")
			apiErr(t, err, "invalid_user")
			if !strings.Contains(err.Error(), "email:") {
				t.Errorf("field errors not shown: %v", err)
			}

			// Activation password: shown once, works once.
			out = a.ok("users", "password", "alice", "--expires", "48h")
			m := passwordLine.FindStringSubmatch(out)
			if m == nil || !strings.Contains(out, "shown only this once") {
				t.Fatalf("users password: %s", out)
			}
			devID := e.EnrollDevice(t, "alice", m[1], "hw-alice", "laptop\x1b[2J")
			if out := a.ok("users", "passwords", uid); strings.Contains(out, m[1]) || !strings.Contains(out, devID) {
				t.Errorf("users passwords:\n%s", out)
			}
			a.ok("users", "password", uid, "--password", "chosen secret")
			if out := a.ok("users", "revoke-passwords", "alice"); !strings.Contains(out, "revoked 1") {
				t.Errorf("revoke-passwords: %s", out)
			}

			// Groups and profiles.
			g := a.json("groups", "add", "--name", "Sales", "--description", "<script>x</script>")
			gid := g["id"].(string)
			a.ok("groups", "add-member", gid, "alice@example.com")
			if out := a.ok("groups", "members", gid); !strings.Contains(out, uid) {
				t.Errorf("groups members:\n%s", out)
			}
			if out := a.ok("groups", "list"); !strings.Contains(out, "Sales") {
				t.Errorf("groups list:\n%s", out)
			}
			a.ok("groups", "update", gid, "--description", "")
			if out := a.ok("profiles", "types"); !strings.Contains(out, "work_space_only") || !strings.Contains(out, "android") {
				t.Errorf("profiles types:\n%s", out)
			}
			p := a.json("profiles", "add", "--name", "Field", "--type", "android=work_space_only", "--type", "linux=mdm_controls", "--max-devices", "3")
			pid := p["id"].(string)
			if p["max_devices"] != float64(3) || len(p["types"].(map[string]any)) != 2 {
				t.Errorf("profiles add: %v", p)
			}
			if out := a.ok("profiles", "list"); !strings.Contains(out, "android=work_space_only,linux=mdm_controls") {
				t.Errorf("profiles list:\n%s", out)
			}
			a.ok("profiles", "update", pid, "--rank", "7")
			a.ok("users", "update", "alice", "--profile", pid)
			if ep := a.json("users", "effective-profile", "alice"); ep["source"] != "user" {
				t.Errorf("effective profile: %v", ep)
			}
			a.ok("users", "update", "alice", "--profile", "")
			a.ok("groups", "update", gid, "--profile", pid)
			if out := a.ok("users", "effective-profile", "alice"); !strings.Contains(out, "group") || !strings.Contains(out, "Field") {
				t.Errorf("effective profile via group:\n%s", out)
			}
			a.ok("groups", "remove-member", gid, uid)
			_, _, err = a.run("groups", "remove-member", gid, uid)
			apiErr(t, err, "member_not_found")

			// Devices: a device-chosen name cannot drive the terminal.
			list := a.ok("devices", "list", "--user", "alice")
			if !strings.Contains(list, devID) || !strings.Contains(list, "alice@example.com") || strings.Contains(list, "\x1b") || !strings.Contains(list, `\x1b[2J`) {
				t.Errorf("devices list:\n%q", list)
			}
			e.Report(t, devID, device.Info{Hostname: "host-1", OSName: "Debian", Attributes: map[string]string{"note": "\x1b]0;pwned\a"}}, []device.App{{Name: "bash", Version: "5.2"}})
			detail := a.ok("devices", "get", devID)
			if !strings.Contains(detail, "host-1") || !strings.Contains(detail, "bash") || strings.Contains(detail, "\x1b") {
				t.Errorf("devices get:\n%q", detail)
			}
			a.ok("devices", "remove", devID)
			_, _, err = a.run("devices", "remove", devID)
			apiErr(t, err, "device_not_found")
			if out := a.ok("devices", "list", "--state", "removed"); !strings.Contains(out, devID) {
				t.Errorf("removed devices:\n%s", out)
			}

			// Tokens.
			out = a.ok("tokens", "add", "--name", "ci", "--expires", "1h")
			tok := regexp.MustCompile(`token:\s+(cst_\S+)`).FindStringSubmatch(out)
			tid := regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(out)
			if tok == nil || tid == nil {
				t.Fatalf("tokens add: %s", out)
			}
			if _, _, err := a.run("--token", tok[1], "users", "list"); err != nil {
				t.Errorf("new token: %v", err)
			}
			if out := a.ok("tokens", "list"); !strings.Contains(out, "ci") || strings.Contains(out, tok[1]) {
				t.Errorf("tokens list:\n%s", out)
			}
			a.ok("tokens", "revoke", tid[1])
			_, _, err = a.run("--token", tok[1], "users", "list")
			apiErr(t, err, "token_revoked")

			// Audit.
			audit := a.ok("audit", "list", "--limit", "500")
			for _, action := range []string{"user.create", "user.update", "user.password.set", "user.password.revoke", "group.create", "group.member.add",
				"profile.create", "device.remove", "token.create", "token.revoke", "auth.denied"} {
				if !strings.Contains(audit, action) {
					t.Errorf("audit list lacks %s", action)
				}
			}
			if !strings.Contains(audit, "admin") || !strings.Contains(audit, "127.0.0.1") || !strings.Contains(audit, "user_email_taken") {
				t.Errorf("audit list:\n%s", audit)
			}
			_, stderr, _ := a.run("audit", "list", "--limit", "2")
			if !strings.Contains(stderr, "--before") {
				t.Errorf("no paging hint: %q", stderr)
			}

			// Unknown objects and cleanup.
			_, _, err = a.run("groups", "get", "0190a000-0000-7000-8000-000000000001")
			apiErr(t, err, "group_not_found")
			if _, _, err := a.run("users", "get", "nobody@example.com"); err == nil || !strings.Contains(err.Error(), "no user has the login") {
				t.Errorf("unknown login: %v", err)
			}
			a.ok("groups", "delete", gid)
			a.ok("users", "delete", "alice")
			a.ok("profiles", "delete", pid)
			if out := a.ok("users", "list"); strings.Contains(out, uid) {
				t.Errorf("user still listed:\n%s", out)
			}
		})
	}
}

func TestAdminCLIUsageAndConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runAdmin(context.Background(), nil, &out, &errOut); err != errUsage || !strings.Contains(errOut.String(), "users password") {
		t.Errorf("no arguments: %v\n%s", err, errOut.String())
	}
	if err := runAdmin(context.Background(), []string{"-h"}, &out, &errOut); err != errHelp {
		t.Errorf("-h: %v", err)
	}
	if err := runAdmin(context.Background(), []string{"users", "fly"}, &out, &errOut); err != errUsage {
		t.Errorf("unknown verb: %v", err)
	}
	if err := runAdmin(context.Background(), []string{"users", "get", "-h"}, &out, &errOut); err != errHelp {
		t.Errorf("verb -h: %v", err)
	}
	empty := t.TempDir()
	if err := runAdmin(context.Background(), []string{"--data", empty, "users", "list"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Errorf("missing token: %v", err)
	}
	if err := runAdmin(context.Background(), []string{"--server", "ftp://x", "--token", "t", "users", "list"}, &out, &errOut); err == nil {
		t.Error("ftp server accepted")
	}
	if err := runAdmin(context.Background(), []string{"--token", "t", "--ca", filepath.Join(empty, "nope.pem"), "users", "list"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--ca") {
		t.Errorf("missing --ca: %v", err)
	}

	// Flags come from the environment too; a wrong arity is a usage error.
	e := apitest.New(t, sqltest.Backends(t)[0], false)
	t.Setenv("CUSTOS_SERVER", e.URL)
	t.Setenv("CUSTOS_DATA", e.DataDir)
	out.Reset()
	if err := runAdmin(context.Background(), []string{"tokens", "list", "--json"}, &out, &errOut); err != nil || !strings.Contains(out.String(), `"bootstrap"`) {
		t.Errorf("from the environment: %v %s", err, out.String())
	}
	if err := runAdmin(context.Background(), []string{"users", "get"}, &out, &errOut); err != errUsage {
		t.Errorf("missing ID: %v", err)
	}
	// A token file with a trailing newline (as Bootstrap writes it) works.
	tf := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tf, []byte(e.Token+"\n"), 0o600)
	if err := runAdmin(context.Background(), []string{"--token-file", tf, "users", "list"}, &out, &errOut); err != nil {
		t.Errorf("--token-file: %v", err)
	}
}

// TestAdminCLIVerbs covers the verbs every resource shares: get, update,
// delete (in text and JSON) and the paged lists, with their messages.
func TestAdminCLIVerbs(t *testing.T) {
	e := apitest.New(t, sqltest.Backends(t)[0], false)
	a := newAdminRun(t, e)
	const unknown = "0190a000-0000-7000-8000-000000000001"

	uid := a.json("users", "add", "--email", "dora@example.com", "--username", "dora")["id"].(string)
	a.ok("users", "add", "--email", "eve@example.com")
	gid := a.json("groups", "add", "--name", "G1", "--description", "first")["id"].(string)
	a.ok("groups", "add", "--name", "G2")
	pid := a.json("profiles", "add", "--name", "P1", "--type", "linux=mdm_controls")["id"].(string)

	for _, c := range []struct {
		resource, id, login, first, second string // first, second: the first two fields shown
		code                               string // of an unknown ID
		deleted                            string // what delete says
		nothing                            string // what update without flags says
	}{
		{"users", uid, "dora", "id", "email", "user_not_found", "deleted user " + uid, "nothing to change: pass --email, --username, --name or --profile"},
		{"groups", gid, "", "id", "name", "group_not_found", "deleted group " + gid, "nothing to change: pass --name, --description or --profile"},
		{"profiles", pid, "", "id", "name", "profile_not_found", "deleted activation profile " + pid, "nothing to change: pass --name, --description, --rank, --max-devices or --type"},
	} {
		t.Run(c.resource, func(t *testing.T) {
			a := newAdminRun(t, e)
			out := a.ok(c.resource, "get", c.id)
			lines := strings.Split(out, "\n")
			if len(lines) < 3 || !regexp.MustCompile(`^`+c.first+`:\s+`+c.id+`$`).MatchString(lines[0]) || !strings.HasPrefix(lines[1], c.second+":") {
				t.Errorf("get:\n%s", out)
			}
			if m := a.json(c.resource, "get", c.id); m["id"] != c.id {
				t.Errorf("get --json: %v", m)
			}
			if c.login != "" {
				if m := a.json(c.resource, "get", c.login); m["id"] != c.id {
					t.Errorf("get by login: %v", m)
				}
			}
			_, _, err := a.run(c.resource, "get", unknown)
			apiErr(t, err, c.code)
			if _, _, err := a.run(c.resource, "get"); err != errUsage {
				t.Errorf("get without ID: %v", err)
			}
			if _, _, err := a.run(c.resource, "update", c.id); err == nil || err.Error() != c.nothing {
				t.Errorf("update without flags: %v", err)
			}
			// The flags are checked before the ID is looked up.
			if _, _, err := a.run(c.resource, "update", "nobody"); err == nil || err.Error() != c.nothing {
				t.Errorf("update of nobody without flags: %v", err)
			}
			if m := a.json(c.resource, "update", c.id, "--name", "Renamed"); m["id"] != c.id {
				t.Errorf("update --json: %v", m)
			}
			_, _, err = a.run(c.resource, "update", unknown, "--name", "x")
			apiErr(t, err, c.code)
			del := c.id
			if c.login != "" {
				del = c.login
			}
			if out := a.ok(c.resource, "delete", del); out != c.deleted+"\n" {
				t.Errorf("delete: %q, want %q", out, c.deleted)
			}
			_, _, err = a.run(c.resource, "get", c.id)
			apiErr(t, err, c.code)
			_, _, err = a.run(c.resource, "delete", c.id)
			apiErr(t, err, c.code)
		})
	}
	if _, _, err := a.run("users", "delete", "dora"); err == nil || err.Error() != "no user has the login dora" {
		t.Errorf("delete of an unknown login: %v", err)
	}
	// --json: a delete prints nothing.
	if out := a.ok("groups", "delete", a.json("groups", "add", "--name", "G3")["id"].(string), "--json"); out != "" {
		t.Errorf("delete --json: %q", out)
	}
	if out := a.ok("users", "delete", "eve", "--json"); out != "" {
		t.Errorf("users delete --json: %q", out)
	}

	// Devices and tokens: get, remove, revoke.
	fay := a.json("users", "add", "--email", "fay@example.com")["id"].(string)
	pw := passwordLine.FindStringSubmatch(a.ok("users", "password", "--", fay))
	if pw == nil {
		t.Fatal("no password")
	}
	dev := e.EnrollDevice(t, "fay@example.com", pw[1], "hw-fay", "fay-laptop")
	if out := a.ok("devices", "get", dev); !strings.HasPrefix(out, "id:") || !strings.Contains(out, "fay-laptop") || !strings.HasSuffix(out, "\ninventory: none reported yet\n") {
		t.Errorf("devices get:\n%s", out)
	}
	if m := a.json("devices", "get", dev); m["id"] != dev {
		t.Errorf("devices get --json: %v", m)
	}
	_, _, err := a.run("devices", "get", unknown)
	apiErr(t, err, "device_not_found")
	if out := a.ok("devices", "remove", dev); out != "removed device "+dev+"; its certificate is revoked\n" {
		t.Errorf("devices remove: %q", out)
	}
	_, _, err = a.run("devices", "remove", dev)
	apiErr(t, err, "device_not_found")
	if m := a.json("devices", "get", dev); m["state"] != "removed" {
		t.Errorf("removed device: %v", m)
	}
	tid := regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(a.ok("tokens", "add", "--name", "t1"))[1]
	if out := a.ok("tokens", "revoke", tid); out != "revoked token "+tid+"\n" {
		t.Errorf("tokens revoke: %q", out)
	}
	_, _, err = a.run("tokens", "revoke", tid)
	apiErr(t, err, "token_not_found")

	// Paged lists say how to go on; the others take no paging flags.
	a.ok("groups", "add", "--name", "G4")
	for _, r := range []string{"users", "groups", "devices"} {
		out, stderr, err := a.run(r, "list", "--limit", "1")
		if err != nil || strings.Count(out, "\n") != 2 || !regexp.MustCompile(`^more: repeat with --after \S+\n$`).MatchString(stderr) {
			t.Errorf("%s list --limit 1: %v\n%s%s", r, err, out, stderr)
		}
	}
	for _, r := range []string{"profiles", "tokens"} {
		if _, _, err := a.run(r, "list", "--limit", "1"); err != errUsage {
			t.Errorf("%s list --limit: %v", r, err)
		}
	}

	// Missing required flags, unknown flags: the verb's usage.
	for _, c := range [][]string{{"users", "add"}, {"groups", "add"}, {"profiles", "add", "--name", "x"}, {"tokens", "add"}, {"users", "get", "a", "b"}} {
		if _, stderr, err := a.run(c...); err != errUsage || !strings.HasPrefix(stderr, "usage: custos admin "+c[0]+" "+c[1]+" ") {
			t.Errorf("%v: %v\n%s", c, err, stderr)
		}
	}
	for verb, flags := range map[string][]string{
		"users list":      {"after", "limit", "json"},
		"users add":       {"email", "username", "name", "profile", "json"},
		"users update":    {"email", "username", "name", "profile", "json"},
		"groups add":      {"name", "description", "profile", "json"},
		"groups update":   {"name", "description", "profile", "json"},
		"profiles add":    {"name", "description", "rank", "max-devices", "type", "json"},
		"profiles update": {"name", "description", "rank", "max-devices", "type", "json"},
		"devices list":    {"after", "limit", "user", "state", "json"},
		"devices get":     {"json"},
		"tokens list":     {"json"},
	} {
		_, stderr, _ := a.run(append(strings.Fields(verb), "--bogus")...)
		if got := regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(stderr, -1); len(got) != len(flags) {
			t.Errorf("%s flags:\n%s", verb, stderr)
		}
		for _, f := range flags {
			if !strings.Contains(stderr, "\n  -"+f+" ") && !strings.Contains(stderr, "\n  -"+f+"\n") {
				t.Errorf("%s lacks --%s:\n%s", verb, f, stderr)
			}
		}
	}
}

// TestAdminCLIPoliciesCommandsAdmins drives the verbs of policies,
// commands, nested groups and scoped administrators against the API.
func TestAdminCLIPoliciesCommandsAdmins(t *testing.T) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			e := apitest.New(t, b, false)
			a := newAdminRun(t, e)

			uid := a.json("users", "add", "--email", "gil@example.com")["id"].(string)
			pw := passwordLine.FindStringSubmatch(a.ok("users", "password", uid))
			dev := e.EnrollDevice(t, "gil@example.com", pw[1], "hw-gil", "gil-phone")
			east := a.json("groups", "add", "--name", "east")["id"].(string)
			field := a.json("groups", "add", "--name", "east-field")["id"].(string)
			if out := a.ok("groups", "add-subgroup", east, field); !strings.Contains(out, "subgroup") {
				t.Errorf("add-subgroup: %s", out)
			}
			_, _, err := a.run("groups", "add-subgroup", field, east)
			apiErr(t, err, "group_cycle")
			if out := a.ok("groups", "subgroups", east); !strings.Contains(out, field) {
				t.Errorf("subgroups:\n%s", out)
			}
			a.ok("groups", "add-member", field, "gil")

			// Policies: settings inline or from a file; secrets never shown.
			settings := filepath.Join(t.TempDir(), "wifi.json")
			os.WriteFile(settings, []byte(`{"ssid":"office","security":"wpa2_personal","passphrase":"correct horse battery"}`), 0o600)
			p := a.json("policies", "add", "--kind", "wifi", "--name", "Office", "--settings", "@"+settings, "--platforms", "linux,android")
			pid := p["id"].(string)
			if len(p["platforms"].([]any)) != 2 {
				t.Errorf("policies add: %v", p)
			}
			_, _, err = a.run("policies", "add", "--kind", "it_policy", "--name", "bad", "--settings", `{"password_min_length":-1,"password_required":true}`)
			apiErr(t, err, "invalid_policy")
			if !strings.Contains(err.Error(), "settings.password_min_length:") {
				t.Errorf("field errors not shown: %v", err)
			}
			if out := a.ok("policies", "get", pid); strings.Contains(out, "correct horse") || !strings.Contains(out, "***") {
				t.Errorf("policies get:\n%s", out)
			}
			if out := a.ok("policies", "list", "--kind", "wifi"); !strings.Contains(out, "Office") {
				t.Errorf("policies list:\n%s", out)
			}
			a.ok("policies", "update", pid, "--rank", "5")
			a.ok("policies", "assign", pid, "group", east)
			if out := a.ok("policies", "assignments", pid); !strings.Contains(out, east) {
				t.Errorf("assignments:\n%s", out)
			}
			cfg := a.ok("devices", "configuration", dev)
			if !strings.Contains(cfg, pid) || !strings.Contains(cfg, "pending") || strings.Contains(cfg, "correct horse") {
				t.Errorf("devices configuration:\n%s", cfg)
			}
			if out := a.ok("devices", "compliance", dev); !strings.Contains(out, "status:") {
				t.Errorf("devices compliance:\n%s", out)
			}

			// Commands: queue, list, cancel, history; bulk from a file.
			c := a.json("devices", "command", dev, "lock", "--priority", "95", "--expires", "24h")
			cid := c["id"].(string)
			if c["priority"] != float64(95) || c["status"] != "pending" {
				t.Errorf("devices command: %v", c)
			}
			_, _, err = a.run("devices", "command", dev, "lock", "--priority", "101")
			apiErr(t, err, "invalid_command")
			if out := a.ok("devices", "commands", dev); !strings.Contains(out, cid) {
				t.Errorf("devices commands:\n%s", out)
			}
			if out := a.ok("commands", "cancel", cid); !strings.Contains(out, "cancelled") {
				t.Errorf("commands cancel:\n%s", out)
			}
			_, _, err = a.run("commands", "cancel", cid)
			apiErr(t, err, "command_final")
			if out := a.ok("devices", "commands", dev, "--history"); !strings.Contains(out, cid) || !strings.Contains(out, "cancelled") {
				t.Errorf("history:\n%s", out)
			}
			if m := a.json("commands", "get", cid); m["status"] != "cancelled" {
				t.Errorf("commands get: %v", m)
			}
			ids := filepath.Join(t.TempDir(), "devices.txt")
			os.WriteFile(ids, []byte(dev+"\n"), 0o600)
			if out := a.ok("commands", "send", "--devices", "@"+ids, "message", "--payload", `{"text":"hello"}`); out != "queued 1 message command(s)\n" {
				t.Errorf("commands send: %q", out)
			}
			_, _, err = a.run("commands", "send", "--devices", dev+",0190a000-0000-7000-8000-000000000001", "restart")
			apiErr(t, err, "device_not_found")

			// Administrators: a scoped one sees only its groups' devices.
			out := a.ok("admins", "add", "--username", "hal", "--scope", field)
			tok := regexp.MustCompile(`token:\s+(cst_\S+)`).FindStringSubmatch(out)
			if tok == nil || !strings.Contains(out, field) {
				t.Fatalf("admins add: %s", out)
			}
			if out := a.ok("admins", "list"); !strings.Contains(out, "hal") || !strings.Contains(out, "all devices") {
				t.Errorf("admins list:\n%s", out)
			}
			if out := a.ok("--token", tok[1], "devices", "list"); !strings.Contains(out, dev) {
				t.Errorf("hal's devices:\n%s", out)
			}
			a.ok("groups", "remove-member", field, uid)
			if out := a.ok("--token", tok[1], "devices", "list"); strings.Contains(out, dev) {
				t.Errorf("hal sees a device outside his scope:\n%s", out)
			}
			_, _, err = a.run("--token", tok[1], "devices", "command", dev, "lock")
			apiErr(t, err, "device_not_found")
			_, _, err = a.run("--token", tok[1], "admins", "add", "--username", "ivy")
			apiErr(t, err, "admin_scoped")

			// Roles: a help-desk administrator locks but does not wipe.
			if out := a.ok("roles", "list"); !strings.Contains(out, "help_desk") || !strings.Contains(out, "security_admin") {
				t.Errorf("roles list:\n%s", out)
			}
			if out := a.ok("roles", "permissions"); !strings.Contains(out, "wipe.send") {
				t.Errorf("roles permissions:\n%s", out)
			}
			_, _, err = a.run("admins", "add", "--username", "nobody", "--role", "no_such_role")
			apiErr(t, err, "invalid_admin")
			out = a.ok("admins", "add", "--username", "hd", "--role", "help_desk")
			hd := regexp.MustCompile(`token:\s+(cst_\S+)`).FindStringSubmatch(out)
			if hd == nil || !strings.Contains(out, "help_desk") {
				t.Fatalf("admins add --role: %s", out)
			}
			_, _, err = a.run("--token", hd[1], "devices", "command", dev, "wipe_device")
			apiErr(t, err, "permission_denied")
			a.ok("--token", hd[1], "devices", "command", dev, "lock")
			_, _, err = a.run("roles", "add", "--name", "bad", "--permissions", "devices.read,devices.nuke")
			apiErr(t, err, "unknown_permission")
			rid := a.json("roles", "add", "--name", "Viewer", "--permissions", "devices.read")["id"].(string)
			if out := a.ok("roles", "delete", rid); out != "deleted role "+rid+"\n" {
				t.Errorf("roles delete: %q", out)
			}
			_, _, err = a.run("roles", "delete", "help_desk")
			apiErr(t, err, "role_built_in")

			a.ok("groups", "remove-subgroup", east, field)
			a.ok("policies", "unassign", pid, "group", east)
			a.ok("policies", "delete", pid)
			_, _, err = a.run("policies", "get", pid)
			apiErr(t, err, "policy_not_found")
		})
	}
}
