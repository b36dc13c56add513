// Package fakepush holds the bookkeeping that the in-process fakes of push
// providers (apnstest, fcmtest, wnstest) share: the deliveries a fake
// accepted and the callback told of each, failures injected per device
// token with their countdown, requests held by a hanging failure until the
// client gives up or the fake closes (Book); the access tokens a fake's
// OAuth token endpoint issued and its call counts (OAuth); and the start
// and stop of a fake's HTTPS test server.
//
// What a provider's requests and answers look like stays in each fake; a
// fake tells a Book how to read its own Failure type through a Fault.
package fakepush

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a Book needs to know of a fake's failure.
type Fault struct {
	// Hang holds the request until the client gives up or the Book is
	// closed, and answers nothing.
	Hang bool
	// RetryAfter is a Retry-After header value to answer with, if any.
	RetryAfter string
	// Times is how many requests fail before the token is accepted
	// again; 0 means every request.
	Times int
}

// Book records a fake's deliveries (of type N) and answers injected
// failures (of the fake's type F). The zero Book is not usable; use New.
type Book[N, F any] struct {
	fault   func(F) Fault
	discard bool
	hangs   chan struct{}
	close   sync.Once

	mu        sync.Mutex
	delivered []N
	onDeliver func(N)
	failures  map[string]*failure[F]
}

type failure[F any] struct {
	f    F
	left int // requests still to fail; 0 means every request
}

// New returns a Book whose failures are read by fault. With discard, the
// Book keeps no deliveries (benchmarks) but still calls the callback.
func New[N, F any](fault func(F) Fault, discard bool) *Book[N, F] {
	return &Book[N, F]{fault: fault, discard: discard, hangs: make(chan struct{}), failures: map[string]*failure[F]{}}
}

// Close releases the requests held by hanging failures; later ones return
// at once. It may be called more than once.
func (b *Book[N, F]) Close() { b.close.Do(func() { close(b.hangs) }) }

// Stop closes b and then srv, dropping its client connections first so
// that no keep-alive connection holds it open.
func (b *Book[N, F]) Stop(srv *httptest.Server) {
	b.Close()
	srv.CloseClientConnections()
	srv.Close()
}

// ServeTLS starts an HTTPS test server with routes (patterns as
// http.ServeMux takes them) and has stop run when tb ends.
func ServeTLS(tb testing.TB, stop func(), routes map[string]http.HandlerFunc) *httptest.Server {
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	srv := httptest.NewTLSServer(mux)
	tb.Cleanup(stop)
	return srv
}

// OnDeliver sets the callback run, synchronously in the request's
// goroutine, for every delivery; nil removes it.
func (b *Book[N, F]) OnDeliver(f func(N)) {
	b.mu.Lock()
	b.onDeliver = f
	b.mu.Unlock()
}

// Listening reports whether a delivery would be kept or told to a
// callback, so that a fake can skip building one nobody sees.
func (b *Book[N, F]) Listening() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.onDeliver != nil || !b.discard
}

// Deliver records n (unless the Book discards) and then runs the
// callback, if any, outside the lock.
func (b *Book[N, F]) Deliver(n N) {
	b.mu.Lock()
	if !b.discard {
		b.delivered = append(b.delivered, n)
	}
	cb := b.onDeliver
	b.mu.Unlock()
	if cb != nil {
		cb(n)
	}
}

// Delivered returns the deliveries so far, oldest first.
func (b *Book[N, F]) Delivered() []N {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]N(nil), b.delivered...)
}

// Fail makes requests for token fail with f (see Fault.Times), replacing
// any failure set before.
func (b *Book[N, F]) Fail(token string, f F) {
	b.mu.Lock()
	b.failures[token] = &failure[F]{f: f, left: b.fault(f).Times}
	b.mu.Unlock()
}

// take returns the failure to answer token with, consuming one of its
// Times.
func (b *Book[N, F]) take(token string) (F, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.failures[token]
	if !ok {
		var zero F
		return zero, false
	}
	if e.left > 0 {
		e.left--
		if e.left == 0 {
			delete(b.failures, token)
		}
	}
	return e.f, true
}

// Refuse answers r with token's failure, if it has one, and reports
// whether it did. A hanging failure holds the request until the client
// gives up or the Book is closed and answers nothing; any other sets the
// Retry-After header, if the failure has one, and calls answer to write
// the provider's own error to w.
func (b *Book[N, F]) Refuse(w http.ResponseWriter, r *http.Request, token string, answer func(http.ResponseWriter, F)) bool {
	f, ok := b.take(token)
	if !ok {
		return false
	}
	fault := b.fault(f)
	if fault.Hang {
		select {
		case <-r.Context().Done():
		case <-b.hangs:
		}
		return true
	}
	if fault.RetryAfter != "" {
		w.Header().Set("Retry-After", fault.RetryAfter)
	}
	answer(w, f)
	return true
}

// OAuth is what a fake with an OAuth 2.0 token endpoint keeps: the access
// tokens it issued, with their expiry, and the counts of calls of its token
// and send endpoints. The zero OAuth is ready to use.
type OAuth struct {
	requests, issued, sends atomic.Int64

	mu  sync.Mutex
	exp map[string]time.Time // access token → expiry
}

// Counts are the counters of an OAuth.
type Counts struct {
	TokenRequests int // token endpoint calls, refused ones included
	TokensIssued  int
	Sends         int // send endpoint calls, refused ones included
}

// Counts returns the counters so far.
func (o *OAuth) Counts() Counts {
	return Counts{TokenRequests: int(o.requests.Load()), TokensIssued: int(o.issued.Load()), Sends: int(o.sends.Load())}
}

// Requested counts a call of the token endpoint.
func (o *OAuth) Requested() { o.requests.Add(1) }

// Sending counts a call of the send endpoint.
func (o *OAuth) Sending() { o.sends.Add(1) }

// Grant issues access, valid for lifetime from now, and answers w with
// the successful access token response of RFC 6749 section 5.1.
func (o *OAuth) Grant(w http.ResponseWriter, access, tokenType string, lifetime time.Duration) {
	o.mu.Lock()
	if o.exp == nil {
		o.exp = map[string]time.Time{}
	}
	o.exp[access] = time.Now().Add(lifetime)
	o.mu.Unlock()
	o.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "token_type": tokenType, "expires_in": int(lifetime / time.Second),
	})
}

// Authorized reports whether r carries a bearer token that was issued and
// has not expired or been revoked.
func (o *OAuth) Authorized(r *http.Request) bool {
	access, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	o.mu.Lock()
	exp, known := o.exp[access]
	o.mu.Unlock()
	return known && !time.Now().After(exp)
}

// Revoke forgets every token issued so far.
func (o *OAuth) Revoke() {
	o.mu.Lock()
	clear(o.exp)
	o.mu.Unlock()
}
