package relay_test

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/custos-uem/custos/relay"
)

// TestRelayKilledMidTransfer: the relay stops while a device is
// uploading. The device's connection fails (no hang), so does the Core's
// side of the stream, and the Core links again within 2 s of the relay's
// return with its default backoff.
func TestRelayKilledMidTransfer(t *testing.T) {
	e := newRelay(t, nil)
	coreErr := make(chan error, 1)
	started := make(chan struct{}, 1)
	a := e.mustCore(func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			_, err := c.Read(buf)
			select {
			case started <- struct{}{}:
			default:
			}
			if err != nil {
				coreErr <- err
				return
			}
		}
	}, func(c *relay.ClientConfig) { c.BackoffMax = 0 }) // the default cap
	mustLinked(t, a.c, relay.DefaultPoolSize)

	conn, _, st := e.connect(a.id + ":443")
	if st != 200 {
		t.Fatalf("CONNECT = %d", st)
	}
	devErr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 32<<10)
		for {
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(chunk); err != nil {
				devErr <- err
				return
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no data reached the Core")
	}

	e.cfg.LinkListen, e.cfg.Listen = e.m.LinkAddr(), e.m.DeviceAddr()
	e.m.Close()
	for name, ch := range map[string]chan error{"device": devErr, "core": coreErr} {
		select {
		case err := <-ch:
			if err == nil || os.IsTimeout(err) {
				t.Fatalf("%s side ended with %v, want a closed connection", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s side of the transfer hangs after the relay stopped", name)
		}
	}
	if a.c.Linked() != 0 {
		deadline := time.Now().Add(5 * time.Second)
		for a.c.Linked() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}

	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.c.WaitLinked(ctx, 1); err != nil {
		t.Fatalf("the Core did not link again within 2 s: %v", err)
	}
	if _, _, st := e.connect(a.id + ":443"); st != 200 {
		t.Fatalf("CONNECT after the restart = %d", st)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestKillReconnectCyclesLeakNothing: 1,000 times, a device stream is
// carried, then the relay kills the Core's link and the Core links again.
// Afterwards the goroutines and open files are back where they were.
func TestKillReconnectCyclesLeakNothing(t *testing.T) {
	e := newRelay(t, nil)
	a := e.mustCore(echo, func(c *relay.ClientConfig) {
		c.PoolSize, c.BackoffMin, c.BackoffMax = 1, time.Millisecond, 5*time.Millisecond
	})
	mustLinked(t, a.c, 1)
	carry := func() {
		t.Helper()
		conn, br, st := e.connect(a.id + ":443")
		if st != 200 {
			t.Fatalf("CONNECT = %d", st)
		}
		conn.Write([]byte("x"))
		b := make([]byte, 1)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	carry()
	settle := func() (int, int) {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		return runtime.NumGoroutine(), openFDs(t)
	}
	g0, f0 := settle()
	cycles := 1000
	if testing.Short() {
		cycles = 100
	}
	for i := 0; i < cycles; i++ {
		carry()
		before := a.c.Logins()
		e.m.Relay.Evict(a.id)
		for deadline := time.Now().Add(10 * time.Second); a.c.Logins() == before || a.c.Linked() != 1; {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: the Core did not link again", i)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	var g1, f1 int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if g1, f1 = settle(); g1 <= g0+2 && f1 <= f0+2 {
			break
		}
	}
	if g1 > g0+2 || f1 > f0+2 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("after %d cycles: %d goroutines (was %d), %d open files (was %d)\n%s", cycles, g1, g0, f1, f0, buf[:n])
	}
}
