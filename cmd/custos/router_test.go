package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/connect/router/routertest"
)

// mustRouter runs `custos <args>` (a router) until the end of the test
// and returns the address it listens on.
func mustRouter(t *testing.T, args ...string) string {
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
			t.Errorf("custos router exited %d", code)
		}
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`listening on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addrs:
		return a
	case code := <-done:
		t.Fatalf("custos router exited %d before listening", code)
	case <-time.After(30 * time.Second):
		t.Fatal("custos router did not start listening")
	}
	return ""
}

func TestRouterCommand(t *testing.T) {
	echo := routertest.StartEcho(t)
	for _, tt := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
	}{
		{name: "fail/bad --allow", args: []string{"--allow", "*.example.com"}, wantCode: 1, wantErr: "want a CIDR"},
		{name: "fail/bad CUSTOS_DIAL_TIMEOUT", env: map[string]string{"CUSTOS_DIAL_TIMEOUT": "soon"}, wantCode: 1, wantErr: "CUSTOS_DIAL_TIMEOUT"},
		{name: "fail/stray argument", args: []string{"--listen", "127.0.0.1:0", "extra"}, wantCode: 2, wantErr: "unexpected argument"},
		{name: "fail/unknown flag", args: []string{"--auth", "x"}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "ok/help", args: []string{"-h"}, wantCode: 0, wantErr: "-dial-timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr strings.Builder
			code := run(context.Background(), append([]string{"router"}, tt.args...), io.Discard, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
		})
	}
	t.Run("ok/flags", func(t *testing.T) {
		addr := mustRouter(t, "router", "--listen", "127.0.0.1:0", "--allow", "192.0.2.0/24, "+echo, "--dial-timeout", "5s", "--log-level", "error")
		c := routertest.MustDial(t, routertest.MustNew(t, "socks5://"+addr), echo)
		routertest.MustEcho(t, c, []byte("custos router from the command line"))
	})
	t.Run("ok/environment", func(t *testing.T) {
		t.Setenv("CUSTOS_LISTEN", "127.0.0.1:0")
		t.Setenv("CUSTOS_ALLOW", echo)
		t.Setenv("CUSTOS_LOG_LEVEL", "error")
		addr := mustRouter(t, "router")
		c := routertest.MustDial(t, routertest.MustNew(t, "socks5://"+addr), echo)
		routertest.MustEcho(t, c, []byte("custos router configured by CUSTOS_*"))
	})
	t.Run("ok/default refuses loopback", func(t *testing.T) {
		addr := mustRouter(t, "router", "--listen", "127.0.0.1:0", "--log-level", "error")
		_, err := routertest.MustNew(t, "socks5://"+addr).DialContext(context.Background(), "tcp", echo)
		if err == nil || !strings.Contains(err.Error(), "connection not allowed by ruleset") {
			t.Fatalf("err = %v, want reply 0x02", err)
		}
	})
}
