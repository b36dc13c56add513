package core_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// TestCommandHistoryRetention: the Core keeps finished commands for
// --command-retention (by default as long as a command may live), then
// its hourly job deletes them; a negative retention keeps them all, and a
// retention too short to read a result is refused at start.
func TestCommandHistoryRetention(t *testing.T) {
	t.Run("fail/retention-shorter-than-a-day", func(t *testing.T) {
		m := core.NewMain(core.Config{DataDir: t.TempDir(), Database: sqltest.DSN(t, "sqlite"), Listen: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CommandRetention: time.Hour})
		err := m.Run(context.Background())
		if err == nil {
			m.Close()
			t.Fatal("a Core keeping commands for an hour started")
		}
		if !strings.Contains(err.Error(), "command retention") {
			t.Fatalf("error %q does not name the command retention", err)
		}
	})
	for _, tc := range []struct {
		name      string
		retention time.Duration
		kept      bool
	}{
		{"ok/default-deletes-after-the-longest-command-life", 0, false},
		{"ok/negative-keeps-every-command", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, "sqlite", func(c *core.Config) { c.CommandRetention = tc.retention })
			ctx := context.Background()
			_, pw := e.mustUser("history@example.org")
			_, deviceID := e.mustEnrolled("history@example.org", pw, "hw-history")
			cs, err := e.m.Commands.Send(ctx, []string{deviceID}, command.NewCommand{Type: command.Lock, CreatedBy: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.m.Commands.Cancel(ctx, cs[0].ID); err != nil {
				t.Fatal(err)
			}
			// Just within the default retention, the command is kept.
			e.clock.Add(core.DefaultCommandRetention - time.Minute)
			if n, err := e.m.Commands.Prune(ctx); err != nil || n != 0 {
				t.Fatalf("Prune within the retention = %d, %v; want 0", n, err)
			}
			e.clock.Add(2 * time.Minute)
			if _, err := e.m.Commands.Prune(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = e.m.Commands.Get(ctx, cs[0].ID)
			if kept := err == nil; kept != tc.kept {
				t.Fatalf("after the retention: Get = %v; want kept %v", err, tc.kept)
			}
			if !tc.kept && !errors.Is(err, command.ErrNotFound) {
				t.Fatalf("pruned command: %v, want ErrNotFound", err)
			}
		})
	}
}
