package mail_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
)

// smtpSink is postfix's test server (Debian package postfix): an SMTP
// peer nobody here wrote. It has no STARTTLS, so it is reached with TLS
// mode "none" on loopback, without credentials.
const smtpSink = "/usr/sbin/smtp-sink"

// startSMTPSink starts smtp-sink on a free loopback port with extra
// flags, dumping each message into a directory it returns, and stops it
// at the end of the test.
func startSMTPSink(t *testing.T, flags ...string) (port int, dump string) {
	t.Helper()
	need(t, smtpSink, "postfix")
	dump = t.TempDir()
	args := []string{"-h", "sink.test", "-d", dump + "/%Y%m%d%H%M%S."}
	if os.Geteuid() == 0 {
		// smtp-sink started as root insists on a user to switch to; that
		// user writes the dumps.
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("smtp-sink needs a user to run as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// t.TempDir's parents are 0700: give nobody a directory of its
		// own under the system's temp directory.
		dir, err := os.MkdirTemp("", "custos-smtp-sink-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		dump = dir
		args = []string{"-u", "nobody", "-h", "sink.test", "-d", dump + "/%Y%m%d%H%M%S."}
	}
	args = append(args, flags...)
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.Command(smtpSink, append(args, "127.0.0.1:"+strconv.Itoa(port), "16")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("smtp-sink: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			select {
			case <-exited:
				t.Logf("smtp-sink exited (port %d taken?): %s", port, stderr.String())
				goto next
			default:
			}
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				c.Close()
				t.Cleanup(stop)
				return port, dump
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		t.Fatalf("smtp-sink did not listen: %s", stderr.String())
	next:
	}
	t.Fatal("smtp-sink: no free port after 5 tries")
	return 0, ""
}

// TestSendThroughPostfixSMTPSink sends the activation email to postfix's
// smtp-sink and reads back what it stored; and checks its refusals come
// back as ours.
func TestSendThroughPostfixSMTPSink(t *testing.T) {
	tests := []struct {
		name     string
		flags    []string
		tls      mail.TLSMode
		want     string
		contains string
	}{
		{name: "fail/STARTTLS required, server has none", tls: mail.STARTTLS, want: "mail_tls_required"},
		{name: "fail/RCPT refused 550", flags: []string{"-f", "RCPT", "-B", "550 5.1.1 Recipient address rejected: User unknown"},
			want: "mail_refused", contains: "550 5.1.1 Recipient address rejected: User unknown"},
		{name: "fail/RCPT deferred 450", flags: []string{"-r", "RCPT"}, want: "mail_unavailable", contains: "450 4.3.0"},
		{name: "fail/DATA refused", flags: []string{"-f", "DATA"}, want: "mail_refused", contains: "DATA: 500 5.3.0"},
		{name: "ok/accepted", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, dump := startSMTPSink(t, tc.flags...)
			mode := tc.tls
			if mode == "" {
				mode = mail.NoTLS
			}
			cfg := mail.Config{Host: "127.0.0.1", Port: port, From: "Custos <custos@example.com>", TLS: mode, Timeout: 10 * time.Second, HelloName: "custos.test"}
			a := activation()
			err := MustSender(t, cfg).Send(context.Background(), MustRender(t, a))
			if code(err) != tc.want {
				t.Fatalf("Send: %v; want code %q", err, tc.want)
			}
			if tc.want != "" {
				if _, msg, _ := errs.Public(err); !strings.Contains(msg, tc.contains) {
					t.Fatalf("safe message %q; want it to contain %q", msg, tc.contains)
				}
				return
			}
			var files []string
			for deadline := time.Now().Add(5 * time.Second); len(files) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				files, _ = filepath.Glob(filepath.Join(dump, "*"))
			}
			if len(files) != 1 {
				t.Fatalf("%d dumps in %s; want 1", len(files), dump)
			}
			raw, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			// The dump starts with smtp-sink's own headers, the envelope as
			// it saw it; then the message as sent.
			if !bytes.Contains(raw, []byte("X-Mail-Args: <custos@example.com>")) || !bytes.Contains(raw, []byte("X-Rcpt-Args: <ada@example.com>")) ||
				!bytes.Contains(raw, []byte("X-Helo-Args: custos.test")) {
				t.Fatalf("envelope not as sent:\n%.600s", raw)
			}
			p := MustParse(t, raw)
			if p.Subject != "Activate your device for Analytical Engines" || !strings.Contains(p.Text, a.Password) || len(p.Images) != 1 {
				t.Fatalf("message not as sent: subject %q, %d images, text:\n%s", p.Subject, len(p.Images), p.Text)
			}
			want, _ := mail.QRPayload(a)
			for _, img := range p.Images {
				if got := MustDecodeQR(t, img.Data); got != string(want) {
					t.Fatalf("QR code reads %q; want %q", got, want)
				}
			}
		})
	}
}
