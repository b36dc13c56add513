// Package providers builds the push senders of package push from their
// credentials, for every role that sends pushes: the Core when it holds
// its own credentials, and the relay that sends on behalf of Cores.
package providers

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/push/fcm"
	"github.com/custos-uem/custos/push/wns"
)

// Config holds the push providers' credentials. A provider without
// credentials is not used: its devices are reached by their scheduled
// check-ins (and, for the agent, its long poll), or through a relay that
// holds credentials.
type Config struct {
	// APNsCert and APNsKey are PEM files of the APNs certificate and its
	// key (for MDM, the "APNs certificate for MDM"); APNsTopic is the
	// topic used when a device registered none; APNsURL replaces Apple's
	// production endpoint (the sandbox, or a test fake).
	APNsCert, APNsKey, APNsTopic, APNsURL string
	// FCMCredentials is a Google service-account key file (JSON) with the
	// Firebase Cloud Messaging API enabled for its project.
	FCMCredentials string
	// WNSPackageSID and WNSClientSecret are the app's WNS credentials.
	WNSPackageSID, WNSClientSecret string
	// Proxy is how connections to the providers leave the network: ""
	// directly, "socks5://host:port" (the seed's router) or
	// "http://host:port" (HTTP CONNECT).
	Proxy string
}

// proxy returns the Transport.Proxy function of c.Proxy, nil for none.
func (c Config) proxy() (func(*http.Request) (*url.URL, error), error) {
	if c.Proxy == "" || c.Proxy == "direct" {
		return nil, nil
	}
	u, err := url.Parse(c.Proxy)
	if err != nil || u.Host == "" || (u.Scheme != "socks5" && u.Scheme != "http") {
		return nil, fmt.Errorf("proxy %q: want socks5://host:port or http://host:port", c.Proxy)
	}
	return http.ProxyURL(u), nil
}

// client returns an HTTP client through proxy.
func client(proxy func(*http.Request) (*url.URL, error)) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = proxy
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// Senders builds a client per configured provider, keyed by push.APNs,
// push.FCM and push.WNS; the map is empty when none is configured.
func (c Config) Senders() (map[string]push.Sender, error) {
	senders := map[string]push.Sender{}
	proxy, err := c.proxy()
	if err != nil {
		return nil, err
	}
	if c.APNsCert != "" || c.APNsKey != "" {
		cert, err := tls.LoadX509KeyPair(c.APNsCert, c.APNsKey)
		if err != nil {
			return nil, fmt.Errorf("APNs certificate: %w", err)
		}
		cl, err := apns.New(apns.Config{Certificate: cert, Topic: c.APNsTopic, URL: c.APNsURL, Proxy: proxy})
		if err != nil {
			return nil, fmt.Errorf("APNs: %w", err)
		}
		senders[push.APNs] = cl
	}
	if c.FCMCredentials != "" {
		b, err := os.ReadFile(c.FCMCredentials)
		if err != nil {
			return nil, fmt.Errorf("FCM credentials: %w", err)
		}
		fc := fcm.Config{ServiceAccountJSON: b}
		if proxy != nil {
			fc.HTTPClient = client(proxy)
		}
		cl, err := fcm.New(fc)
		if err != nil {
			return nil, fmt.Errorf("FCM: %w", err)
		}
		senders[push.FCM] = cl
	}
	if c.WNSPackageSID != "" || c.WNSClientSecret != "" {
		if c.WNSPackageSID == "" || c.WNSClientSecret == "" {
			return nil, errors.New("WNS needs both the package SID and the client secret")
		}
		wc := wns.Config{PackageSID: c.WNSPackageSID, ClientSecret: c.WNSClientSecret}
		if proxy != nil {
			// Through a proxy the proxy resolves and dials the channel
			// URI's host: wns still checks that the host is one of
			// *.notify.windows.com, and the refusal of private
			// addresses at dial time becomes the proxy's rule.
			wc.HTTPClient = client(proxy)
		}
		cl, err := wns.New(wc)
		if err != nil {
			return nil, fmt.Errorf("WNS: %w", err)
		}
		senders[push.WNS] = cl
	}
	return senders, nil
}
