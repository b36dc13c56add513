package core

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/custos-uem/custos/console"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/push"
)

// appleCertCheckInterval is how often the expiry of the MDM push
// certificate and of the ADE server token is checked (and warned about in
// the log within 30 days of expiry).
const appleCertCheckInterval = 24 * time.Hour

// newApplePush builds the MDM push certificate service and returns the
// Core's push sender with it in front of base: MDM pushes (APNs targets
// with PushMagic or the certificate's topic) go through the uploaded
// certificate; everything else, and MDM pushes while no certificate is
// uploaded, go to base (the configured providers, or the relay). It runs
// before the notifier is built (core/services.go).
func (m *Main) newApplePush(base push.Sender) (push.Sender, error) {
	cfg := &m.Config
	var proxy func(*http.Request) (*url.URL, error)
	if p := cfg.Push.Proxy; p != "" && p != "direct" {
		u, err := url.Parse(p)
		if err != nil || u.Host == "" || (u.Scheme != "socks5" && u.Scheme != "http") {
			return nil, fmt.Errorf("push proxy %q: want socks5://host:port or http://host:port", p)
		}
		proxy = http.ProxyURL(u)
	}
	m.ApplePush = &pushcert.Service{Store: m.DB, Box: m.box, Now: cfg.Now, Log: cfg.Logger,
		APNsURL: cfg.Push.APNsURL, RootCAs: cfg.Apple.APNsRootCAs, Proxy: proxy}
	return m.ApplePush.Sender(base), nil
}

// registerApplePush has nothing to put on the router: the certificate's
// settings are API routes (api/apple.go) and cards of the console's
// Settings page, which it connects here.
func (m *Main) registerApplePush(ctx context.Context, rt *httpx.Router) error {
	if m.console != nil {
		m.console.Apple = &console.Apple{Push: m.ApplePush, DEP: m.AppleDEP}
	}
	return nil
}

// appleJobs are the scheduled jobs of the Apple platform: the daily
// expiry check of the push certificate and the ADE server token, and the
// ADE device sync.
func (m *Main) appleJobs() []job {
	jobs := []job{{name: "apple-expiry", every: appleCertCheckInterval, run: func(ctx context.Context) (int, error) {
		n, err := m.ApplePush.CheckExpiry(ctx)
		if err != nil {
			return n, err
		}
		k, err := m.AppleDEP.CheckExpiry(ctx)
		return n + k, err
	}}}
	return append(jobs, m.depJobs()...)
}
