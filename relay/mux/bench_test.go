package mux

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/yamux"
)

var idleStreams = flag.Int("mux.idle", 100000, "streams opened by BenchmarkIdleStreams")

// ---- links under test ----

// streamPair opens one stream and returns its writing end, how to half-close
// it, and the reading end on the other side.
type streamPair func(b *testing.B) (w io.Writer, closeWrite func() error, r io.Reader)

var tlsOnce struct {
	sync.Once
	server, client *tls.Config
}

// tlsConfigs returns a TLS 1.3 server config with a fresh self-signed ECDSA
// P-256 certificate and a client config trusting exactly it.
func tlsConfigs(b *testing.B) (*tls.Config, *tls.Config) {
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "relay.test"},
			DNSNames:     []string{"relay.test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert, _ := x509.ParseCertificate(der)
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		tlsOnce.server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
		tlsOnce.client = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "relay.test"}
	})
	return tlsOnce.server, tlsOnce.client
}

// tlsConns returns both ends of a handshaken TLS 1.3 connection over
// loopback TCP.
func tlsConns(b *testing.B) (*tls.Conn, *tls.Conn) {
	scfg, ccfg := tlsConfigs(b)
	a, s := MustTCPConns(b)
	c, srv := tls.Client(a, ccfg), tls.Server(s, scfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return c, srv
}

func muxLink(b *testing.B, cc, sc net.Conn, cfg *Config) streamPair {
	c, s := Client(cc, cfg), Server(sc, cfg)
	b.Cleanup(func() { c.Close(); s.Close() })
	return func(b *testing.B) (io.Writer, func() error, io.Reader) {
		st, err := c.Open(context.Background(), nil)
		if err != nil {
			b.Fatal(err)
		}
		peer, err := s.Accept(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st, st.CloseWrite, peer
	}
}

// yamuxLink is the anchor: yamux's default config, logging silenced so
// teardown noise stays out of benchmark output.
func yamuxLink(b *testing.B, cc, sc net.Conn) streamPair {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	c, err := yamux.Client(cc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := yamux.Server(sc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); s.Close() })
	return func(b *testing.B) (io.Writer, func() error, io.Reader) {
		st, err := c.OpenStream()
		if err != nil {
			b.Fatal(err)
		}
		peer, err := s.AcceptStream()
		if err != nil {
			b.Fatal(err)
		}
		return st, st.Close, peer
	}
}

// discard reads r to EOF with a 64 KiB buffer: the same consumer code for
// every link, so the comparison is about the links.
func discard(r io.Reader, total *int64, done chan<- error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err != nil {
			*total = n
			if err == io.EOF {
				err = nil
			}
			done <- err
			return
		}
	}
}

// pump writes chunks of 64 KiB until bytes are written, then half-closes.
func pump(w io.Writer, closeWrite func() error, bytes int64) error {
	buf := make([]byte, 64<<10)
	for bytes > 0 {
		n := int64(len(buf))
		if bytes < n {
			n = bytes
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		bytes -= n
	}
	return closeWrite()
}

// transfer moves bytes over one fresh stream and returns how long it took
// until the reader saw EOF.
func transfer(b *testing.B, pair streamPair, bytes int64) time.Duration {
	w, cw, r := pair(b)
	var got int64
	done := make(chan error, 1)
	start := time.Now()
	go discard(r, &got, done)
	if err := pump(w, cw, bytes); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got != bytes {
		b.Fatalf("read %d of %d bytes", got, bytes)
	}
	return time.Since(start)
}

func reportRate(b *testing.B, bytes int64, d time.Duration) {
	b.ReportMetric(float64(bytes)*8/d.Seconds()/1e9, "Gbit/s")
}

// ---- benchmarks ----

// BenchmarkStream: one stream client→server over loopback TLS 1.3, 64 KiB
// writes, reader discards; mux against yamux and a bare TLS connection in
// the same run.
func BenchmarkStream(b *testing.B) {
	const chunk = 64 << 10
	run := func(b *testing.B, pair streamPair) {
		b.SetBytes(chunk)
		b.ResetTimer()
		d := transfer(b, pair, int64(b.N)*chunk)
		b.StopTimer()
		reportRate(b, int64(b.N)*chunk, d)
	}
	b.Run("mux-tls", func(b *testing.B) {
		cc, sc := tlsConns(b)
		run(b, muxLink(b, cc, sc, nil))
	})
	b.Run("yamux-tls", func(b *testing.B) {
		cc, sc := tlsConns(b)
		run(b, yamuxLink(b, cc, sc))
	})
	b.Run("direct-tls", func(b *testing.B) {
		cc, sc := tlsConns(b)
		run(b, func(*testing.B) (io.Writer, func() error, io.Reader) { return cc, cc.CloseWrite, sc })
	})
}

// BenchmarkStreams8: eight streams in parallel on one TLS link.
func BenchmarkStreams8(b *testing.B) {
	const chunk, streams = 64 << 10, 8
	run := func(b *testing.B, pair streamPair) {
		type sp struct {
			w  io.Writer
			cw func() error
			r  io.Reader
		}
		var ps []sp
		for range streams {
			w, cw, r := pair(b)
			ps = append(ps, sp{w, cw, r})
		}
		b.SetBytes(chunk)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 2*streams)
		for i, p := range ps {
			n := int64(b.N / streams)
			if i < b.N%streams {
				n++
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				if err := pump(p.w, p.cw, n*chunk); err != nil {
					errs <- err
				}
			}()
			go func() {
				defer wg.Done()
				var got int64
				done := make(chan error, 1)
				discard(p.r, &got, done)
				if err := <-done; err != nil || got != n*chunk {
					errs <- err
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal("stream failed:", err)
		}
		reportRate(b, int64(b.N)*chunk, d)
	}
	b.Run("mux-tls", func(b *testing.B) {
		cc, sc := tlsConns(b)
		run(b, muxLink(b, cc, sc, nil))
	})
	b.Run("yamux-tls", func(b *testing.B) {
		cc, sc := tlsConns(b)
		run(b, yamuxLink(b, cc, sc))
	})
}

// BenchmarkRTT50ms: one stream over a lossless in-memory link with 25 ms
// each way. Each op is one fresh stream (slow start included) carrying
// enough bytes to amortise it: 64 MiB for mux, 4 MiB for yamux, whose
// 256 KiB window caps it near 40 Mbit/s. mux-credit2 grants window at
// half instead of a quarter of the window consumed.
func BenchmarkRTT50ms(b *testing.B) {
	run := func(b *testing.B, pair streamPair, bytes int64) {
		b.SetBytes(bytes)
		b.ResetTimer()
		var total time.Duration
		for range b.N {
			total += transfer(b, pair, bytes)
		}
		b.StopTimer()
		b.ReportMetric(float64(bytes)*float64(b.N)*8/total.Seconds()/1e6, "Mbit/s")
	}
	b.Run("mux", func(b *testing.B) {
		cc, sc := newDelayPipe(25*time.Millisecond, 256<<20)
		run(b, muxLink(b, cc, sc, nil), 64<<20)
	})
	b.Run("mux-credit2", func(b *testing.B) {
		old := creditDivisor
		creditDivisor = 2
		defer func() { creditDivisor = old }()
		cc, sc := newDelayPipe(25*time.Millisecond, 256<<20)
		run(b, muxLink(b, cc, sc, nil), 64<<20)
	})
	b.Run("yamux", func(b *testing.B) {
		cc, sc := newDelayPipe(25*time.Millisecond, 256<<20)
		run(b, yamuxLink(b, cc, sc), 4<<20)
	})
}

// BenchmarkStalledBeside: one busy stream's throughput on a TLS link where
// another stream's reader never reads (its 16 MiB window is full), against
// the same busy stream on a clean link, alternating in each op.
func BenchmarkStalledBeside(b *testing.B) {
	const bytes = 128 << 20
	cc1, sc1 := tlsConns(b)
	alone := muxLink(b, cc1, sc1, nil)
	cc2, sc2 := tlsConns(b)
	c, s := Client(cc2, nil), Server(sc2, nil)
	b.Cleanup(func() { c.Close(); s.Close() })
	stalled, err := c.Open(context.Background(), []byte("stalled"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Accept(context.Background()); err != nil { // accepted, never read
		b.Fatal(err)
	}
	filled := make(chan struct{})
	go func() {
		// Blocks for good once the peer's window is full.
		_, _ = stalled.Write(make([]byte, DefaultStreamWindow))
		close(filled)
		_, _ = stalled.Write(make([]byte, 1))
	}()
	<-filled
	beside := func(b *testing.B) (io.Writer, func() error, io.Reader) {
		st, err := c.Open(context.Background(), nil)
		if err != nil {
			b.Fatal(err)
		}
		peer, err := s.Accept(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st, st.CloseWrite, peer
	}
	b.SetBytes(2 * bytes)
	b.ResetTimer()
	var tAlone, tBeside time.Duration
	for i := range b.N {
		if i%2 == 0 {
			tAlone += transfer(b, alone, bytes)
			tBeside += transfer(b, beside, bytes)
		} else {
			tBeside += transfer(b, beside, bytes)
			tAlone += transfer(b, alone, bytes)
		}
	}
	b.StopTimer()
	ga := float64(bytes) * float64(b.N) * 8 / tAlone.Seconds() / 1e9
	gb := float64(bytes) * float64(b.N) * 8 / tBeside.Seconds() / 1e9
	b.ReportMetric(ga, "alone-Gbit/s")
	b.ReportMetric(gb, "beside-Gbit/s")
	b.ReportMetric(100*(ga-gb)/ga, "loss-%")
}

// BenchmarkIdleStreams: -mux.idle streams on one session, each with a
// goroutine on both sides blocked in io.Copy(io.Discard, st) (WriteTo: no
// buffer), after 100 bytes went through each. Reports the live heap and
// stack growth per stream; the stack part is the application's two
// goroutines, the heap part is the mux's state (both sides) plus those
// goroutines' bookkeeping.
func BenchmarkIdleStreams(b *testing.B) {
	n := *idleStreams
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()

		a, bb := net.Pipe()
		c, s := Client(a, nil), Server(bb, nil)
		var wg sync.WaitGroup
		var accepted atomic.Int64
		go func() {
			for {
				st, err := s.Accept(context.Background())
				if err != nil {
					return
				}
				accepted.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(io.Discard, st)
				}()
			}
		}()
		msg := make([]byte, 100)
		for i := range n {
			// Pace the opener so the accept backlog (1024) never overflows:
			// overflowing Opens would be Reset, by design.
			for int64(i)-accepted.Load() > 512 {
				runtime.Gosched()
			}
			st, err := c.Open(context.Background(), nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.Write(msg); err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, st)
			}()
		}
		// Settle: every stream accepted and both goroutines parked.
		for deadline := time.Now().Add(60 * time.Second); s.NumStreams() < n || runtime.NumGoroutine() < g0+2*n+3; {
			if time.Now().After(deadline) {
				b.Fatalf("only %d streams accepted, %d goroutines", s.NumStreams(), runtime.NumGoroutine())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapInuse) - float64(before.HeapInuse)
		stack := float64(after.StackInuse) - float64(before.StackInuse)
		b.ReportMetric(heap/float64(n), "heap-B/stream")
		b.ReportMetric(stack/float64(n), "stack-B/stream")
		b.ReportMetric((heap+stack)/float64(n), "B/stream")
		b.ReportMetric((heap+stack)/(1<<20), "total-MiB")
		b.ReportMetric(float64(unsafe.Sizeof(Stream{})), "struct-B")
		c.Close()
		s.Close()
		wg.Wait()
	}
}
