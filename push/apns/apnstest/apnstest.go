// Package apnstest is an in-process fake of the APNs provider API for tests:
// HTTP/2 over TLS, a required client certificate from the fake's own CA,
// the request shape of the real service checked, deliveries recorded (and
// announced to a callback, so that a test can wake a simulated device), and
// failures injectable per device token.
//
// Request shape and answers follow
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
// and https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
package apnstest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/push/internal/fakepush"
)

// Limits the fake enforces, as APNs does.
const (
	MaxPayloadSize = 4096 // bytes of a non-VoIP payload; more is 413 PayloadTooLarge
	MinTokenLen    = 64   // hex digits of a device token
	// DefaultMaxConcurrentStreams is what the fake advertises in
	// SETTINGS_MAX_CONCURRENT_STREAMS unless told otherwise (APNs has been
	// seen advertising 1000; Apple may lower it under load).
	DefaultMaxConcurrentStreams = 1000
)

// oidUID is the X.500 userId attribute (0.9.2342.19200300.100.1.1) that an
// Apple push certificate's subject carries its topic in.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// Notification is a push the fake accepted.
type Notification struct {
	Token      string
	Topic      string
	PushType   string
	Priority   string
	Expiration string
	ID         string // the apns-id answered
	CollapseID string
	Payload    []byte
	// PushMagic is payload["mdm"] for an MDM push.
	PushMagic string
	Received  time.Time
}

// Failure is how the fake answers a token instead of accepting.
type Failure struct {
	Status     int    // e.g. 410, 429, 500, 503
	Reason     string // the JSON "reason"
	RetryAfter string // a Retry-After header value, if any
	// Hang holds the request until the client gives up (a timeout).
	Hang bool
	// Times is how many requests fail before the token is accepted again;
	// 0 means every request.
	Times int
}

// Unregistered is APNs' answer for a token that is no longer valid.
func Unregistered() Failure { return Failure{Status: http.StatusGone, Reason: "Unregistered"} }

// TooManyRequests is the answer to a provider pushing the same token too
// often, with the given Retry-After value ("" for none).
func TooManyRequests(retryAfter string, times int) Failure {
	return Failure{Status: http.StatusTooManyRequests, Reason: "TooManyRequests", RetryAfter: retryAfter, Times: times}
}

// ServerError is a 500 InternalServerError or 503 ServiceUnavailable.
func ServerError(status, times int) Failure {
	reason := "InternalServerError"
	if status == http.StatusServiceUnavailable {
		reason = "ServiceUnavailable"
	}
	return Failure{Status: status, Reason: reason, Times: times}
}

// Hang makes the next times requests for a token never be answered.
func Hang(times int) Failure { return Failure{Hang: true, Times: times} }

func (f Failure) fault() fakepush.Fault {
	return fakepush.Fault{Hang: f.Hang, RetryAfter: f.RetryAfter, Times: f.Times}
}

// Options configures a Server.
type Options struct {
	// MaxConcurrentStreams is advertised to clients and enforced by the
	// server; default DefaultMaxConcurrentStreams.
	MaxConcurrentStreams int
	// Discard skips recording deliveries (benchmarks); callbacks still run.
	Discard bool
}

// Stats are counters of a Server.
type Stats struct {
	Accepted int // TCP connections accepted
	Conns    int // connections that carried at least one request
	Requests int // requests handled, failures included
	// MaxStreams is the largest number of requests seen in flight at
	// once on a single connection.
	MaxStreams int
}

// Server is a running fake APNs.
type Server struct {
	// URL is the base URL to give apns.Config.URL.
	URL string

	srv    *httptest.Server
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	opts   Options

	book *fakepush.Book[Notification, Failure]

	accepted, conns, requests, maxStreams atomic.Int64
}

type connKey struct{}

type connStats struct {
	once   sync.Once
	active atomic.Int64
}

// NewServer starts a fake APNs; it is closed when the test ends.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.MaxConcurrentStreams <= 0 {
		opts.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "apnstest push CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(der)
	s := &Server{caCert: caCert, caKey: caKey, opts: opts, book: fakepush.New[Notification](Failure.fault, opts.Discard)}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	hs.EnableHTTP2 = true
	hs.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: opts.MaxConcurrentStreams}
	hs.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		s.accepted.Add(1)
		return context.WithValue(ctx, connKey{}, &connStats{})
	}
	// Handshake failures (a test of a foreign client certificate) are
	// expected; keep them out of the test log.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.TLS = &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		MinVersion: tls.VersionTLS12,
	}
	hs.StartTLS()
	s.srv = hs
	s.URL = hs.URL
	tb.Cleanup(s.Close)
	return s
}

// Close releases hanging requests and stops the server.
func (s *Server) Close() { s.book.Stop(s.srv) }

// DropConnections closes every client connection, as APNs does when it
// restarts a front end; clients must reconnect.
func (s *Server) DropConnections() { s.srv.CloseClientConnections() }

// RootCAs returns a pool that trusts the fake's server certificate.
func (s *Server) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// ClientCertificate issues a push certificate from the fake's CA whose
// subject UID is topic, as Apple's MDM push certificates carry
// "com.apple.mgmt.External.<uuid>". The fake refuses an apns-topic other
// than the UID with 400 TopicDisallowed.
func (s *Server) ClientCertificate(tb testing.TB, topic string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName: "APSP:" + topic,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUID, Value: topic}},
		},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, &key.PublicKey, s.caKey)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// OnPush sets a callback run (synchronously, in the request's goroutine)
// for every accepted notification; nil removes it. Use it to wake a
// simulated device when its token is pushed.
func (s *Server) OnPush(f func(Notification)) { s.book.OnDeliver(f) }

// Fail makes the fake answer token with f (see Failure.Times).
func (s *Server) Fail(token string, f Failure) { s.book.Fail(strings.ToLower(token), f) }

// Delivered returns the accepted notifications so far, oldest first.
func (s *Server) Delivered() []Notification { return s.book.Delivered() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:   int(s.accepted.Load()),
		Conns:      int(s.conns.Load()),
		Requests:   int(s.requests.Load()),
		MaxStreams: int(s.maxStreams.Load()),
	}
}

// MaxConcurrentStreams is the limit the server advertises.
func (s *Server) MaxConcurrentStreams() int { return s.opts.MaxConcurrentStreams }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if cs, ok := r.Context().Value(connKey{}).(*connStats); ok {
		cs.once.Do(func() { s.conns.Add(1) })
		n := cs.active.Add(1)
		defer cs.active.Add(-1)
		for {
			m := s.maxStreams.Load()
			if n <= m || s.maxStreams.CompareAndSwap(m, n) {
				break
			}
		}
	}
	if r.ProtoMajor != 2 {
		reject(w, http.StatusBadRequest, "BadRequest: APNs requires HTTP/2")
		return
	}
	if r.Method != http.MethodPost {
		reject(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || token == "" || strings.Contains(token, "/") {
		reject(w, http.StatusNotFound, "BadPath")
		return
	}
	if len(token) < MinTokenLen || len(token)%2 != 0 {
		reject(w, http.StatusBadRequest, "BadDeviceToken")
		return
	}
	if !isHex(token) {
		reject(w, http.StatusBadRequest, "BadDeviceToken")
		return
	}
	token = strings.ToLower(token)
	h := r.Header
	topic := h.Get("apns-topic")
	if topic == "" {
		reject(w, http.StatusBadRequest, "MissingTopic")
		return
	}
	if uid := certTopic(r.TLS); uid != "" && uid != topic {
		reject(w, http.StatusBadRequest, "TopicDisallowed")
		return
	}
	pushType := h.Get("apns-push-type")
	switch pushType {
	case "", "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk":
	default:
		reject(w, http.StatusBadRequest, "InvalidPushType")
		return
	}
	switch p := h.Get("apns-priority"); p {
	case "", "1", "5", "10":
		if pushType == "background" && p == "10" {
			// Apple: background pushes must use priority 5.
			reject(w, http.StatusBadRequest, "BadPriority")
			return
		}
	default:
		reject(w, http.StatusBadRequest, "BadPriority")
		return
	}
	if e := h.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			reject(w, http.StatusBadRequest, "BadExpirationDate")
			return
		}
	}
	id := h.Get("apns-id")
	if id != "" && !isUUID(id) {
		reject(w, http.StatusBadRequest, "BadMessageId")
		return
	}
	if c := h.Get("apns-collapse-id"); len(c) > 64 {
		reject(w, http.StatusBadRequest, "BadCollapseId")
		return
	}
	bufp := bodyPool.Get().(*[MaxPayloadSize + 1]byte)
	defer bodyPool.Put(bufp)
	nb, err := io.ReadFull(r.Body, bufp[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return
	}
	body := bufp[:nb]
	if len(body) > MaxPayloadSize {
		reject(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge")
		return
	}
	if len(body) == 0 {
		reject(w, http.StatusBadRequest, "PayloadEmpty")
		return
	}
	magic, hasMDM, hasAPS, ok := topLevel(body)
	if !ok || (!hasMDM && !hasAPS) || (hasMDM && magic == "") {
		reject(w, http.StatusBadRequest, "BadPayload") // the fake's own word: APNs documents none
		return
	}
	if pushType == "mdm" && magic == "" {
		reject(w, http.StatusBadRequest, "BadPayload")
		return
	}

	if s.book.Refuse(w, r, token, func(w http.ResponseWriter, f Failure) {
		// APNs answers 410 with the time the token was last known valid.
		if f.Status == http.StatusGone {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `{"reason":%q,"timestamp":%d}`, f.Reason, time.Now().UnixMilli())
			return
		}
		reject(w, f.Status, f.Reason)
	}) {
		return
	}

	if id == "" {
		id = newUUID()
	}
	if s.book.Listening() {
		s.book.Deliver(Notification{
			Token: token, Topic: topic, PushType: pushType, Priority: h.Get("apns-priority"),
			Expiration: h.Get("apns-expiration"), ID: id, CollapseID: h.Get("apns-collapse-id"),
			Payload: bytes.Clone(body), PushMagic: magic, Received: time.Now(),
		})
	}
	rh := w.Header()
	rh["Apns-Id"] = []string{id}
	rh["Date"] = nil // APNs sends none; formatting it costs the benchmark
	w.WriteHeader(http.StatusOK)
}

func reject(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"reason":%q}`, reason)
}

func certTopic(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, a := range cs.PeerCertificates[0].Subject.Names {
		if a.Type.Equal(oidUID) {
			if v, ok := a.Value.(string); ok {
				return v
			}
		}
	}
	return ""
}

// topLevel checks that body is a JSON object and finds its "mdm" (a
// string, returned) and "aps" (an object) members. It scans rather than
// unmarshals: the fake runs in the throughput benchmark, and reflection
// there would measure the fake instead of the client.
func topLevel(body []byte) (magic string, hasMDM, hasAPS, ok bool) {
	if !json.Valid(body) {
		return "", false, false, false
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false, false, false
	}
	i++
	// Later duplicates win, as in encoding/json.
	mdmBad, apsBad := false, false
	for {
		i = skipSpace(body, i)
		if body[i] == '}' {
			if mdmBad || apsBad {
				return "", false, false, false
			}
			return magic, hasMDM, hasAPS, true
		}
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
		kEnd := skipValue(body, i)
		key := body[i:kEnd]
		i = skipSpace(body, kEnd) + 1 // past ':'
		i = skipSpace(body, i)
		vEnd := skipValue(body, i)
		switch string(key) {
		case `"mdm"`:
			magic = ""
			hasMDM = true
			switch {
			case body[i] != '"':
				mdmBad = true
			case plainASCII(body[i+1 : vEnd-1]):
				magic, mdmBad = string(body[i+1:vEnd-1]), false // no escapes: the common case
			default:
				mdmBad = json.Unmarshal(body[i:vEnd], &magic) != nil
			}
		case `"aps"`:
			hasAPS = true
			apsBad = body[i] != '{'
		}
		i = vEnd
	}
}

func plainASCII(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the (valid) JSON value starting at i.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

var bodyPool = sync.Pool{New: func() any { return new([MaxPayloadSize + 1]byte) }}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func newUUID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], mrand.Uint64()) // unique enough for a fake, and cheap
	binary.LittleEndian.PutUint64(b[8:], mrand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.ToUpper(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
}
