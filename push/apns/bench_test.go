package apns_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/bench/benchcpu"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/push/apns/apnstest"
)

// BenchmarkAPNsThroughput sends MDM pushes from many goroutines to the local
// fake over at most apns.DefaultMaxConns HTTP/2 connections and reports
// notifications per second. It fails if a connection carried more streams
// than the fake advertised or more than DefaultMaxConns were opened.
func BenchmarkAPNsThroughput(b *testing.B) {
	for _, streams := range []int{1000, 100} {
		b.Run("streams="+strconv.Itoa(streams), func(b *testing.B) {
			srv := apnstest.NewServer(b, apnstest.Options{MaxConcurrentStreams: streams, Discard: true})
			c, err := apns.New(apns.Config{
				Certificate: srv.ClientCertificate(b, topic), URL: srv.URL, Topic: topic,
				RootCAs: srv.RootCAs(),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var seq atomic.Int64
			// 128 senders per CPU: more than the 100-stream variant's
			// connections can carry at once, so that the limit is hit and
			// must be honoured, without drowning the scheduler.
			b.SetParallelism(128)
			b.ResetTimer()
			start, cpu0 := time.Now(), benchcpu.Process()
			b.RunParallel(func(pb *testing.PB) {
				tok := token(int(seq.Add(1)))
				for pb.Next() {
					if err := c.Send(context.Background(), push.Target{Provider: push.APNs, Token: tok, PushMagic: "m"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed, cpu := time.Since(start), benchcpu.Process()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
			if cpu > 0 {
				// Client and fake together, per notification.
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			}
			s := srv.Stats()
			if s.MaxStreams > streams || s.Accepted > apns.DefaultMaxConns {
				b.Fatalf("limits violated: %+v (stream limit %d, max conns %d)", s, streams, apns.DefaultMaxConns)
			}
			b.ReportMetric(float64(s.Accepted), "conns")
			b.ReportMetric(float64(s.MaxStreams), "maxstreams")
		})
	}
}

// BenchmarkAPNsAnchorTransport is the same-run anchor: the same pushes sent
// through a plain http.Client on an HTTP/2-only http.Transport capped at
// DefaultMaxConns connections per host (an apns2-style client: one
// http.Client, no pool of our own), against the same fake.
func BenchmarkAPNsAnchorTransport(b *testing.B) {
	for _, streams := range []int{1000, 100} {
		b.Run("streams="+strconv.Itoa(streams), func(b *testing.B) {
			srv := apnstest.NewServer(b, apnstest.Options{MaxConcurrentStreams: streams, Discard: true})
			protos := new(http.Protocols)
			protos.SetHTTP2(true)
			hc := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{srv.ClientCertificate(b, topic)}, RootCAs: srv.RootCAs()},
				Protocols:       protos,
				MaxConnsPerHost: apns.DefaultMaxConns,
			}}
			defer hc.CloseIdleConnections()
			var seq atomic.Int64
			b.SetParallelism(128)
			b.ResetTimer()
			start, cpu0 := time.Now(), benchcpu.Process()
			b.RunParallel(func(pb *testing.PB) {
				url := srv.URL + "/3/device/" + token(int(seq.Add(1)))
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"mdm":"m"}`))
					req.Header.Set("apns-topic", topic)
					req.Header.Set("apns-push-type", "mdm")
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			elapsed, cpu := time.Since(start), benchcpu.Process()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			}
			s := srv.Stats()
			b.ReportMetric(float64(s.Accepted), "conns")
			b.ReportMetric(float64(s.MaxStreams), "maxstreams")
		})
	}
}
