package router_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/custos-uem/custos/connect/router"
	"github.com/custos-uem/custos/connect/router/routertest"
)

func TestRouterMain(t *testing.T) {
	echo := routertest.StartEcho(t)
	quiet := slog.New(slog.NewTextHandler(t.Output(), nil))
	t.Run("fail/bad --allow", func(t *testing.T) {
		m := &router.Main{Config: router.Config{Listen: "127.0.0.1:0", Allow: []string{"*.example.com"}, Logger: quiet}}
		if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "*.example.com") {
			t.Fatalf("Run = %v, want the bad pattern named", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close after a failed Run: %v", err)
		}
	})
	t.Run("fail/address in use", func(t *testing.T) {
		m := &router.Main{Config: router.Config{Listen: echo, Logger: quiet}}
		if err := m.Run(context.Background()); err == nil {
			m.Close()
			t.Fatal("Run listened on a busy address")
		}
	})
	t.Run("ok/run, tunnel, close", func(t *testing.T) {
		var out bytes.Buffer
		m := &router.Main{Config: router.Config{Listen: "127.0.0.1:0", Allow: []string{echo}, Logger: quiet, Stdout: &out}}
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "listening on "+m.Addr()) {
			t.Errorf("start-up line %q lacks the address %s", out.String(), m.Addr())
		}
		c := routertest.MustDial(t, routertest.MustNew(t, "socks5://"+m.Addr()), echo)
		routertest.MustEcho(t, c, []byte("through custos router"))
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := routertest.MustNew(t, "socks5://"+m.Addr()).DialContext(context.Background(), "tcp", echo); err == nil {
			t.Fatal("dialed through a closed router")
		}
	})
}
