package httpx

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/custos-uem/custos/errs"
)

// MaxLimiterKeys bounds the memory of an IPLimiter: past it, the oldest
// half of the keys is forgotten (a forgotten client starts with a full
// bucket, which errs on the side of availability).
const MaxLimiterKeys = 100_000

// IPLimiter rate-limits requests per client IP address with a token bucket.
type IPLimiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewIPLimiter allows each IP perSecond requests on average and burst at
// once.
func NewIPLimiter(perSecond float64, burst int) *IPLimiter {
	return &IPLimiter{every: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, now: time.Now}
}

// ErrRateLimited answers a client over its rate.
var ErrRateLimited = errs.E(errs.RateLimited, "rate_limited", "too many requests from this address; slow down")

// Allow reports whether the client at addr (host:port or host) may make a
// request now.
func (l *IPLimiter) Allow(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[host]
	if !ok {
		if len(l.buckets) >= MaxLimiterKeys {
			l.evictLocked()
		}
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.buckets[host] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// evictLocked forgets the keys not seen in the older half of the span.
func (l *IPLimiter) evictLocked() {
	var oldest, newest time.Time
	for _, b := range l.buckets {
		if oldest.IsZero() || b.seen.Before(oldest) {
			oldest = b.seen
		}
		if b.seen.After(newest) {
			newest = b.seen
		}
	}
	mid := oldest.Add(newest.Sub(oldest) / 2)
	for k, b := range l.buckets {
		if !b.seen.After(mid) {
			delete(l.buckets, k)
		}
	}
}

// Middleware refuses requests over the limit with 429.
func (l *IPLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.Allow(r.RemoteAddr) {
			w.Header().Set("Retry-After", "1")
			WriteError(w, r, ErrRateLimited)
			return
		}
		next.ServeHTTP(w, r)
	})
}
