// Package fcmtest is an in-process fake of FCM HTTP v1 and of Google's
// OAuth 2.0 token endpoint, for tests.
//
// The token endpoint implements the JWT bearer grant (RFC 7523) as Google
// does for service accounts
// (https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
// it checks the assertion's RS256 signature against the service account's
// public key and its iss, scope, aud, iat and exp claims. The send endpoint
// (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send)
// checks the bearer token and the message's JSON shape, records accepted
// messages, and answers injected failures per registration token with the
// error bodies of https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode.
package fcmtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/push/internal/fakepush"
)

// Names the fake expects.
const (
	Scope          = "https://www.googleapis.com/auth/firebase.messaging"
	GrantType      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	DefaultProject = "custos-test"
	MaxDataSize    = 4096 // bytes of data keys and values
	maxBody        = 64 << 10
)

// Message is a message the fake accepted.
type Message struct {
	Project  string
	Token    string
	Data     map[string]string
	Priority string // android.priority
	Name     string // the answered message name
}

// Failure is how the fake answers a registration token instead of accepting.
type Failure struct {
	Status     int    // HTTP status
	ErrorCode  string // FcmError errorCode, e.g. UNREGISTERED
	RPCStatus  string // google.rpc status, e.g. NOT_FOUND
	Field      string // a BadRequest field violation, e.g. message.token
	RetryAfter string
	Hang       bool
	Times      int // failures before accepting again; 0 = always
}

// Unregistered is FCM's answer for an app instance that is gone.
func Unregistered() Failure {
	return Failure{Status: 404, ErrorCode: "UNREGISTERED", RPCStatus: "NOT_FOUND"}
}

// InvalidToken is FCM's answer for a string that is no registration token.
func InvalidToken() Failure {
	return Failure{Status: 400, ErrorCode: "INVALID_ARGUMENT", RPCStatus: "INVALID_ARGUMENT", Field: "message.token"}
}

// QuotaExceeded is a 429 with the given Retry-After value ("" for none).
func QuotaExceeded(retryAfter string, times int) Failure {
	return Failure{Status: 429, ErrorCode: "QUOTA_EXCEEDED", RPCStatus: "RESOURCE_EXHAUSTED", RetryAfter: retryAfter, Times: times}
}

// Unavailable is a 503 UNAVAILABLE.
func Unavailable(times int) Failure {
	return Failure{Status: 503, ErrorCode: "UNAVAILABLE", RPCStatus: "UNAVAILABLE", Times: times}
}

// Internal is a 500 INTERNAL.
func Internal(times int) Failure {
	return Failure{Status: 500, ErrorCode: "INTERNAL", RPCStatus: "INTERNAL", Times: times}
}

// Hang makes the next times requests for a token never be answered.
func Hang(times int) Failure { return Failure{Hang: true, Times: times} }

func (f Failure) fault() fakepush.Fault {
	return fakepush.Fault{Hang: f.Hang, RetryAfter: f.RetryAfter, Times: f.Times}
}

// Options configures a Server.
type Options struct {
	Project       string        // default DefaultProject
	TokenLifetime time.Duration // expires_in of access tokens; default 1 h
}

// Stats are counters of a Server.
type Stats struct {
	TokenRequests int // token endpoint calls, refused ones included
	TokensIssued  int
	Sends         int // send endpoint calls, refused ones included
}

// Server is a running fake.
type Server struct {
	// URL is the base URL for fcm.Config.Endpoint.
	URL string

	srv   *httptest.Server
	book  *fakepush.Book[Message, Failure]
	oauth fakepush.OAuth

	opts  Options
	key   *rsa.PrivateKey
	keyID string
	email string
}

// NewServer starts a fake with a fresh service account; it is closed when
// the test ends.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Project == "" {
		opts.Project = DefaultProject
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	s := &Server{opts: opts, book: fakepush.New[Message](Failure.fault, false)}
	s.key = rsaKey(tb)
	s.keyID = randHex(20)
	s.email = "custos-push@" + opts.Project + ".iam.gserviceaccount.com"
	s.srv = fakepush.ServeTLS(tb, s.Close, map[string]http.HandlerFunc{
		"POST /token": s.token,
		"POST /v1/projects/{project}/messages:send": s.send,
	})
	s.URL = s.srv.URL
	return s
}

// Close releases hanging requests and stops the server.
func (s *Server) Close() { s.book.Stop(s.srv) }

// Client returns an HTTP client that trusts the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// TokenURL is the fake's token endpoint (also the JWT audience).
func (s *Server) TokenURL() string { return s.URL + "/token" }

// Project is the fake's project ID.
func (s *Server) Project() string { return s.opts.Project }

// ServiceAccountJSON returns a key file for the fake's service account,
// whose token_uri is the fake's token endpoint.
func (s *Server) ServiceAccountJSON(tb testing.TB) []byte {
	tb.Helper()
	return serviceAccountJSON(tb, s.key, s.keyID, s.email, s.opts.Project, s.TokenURL())
}

// NewServiceAccount returns a service-account key file with a fresh RSA key
// (and the key), as Google's console issues them.
func NewServiceAccount(tb testing.TB, tokenURI, project string) ([]byte, *rsa.PrivateKey) {
	tb.Helper()
	key := rsaKey(tb)
	return serviceAccountJSON(tb, key, randHex(20), "custos-push@"+project+".iam.gserviceaccount.com", project, tokenURI), key
}

func serviceAccountJSON(tb testing.TB, key *rsa.PrivateKey, keyID, email, project, tokenURI string) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": keyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   email,
		"client_id":      "1" + randHex(10),
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      tokenURI,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var (
	keyOnce sync.Once
	keyPool []*rsa.PrivateKey
)

// rsaKey returns an RSA-2048 key. Generating one takes ~0.3 s here, so a
// few are made once per test binary and handed out in turn.
func rsaKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	keyOnce.Do(func() {
		for range 2 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, k)
		}
	})
	return keyPool[int(keyCounter.Add(1))%len(keyPool)]
}

var keyCounter atomic.Int64

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// OnMessage sets a callback run for every accepted message; nil removes it.
func (s *Server) OnMessage(f func(Message)) { s.book.OnDeliver(f) }

// Fail makes the fake answer token with f.
func (s *Server) Fail(token string, f Failure) { s.book.Fail(token, f) }

// RevokeTokens invalidates every access token issued so far, so the next
// send gets 401 UNAUTHENTICATED.
func (s *Server) RevokeTokens() { s.oauth.Revoke() }

// Delivered returns the accepted messages, oldest first.
func (s *Server) Delivered() []Message { return s.book.Delivered() }

// Stats returns the fake's counters.
func (s *Server) Stats() Stats { return Stats(s.oauth.Counts()) }

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// token is the JWT bearer grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.oauth.Requested()
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, 400, "invalid_request", "bad form")
		return
	}
	if r.PostForm.Get("grant_type") != GrantType {
		oauthError(w, 400, "unsupported_grant_type", "want "+GrantType)
		return
	}
	if err := s.verifyAssertion(r.PostForm.Get("assertion")); err != nil {
		oauthError(w, 400, "invalid_grant", err.Error())
		return
	}
	s.oauth.Grant(w, "ya29.fake-"+randHex(32), "Bearer", s.opts.TokenLifetime)
}

func (s *Server) verifyAssertion(a string) error {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWS compact serialization")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if hdr.Alg != "RS256" {
		return fmt.Errorf("alg %q, want RS256", hdr.Alg)
	}
	if hdr.Kid != "" && hdr.Kid != s.keyID {
		return fmt.Errorf("unknown kid")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature encoding: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("bad signature")
	}
	var c struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	now := time.Now().Unix()
	switch {
	case c.Iss != s.email:
		return fmt.Errorf("iss %q is not the service account", c.Iss)
	case c.Aud != s.TokenURL():
		return fmt.Errorf("aud %q, want %q", c.Aud, s.TokenURL())
	case !hasScope(c.Scope, Scope):
		return fmt.Errorf("scope %q lacks %s", c.Scope, Scope)
	case c.Exp <= now:
		return fmt.Errorf("assertion expired")
	case c.Iat > now+60:
		return fmt.Errorf("iat in the future")
	case c.Exp-c.Iat > 3600:
		return fmt.Errorf("assertion valid for over an hour")
	}
	return nil
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// rpcError writes a google.rpc.Status error body.
func rpcError(w http.ResponseWriter, status int, rpcStatus, msg, errorCode, field string) {
	var details []map[string]any
	if errorCode != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode})
	}
	if field != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []map[string]string{{"field": field, "description": msg}}})
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": rpcStatus, "details": details,
	}})
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	s.oauth.Sending()
	if !s.oauth.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		rpcError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token.", "", "")
		return
	}
	project := r.PathValue("project")
	if project != s.opts.Project {
		rpcError(w, 404, "NOT_FOUND", "Requested entity was not found.", "", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		rpcError(w, 400, "INVALID_ARGUMENT", "content type must be application/json", "", "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		rpcError(w, 400, "INVALID_ARGUMENT", "body too large", "INVALID_ARGUMENT", "")
		return
	}
	var req struct {
		ValidateOnly bool `json:"validate_only"`
		Message      *struct {
			Token     string            `json:"token"`
			Topic     string            `json:"topic"`
			Condition string            `json:"condition"`
			Data      map[string]string `json:"data"`
			Android   *struct {
				Priority string `json:"priority"`
			} `json:"android"`
		} `json:"message"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Message == nil {
		rpcError(w, 400, "INVALID_ARGUMENT", fmt.Sprintf("Invalid JSON payload received. %v", err), "INVALID_ARGUMENT", "")
		return
	}
	m := req.Message
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		rpcError(w, 400, "INVALID_ARGUMENT", "exactly one of token, topic, condition is required", "INVALID_ARGUMENT", "message")
		return
	}
	size := 0
	for k, v := range m.Data {
		size += len(k) + len(v)
	}
	if size > MaxDataSize {
		rpcError(w, 400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT", "")
		return
	}
	prio := ""
	if m.Android != nil {
		prio = m.Android.Priority
		if prio != "NORMAL" && prio != "HIGH" {
			rpcError(w, 400, "INVALID_ARGUMENT", "Invalid value at 'message.android.priority'", "INVALID_ARGUMENT", "message.android.priority")
			return
		}
	}
	if s.book.Refuse(w, r, m.Token, func(w http.ResponseWriter, f Failure) {
		// The messages FCM answers with (ErrorCode reference above).
		msg := map[string]string{
			"UNREGISTERED":     "Requested entity was not found.",
			"INVALID_ARGUMENT": "The registration token is not a valid FCM registration token",
		}[f.ErrorCode]
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		rpcError(w, f.Status, f.RPCStatus, msg, f.ErrorCode, f.Field)
	}) {
		return
	}
	name := "projects/" + project + "/messages/0:" + randHex(16)
	msg := Message{Project: project, Token: m.Token, Data: m.Data, Priority: prio, Name: name}
	if !req.ValidateOnly {
		s.book.Deliver(msg)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
}
