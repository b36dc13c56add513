package mail_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
)

func TestConfigValidate(t *testing.T) {
	base := func() mail.Config {
		return mail.Config{Host: "smtp.example.com", From: "Custos <custos@example.com>", Username: "custos", Password: "s3cret-pw"}
	}
	tests := []struct {
		name  string
		edit  func(c *mail.Config)
		field string // "" = valid
	}{
		{"fail/no host", func(c *mail.Config) { c.Host = "" }, "host"},
		{"fail/host with a port", func(c *mail.Config) { c.Host = "smtp.example.com:587" }, "host"},
		{"fail/host in brackets", func(c *mail.Config) { c.Host = "[::1]" }, "host"},
		{"fail/host with a line break", func(c *mail.Config) { c.Host = "smtp\r\n.example.com" }, "host"},
		{"fail/port out of range", func(c *mail.Config) { c.Port = 70000 }, "port"},
		{"fail/unknown TLS mode", func(c *mail.Config) { c.TLS = "ssl" }, "tls"},
		{"fail/TLS none to a non-loopback host", func(c *mail.Config) { c.TLS = mail.NoTLS; c.Username, c.Password = "", "" }, "tls"},
		{"fail/TLS none to a name that merely starts with localhost", func(c *mail.Config) {
			c.TLS, c.Host, c.Username, c.Password = mail.NoTLS, "localhost.example.com", "", ""
		}, "tls"},
		{"fail/TLS none with credentials", func(c *mail.Config) { c.TLS, c.Host = mail.NoTLS, "127.0.0.1" }, "tls"},
		{"fail/no sender", func(c *mail.Config) { c.From = "" }, "from"},
		{"fail/sender with a line break", func(c *mail.Config) { c.From = "Custos\r\nBcc: eve@example.net <custos@example.com>" }, "from"},
		{"fail/password without username", func(c *mail.Config) { c.Username = "" }, "username"},
		{"fail/EHLO name with a space", func(c *mail.Config) { c.HelloName = "my host" }, "hello_name"},
		{"fail/negative timeout", func(c *mail.Config) { c.Timeout = -1 }, "timeout"},
		{"ok/STARTTLS by default", func(c *mail.Config) {}, ""},
		{"ok/implicit TLS", func(c *mail.Config) { c.TLS = mail.ImplicitTLS }, ""},
		{"ok/TLS none to 127.0.0.1", func(c *mail.Config) { c.TLS, c.Host, c.Username, c.Password = mail.NoTLS, "127.0.0.1", "", "" }, ""},
		{"ok/TLS none to localhost", func(c *mail.Config) { c.TLS, c.Host, c.Username, c.Password = mail.NoTLS, "localhost", "", "" }, ""},
		{"ok/TLS none to ::1", func(c *mail.Config) { c.TLS, c.Host, c.Username, c.Password = mail.NoTLS, "::1", "", "" }, ""},
		{"ok/no credentials", func(c *mail.Config) { c.Username, c.Password = "", "" }, ""},
		{"ok/address literal EHLO name", func(c *mail.Config) { c.HelloName = "[192.0.2.1]" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			_, nsErr := mail.NewSender(c)
			if tc.field == "" {
				if err != nil || nsErr != nil {
					t.Fatalf("Validate: %v; NewSender: %v", err, nsErr)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != "invalid_mail_config" || e.Kind != errs.Invalid || e.Fields[tc.field] == "" {
				t.Fatalf("Validate: %v; want invalid_mail_config on %q", err, tc.field)
			}
			if code(nsErr) != "invalid_mail_config" {
				t.Fatalf("NewSender: %v; want invalid_mail_config", nsErr)
			}
			if strings.Contains(err.Error(), c.Password) && c.Password != "" {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// TestConfigHidesPassword: a Config printed or logged by mistake does not
// show the SMTP password.
func TestConfigHidesPassword(t *testing.T) {
	c := mail.Config{Host: "smtp.example.com", From: "custos@example.com", Username: "custos", Password: "hunter2-very-secret"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("mail", "config", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(&c), logged.String()} {
		if strings.Contains(s, c.Password) {
			t.Fatalf("shows the password: %s", s)
		}
		if !strings.Contains(s, "smtp.example.com") {
			t.Fatalf("does not show the host: %s", s)
		}
	}
}
