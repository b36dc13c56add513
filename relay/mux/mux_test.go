package mux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestRoundTripBothDirections(t *testing.T) {
	c, s := MustPair(t, nil, nil)
	for _, dir := range []struct {
		name           string
		opener, accept *Session
	}{{"client-opens", c, s}, {"server-opens", s, c}} {
		t.Run(dir.name, func(t *testing.T) {
			a, b := MustOpenAccept(t, dir.opener, dir.accept, "meta-"+dir.name)
			if a.ID()%2 == b.ID()%2 && (dir.opener == c) != (a.ID()%2 == 1) {
				t.Fatalf("id %d has the wrong parity for the opener", a.ID())
			}
			msg := pattern(1, 300_000) // several frames, beyond the initial window
			go func() {
				_, _ = a.Write(msg)
				_ = a.CloseWrite()
			}()
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("forward: %d bytes, err %v", len(got), err)
			}
			reply := pattern(2, 70_000)
			go func() {
				_, _ = b.Write(reply)
				_ = b.Close()
			}()
			got, err = io.ReadAll(a)
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("reply: %d bytes, err %v", len(got), err)
			}
			_ = a.Close()
		})
	}
}

func TestManyStreamsIntegrity(t *testing.T) {
	c, s := MustTCPPair(t, nil, nil)
	const streams = 64
	// The server echoes every stream back, reading with WriteTo.
	go func() {
		for {
			st, err := s.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(st, st) // st.WriteTo(st): echo
				_ = st.CloseWrite()
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Open(context.Background(), []byte(fmt.Sprint(i)))
			if err != nil {
				errs <- err
				return
			}
			msg := pattern(i, 1000+i*20_000)
			go func() {
				// Odd write sizes to exercise frame splitting and chunk packing.
				for p := msg; len(p) > 0; {
					n := min(len(p), 1+i*997)
					if _, err := st.Write(p[:n]); err != nil {
						return
					}
					p = p[n:]
				}
				_ = st.CloseWrite()
			}()
			sum, n, err := hashReader(st)
			if err != nil || n != int64(len(msg)) || sum != sha256.Sum256(msg) {
				errs <- fmt.Errorf("stream %d: %d/%d bytes, err %v, hash equal %v", i, n, len(msg), err, sum == sha256.Sum256(msg))
			}
			_ = st.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every stream was closed both ways: both tables must drain.
	deadline := time.Now().Add(5 * time.Second)
	for c.NumStreams()+s.NumStreams() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := c.NumStreams() + s.NumStreams(); n != 0 {
		t.Fatalf("streams left: client %d, server %d", c.NumStreams(), s.NumStreams())
	}
}

func TestHalfClose(t *testing.T) {
	c, s := MustPair(t, nil, nil)
	a, b := MustOpenAccept(t, c, s, "")
	if _, err := a.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("Write after CloseWrite: %v, want ErrStreamClosed", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	// The other direction still works after our half-close.
	if _, err := b.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	if err := b.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(a)
	if err != nil || string(got) != "response" {
		t.Fatalf("client read %q, %v", got, err)
	}
	if n, err := a.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF: %d, %v", n, err)
	}
	waitStreams(t, c, 0)
	waitStreams(t, s, 0)
}

func TestCloseDiscardsAndCredits(t *testing.T) {
	// The reader closes while the writer still sends more than a window:
	// the writer must not wedge, and the stream is forgotten after its Close.
	cfg := &Config{StreamWindow: InitialStreamWindow}
	c, s := MustPair(t, cfg, cfg)
	a, b := MustOpenAccept(t, c, s, "")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrStreamClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := a.Write(make([]byte, 4*InitialStreamWindow)); err != nil {
			t.Errorf("Write into closed reader: %v", err)
		}
		_ = a.Close()
	}()
	MustWait(t, done, 10*time.Second, "writer into a closed reader")
	waitStreams(t, c, 0)
	waitStreams(t, s, 0)
}

func TestReset(t *testing.T) {
	c, s := MustPair(t, nil, nil)
	a, b := MustOpenAccept(t, c, s, "")
	// Data in flight while the peer resets must be ignored, not kill the session.
	go func() {
		for {
			if _, err := b.Write(make([]byte, 32<<10)); err != nil {
				return
			}
		}
	}()
	if _, err := io.ReadFull(a, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	if err := a.Reset("policy says no"); err != nil {
		t.Fatal(err)
	}
	var re *ResetError
	if _, err := a.Read(make([]byte, 1)); !errors.As(err, &re) || re.Remote {
		t.Fatalf("local Read after Reset: %v", err)
	}
	_, err := io.Copy(io.Discard, b)
	if !errors.As(err, &re) || !re.Remote || re.Reason != "policy says no" || !errors.Is(err, ErrStreamReset) {
		t.Fatalf("peer Read after Reset: %v", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("peer Write after Reset: %v", err)
	}
	waitStreams(t, c, 0)
	waitStreams(t, s, 0)
	// The session survived the late frames.
	a2, b2 := MustOpenAccept(t, c, s, "after")
	_, _ = a2.Write([]byte("ok"))
	_ = a2.CloseWrite()
	if got, err := io.ReadAll(b2); err != nil || string(got) != "ok" {
		t.Fatalf("after reset: %q %v (session err %v)", got, err, c.Err())
	}
}

func TestDeadlines(t *testing.T) {
	cfg := &Config{StreamWindow: InitialStreamWindow}
	c, s := MustPair(t, cfg, cfg)
	a, b := MustOpenAccept(t, c, s, "")

	t.Run("read-expires", func(t *testing.T) {
		_ = b.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		start := time.Now()
		_, err := b.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
			t.Fatalf("Read: %v, want timeout", err)
		}
		if d := time.Since(start); d < 25*time.Millisecond {
			t.Fatalf("returned after %v", d)
		}
		// Clearing the deadline makes the stream usable again.
		_ = b.SetReadDeadline(time.Time{})
		_, _ = a.Write([]byte("hi"))
		if _, err := io.ReadFull(b, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deadline-set-while-blocked", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			_, err := b.Read(make([]byte, 10))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		_ = b.SetReadDeadline(time.Now())
		select {
		case err := <-errc:
			if !isTimeout(err) {
				t.Fatalf("Read: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked Read ignored a new deadline")
		}
		_ = b.SetReadDeadline(time.Time{})
	})
	t.Run("write-expires-on-full-window", func(t *testing.T) {
		// b never reads: a's window (256 KiB) fills and Write must time out.
		_ = a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := a.Write(make([]byte, 2*InitialStreamWindow))
		if !isTimeout(err) {
			t.Fatalf("Write: %d, %v, want timeout", n, err)
		}
		if want := InitialStreamWindow - 2; n != want { // "hi" above used 2 bytes
			t.Fatalf("Write wrote %d before the timeout, want the rest of the window %d", n, want)
		}
	})
}

func TestStalledStreamDoesNotStallOthers(t *testing.T) {
	c, s := MustTCPPair(t, &Config{StreamWindow: 1 << 20}, &Config{StreamWindow: 1 << 20})
	stalled, _ := MustOpenAccept(t, c, s, "stalled") // its reader never reads
	stuck := make(chan struct{})
	go func() {
		defer close(stuck)
		_, _ = stalled.Write(make([]byte, 8<<20)) // blocks after 1 MiB
	}()
	busyA, busyB := MustOpenAccept(t, c, s, "busy")
	const total = 64 << 20
	go func() {
		buf := make([]byte, 64<<10)
		for i := 0; i < total/len(buf); i++ {
			if _, err := busyA.Write(buf); err != nil {
				return
			}
		}
		_ = busyA.CloseWrite()
	}()
	done := make(chan struct{})
	var n int64
	var err error
	go func() {
		defer close(done)
		n, err = io.Copy(io.Discard, busyB)
	}()
	MustWait(t, done, 60*time.Second, "busy stream beside a stalled one")
	if err != nil || n != total {
		t.Fatalf("busy stream: %d bytes, %v", n, err)
	}
	select {
	case <-stuck:
		t.Fatal("the stalled stream's Write returned: its window was not enforced")
	default:
	}
	_ = stalled.Reset("done")
}

func TestOpenBeyondMaxStreams(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		c, _ := MustPair(t, &Config{MaxStreams: 2}, nil)
		for range 2 {
			if _, err := c.Open(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Open(context.Background(), nil); !errors.Is(err, ErrTooManyStreams) {
			t.Fatalf("third Open: %v", err)
		}
	})
	t.Run("peer", func(t *testing.T) {
		c, s := MustPair(t, nil, &Config{MaxStreams: 1})
		MustOpenAccept(t, c, s, "one")
		st, err := c.Open(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var re *ResetError
		if _, err := st.Read(make([]byte, 1)); !errors.As(err, &re) || !re.Remote || re.Reason != "too many streams" {
			t.Fatalf("Read on refused stream: %v", err)
		}
	})
}

func TestAcceptBacklogFullResets(t *testing.T) {
	c, s := MustPair(t, nil, &Config{AcceptBacklog: 2})
	var streams []*Stream
	for range 3 {
		st, err := c.Open(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	if _, err := streams[2].Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("third stream: %v, want reset", err)
	}
	for i := range 2 {
		st, err := s.Accept(context.Background())
		if err != nil || st.ID() != streams[i].ID() {
			t.Fatalf("Accept %d: %v", i, err)
		}
	}
}

func TestSessionCloseWakesBlocked(t *testing.T) {
	cfg := &Config{StreamWindow: InitialStreamWindow}
	c, s := MustPair(t, cfg, cfg)
	a, b := MustOpenAccept(t, c, s, "")
	// b's reader never reads, so a's Write blocks on the window.
	readErr, writeErr, acceptErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		readErr <- err
	}()
	go func() {
		_, err := a.Write(make([]byte, 2*InitialStreamWindow))
		writeErr <- err
	}()
	go func() {
		_, err := c.Accept(context.Background())
		acceptErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_ = c.Close()
	for name, ch := range map[string]chan error{"Read": readErr, "Write": writeErr, "Accept": acceptErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrSessionClosed) {
				t.Errorf("%s: %v, want ErrSessionClosed", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still blocked after Close", name)
		}
	}
	if !errors.Is(c.Err(), ErrSessionClosed) {
		t.Fatalf("Err: %v", c.Err())
	}
	// The peer sees the conn end and kills its streams with that cause.
	MustWait(t, s.Done(), 5*time.Second, "peer session death")
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrSessionClosed) || !errors.Is(err, s.Err()) {
		t.Fatalf("peer Read: %v (session %v)", err, s.Err())
	}
}

func TestKeepAliveTimeoutKillsSilentSession(t *testing.T) {
	a, b := net.Pipe()
	sc := newStallConn(b)
	// Generous against scheduler stalls on a loaded machine, yet the healthy
	// phase outlasts the timeout several times over.
	cfg := &Config{KeepAliveInterval: 50 * time.Millisecond, KeepAliveTimeout: 700 * time.Millisecond}
	c, s := Client(a, cfg), Server(sc, cfg)
	defer c.Close()
	defer s.Close()
	// Healthy and idle: keepalive pings keep both alive.
	time.Sleep(2 * time.Second)
	if c.Err() != nil || s.Err() != nil {
		t.Fatalf("idle healthy session died: client %v, server %v", c.Err(), s.Err())
	}
	if _, err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc.Stall() // the link stops delivering to the server
	MustWait(t, s.Done(), 5*time.Second, "keepalive timeout")
	if !errors.Is(s.Err(), ErrKeepAliveTimeout) {
		t.Fatalf("Err: %v", s.Err())
	}
}

func TestPingAndGoAway(t *testing.T) {
	c, s := MustPair(t, nil, nil)
	if rtt, err := c.Ping(context.Background()); err != nil || rtt <= 0 {
		t.Fatalf("Ping: %v %v", rtt, err)
	}
	if err := s.GoAway(); err != nil {
		t.Fatal(err)
	}
	// GoAway is ordered behind nothing we can see; poll until the client
	// has processed it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Open(context.Background(), nil)
		if errors.Is(err, ErrRemoteGoAway) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, rerr := st.Read(make([]byte, 1)); !errors.Is(rerr, ErrStreamReset) {
			t.Fatalf("Open after GoAway: stream not reset: %v", rerr)
		}
		if time.Now().After(deadline) {
			t.Fatal("GoAway never reached the client")
		}
	}
	// The side that sent GoAway may still open streams.
	a, b := MustOpenAccept(t, s, c, "still")
	_, _ = a.Write([]byte("x"))
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestReadFromSocketAndNetConn(t *testing.T) {
	c, s := MustPair(t, nil, nil)
	a, b := MustOpenAccept(t, c, s, "")
	if a.LocalAddr() == nil || a.RemoteAddr() == nil {
		t.Fatal("nil addresses")
	}
	dev, relay := MustTCPConns(t)
	msg := pattern(7, 3<<20)
	go func() {
		// Pauses make the readiness wait (no buffer held) run repeatedly.
		for i, p := 0, msg; len(p) > 0; i++ {
			n := min(len(p), 100_000)
			_, _ = dev.Write(p[:n])
			p = p[n:]
			if i%5 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		_ = dev.CloseWrite()
	}()
	go func() {
		_, err := a.ReadFrom(relay)
		if err != nil {
			t.Errorf("ReadFrom: %v", err)
		}
		_ = a.CloseWrite()
	}()
	sum, n, err := hashReader(b)
	if err != nil || n != int64(len(msg)) || sum != sha256.Sum256(msg) {
		t.Fatalf("got %d bytes, %v", n, err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := range 1000 {
		a, b := net.Pipe()
		c, s := Client(a, nil), Server(b, nil)
		ctx := context.Background()
		st, err := c.Open(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		peer, err := s.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Close()
		} else {
			s.Close()
		}
		<-c.Done()
		<-s.Done()
	}
	MustSettleGoroutines(t, before)
}

func TestFrameHeaderRoundTrip(t *testing.T) {
	h := header{version: Version, typ: TypeWindow, streamID: 0xdeadbeef, length: 0x01020304}
	var b [HeaderSize]byte
	encodeHeader(b[:], h)
	if got := decodeHeader(b[:]); got != h {
		t.Fatalf("decoded %+v, want %+v", got, h)
	}
	if got := appendHeader(nil, h.typ, h.streamID, h.length); !bytes.Equal(got, b[:]) {
		t.Fatalf("appendHeader %x, encodeHeader %x", got, b)
	}
}

func waitStreams(t *testing.T, s *Session, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.NumStreams() != want {
		if time.Now().After(deadline) {
			t.Fatalf("NumStreams = %d, want %d", s.NumStreams(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
