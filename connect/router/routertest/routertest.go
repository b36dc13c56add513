// Package routertest starts real proxies for tests: Debian's dante-server
// (SOCKS5) and squid (HTTP CONNECT), each on 127.0.0.1 with a free port and
// a configuration of its own, plus a TCP echo server to reach through
// them. The binaries are required, not optional: a missing one fails the
// test with the command that installs it (.ci/run does).
package routertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-uem/custos/connect/router"
)

const (
	dantedPath = "/usr/sbin/danted"
	squidPath  = "/usr/sbin/squid"

	// startTimeout bounds how long a daemon may take to accept on its
	// port; squid needs about a second here.
	startTimeout = 20 * time.Second
	// startTries is how often a start is retried when the daemon could
	// not bind the port we picked (another process took it meanwhile).
	startTries = 3
)

// StartDante starts danted on 127.0.0.1 with a free port, SOCKS5 without
// authentication for clients on 127.0.0.0/8 to any destination (CONNECT
// only), and stops it at the end of the test. It returns host:port.
func StartDante(t testing.TB) (addr string) {
	t.Helper()
	need(t, dantedPath, "dante-server")
	dir := daemonDir(t, "dante")
	var err error
	for try := 0; try < startTries; try++ {
		port := freePort(t)
		conf := filepath.Join(dir, "danted.conf")
		logFile := filepath.Join(dir, "danted.log")
		users := ""
		if os.Geteuid() == 0 {
			// danted started as root insists on users to switch to.
			users = "user.privileged: root\nuser.unprivileged: nobody\n"
		}
		writeFile(t, conf, fmt.Sprintf(`# dante-server for a test: loopback only, no authentication.
logoutput: %s
internal: 127.0.0.1 port = %d
external: 127.0.0.1
socksmethod: none
clientmethod: none
%sclient pass {
	from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
	from: 127.0.0.0/8 to: 0.0.0.0/0
	command: connect
	log: connect
}
`, logFile, port, users))
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// Without -D danted stays in the foreground; it forks helper
		// processes, hence the process group.
		err = startDaemon(t, addr, logFile, dantedPath, "-f", conf, "-p", filepath.Join(dir, "danted.pid"))
		if err == nil {
			remember(addr, logFile)
			return addr
		}
	}
	t.Fatalf("routertest: danted: %v", err)
	return ""
}

// StartSquid starts squid on 127.0.0.1 with a free port, allowing CONNECT
// from localhost to any port except denyPorts (refused with 403), with no
// cache, and stops it at the end of the test. It returns host:port.
func StartSquid(t testing.TB, denyPorts ...int) (addr string) {
	t.Helper()
	need(t, squidPath, "squid")
	dir := daemonDir(t, "squid")
	deny := ""
	if len(denyPorts) > 0 {
		var ps []string
		for _, p := range denyPorts {
			ps = append(ps, strconv.Itoa(p))
		}
		deny = "acl denied_ports port " + strings.Join(ps, " ") + "\nhttp_access deny CONNECT denied_ports\n"
	}
	effective := ""
	if os.Geteuid() == 0 {
		// squid started as root drops to this user, who must be able to
		// write the logs (daemonDir gave it the directory).
		effective = "cache_effective_user proxy\n"
	}
	var err error
	for try := 0; try < startTries; try++ {
		port := freePort(t)
		conf := filepath.Join(dir, "squid.conf")
		cacheLog := filepath.Join(dir, "cache.log")
		writeFile(t, conf, fmt.Sprintf(`# squid for a test: loopback only, CONNECT to any port, no cache.
http_port 127.0.0.1:%d
visible_hostname custos-test
acl SSL_ports port 1-65535
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
%shttp_access allow localhost
http_access deny all
cache deny all
cache_mem 8 MB
pid_filename %s
access_log stdio:%s
cache_log %s
cache_store_log none
logfile_rotate 0
coredump_dir %s
pinger_enable off
shutdown_lifetime 0 seconds
%s`, port, deny, filepath.Join(dir, "squid.pid"), filepath.Join(dir, "access.log"), cacheLog, dir, effective))
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// -N: no daemon mode, one process in the foreground; without a
		// cache_dir there is nothing to create with -z.
		err = startDaemon(t, addr, cacheLog, squidPath, "-N", "-f", conf)
		if err == nil {
			remember(addr, filepath.Join(dir, "access.log"))
			return addr
		}
	}
	t.Fatalf("routertest: squid: %v", err)
	return ""
}

// StartEcho starts a TCP server on 127.0.0.1 that sends back whatever it
// receives and half-closes when the client does. It returns host:port.
func StartEcho(t testing.TB) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("routertest: echo: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func need(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("routertest: %s is missing: install %s (apt-get install -y %s) or run .ci/run", path, pkg, pkg)
	}
}

// daemonDir returns a directory for a daemon's configuration and logs,
// removed at the end of the test. Not t.TempDir(): its parents are 0700,
// and squid, once it has dropped root for the proxy user, must still
// reach its logs. This one is 0755 under the system's temp directory and,
// under root, owned by proxy.
func daemonDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "custos-"+name+"-")
	if err != nil {
		t.Fatalf("routertest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("routertest: %v", err)
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("proxy"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(dir, uid, gid); err != nil {
				t.Fatalf("routertest: %v", err)
			}
		}
	}
	return dir
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("routertest: %v", err)
	}
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("routertest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDaemon runs a daemon in its own process group, waits until addr
// accepts connections and registers its stop. An error means it exited
// or never accepted; the error quotes its output and log.
func startDaemon(t testing.TB, addr, logFile, path string, args ...string) error {
	t.Helper()
	cmd := exec.Command(path, args...)
	var out bytes.Buffer
	lw := &lockedWriter{w: &out}
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// The whole group: danted's children too. SIGTERM first so the
		// daemon cleans up; SIGKILL if it lingers.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Children that outlived the leader still belong to the group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("%s exited before accepting on %s (%v)\n%s%s", filepath.Base(path), addr, err, out.String(), tail(logFile))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			t.Cleanup(stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s did not accept on %s within %v: %v\n%s%s", filepath.Base(path), addr, startTimeout, err, out.String(), tail(logFile))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return "--- " + path + ":\n" + string(b)
}

// lockedWriter guards the daemon's output buffer: exec copies into it
// from its own goroutine while the test may read it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// testTimeout bounds every network step of a test: generous, so a slow
// shared machine does not fail a test, but a hang still ends.
const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// MustServe starts s on a free loopback port and closes it at the end;
// a nil Logger is set to write to the test's output.
func MustServe(t testing.TB, s *router.Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != router.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// MustNew is router.New that fails the test on an error.
func MustNew(t testing.TB, proxyURL string) router.ContextDialer {
	t.Helper()
	d, err := router.New(proxyURL, nil)
	if err != nil {
		t.Fatalf("New(%q): %v", proxyURL, err)
	}
	return d
}

// MustDial dials addr through d and closes the conn at the end.
func MustDial(t testing.TB, d router.ContextDialer, addr string) net.Conn {
	t.Helper()
	c, err := d.DialContext(testCtx(t), "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// MustEcho sends msg over c (to an echo server) and wants it back.
func MustEcho(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("echo write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes that differ from the %d sent", len(got), len(msg))
	}
}

// MustFakeProxy starts a TCP server on loopback whose every connection
// is handled by serve (a misbehaving proxy), and stops it at the end.
func MustFakeProxy(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// logs maps a started proxy's address to the file where it logs the
// connections it carried.
var logs sync.Map

func remember(addr, path string) { logs.Store(addr, path) }

// Carried reports whether the proxy at proxyAddr (from StartDante or
// StartSquid) logged a connection to target (host:port): the proof that a
// dialer really went through it. squid writes its access log line when a
// tunnel closes; dante its connect line when a tunnel opens.
func Carried(t testing.TB, proxyAddr, target string) bool {
	t.Helper()
	path, ok := logs.Load(proxyAddr)
	if !ok {
		t.Fatalf("routertest: %s is no proxy started here", proxyAddr)
	}
	b, err := os.ReadFile(path.(string))
	if err != nil {
		t.Fatalf("routertest: read the proxy's log: %v", err)
	}
	host, port, _ := net.SplitHostPort(target)
	// squid logs "CONNECT 127.0.0.1:3101"; dante "… -> 127.0.0.1.3101".
	return bytes.Contains(b, []byte(target)) || bytes.Contains(b, []byte(host+"."+port))
}
