// Package providers builds the push senders of package push from their
// credentials, for every role that sends pushes: the Core when it holds
// its own credentials, and the relay that sends on behalf of Cores.
package providers

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

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
}

// Senders builds a client per configured provider, keyed by push.APNs,
// push.FCM and push.WNS; the map is empty when none is configured.
func (c Config) Senders() (map[string]push.Sender, error) {
	senders := map[string]push.Sender{}
	if c.APNsCert != "" || c.APNsKey != "" {
		cert, err := tls.LoadX509KeyPair(c.APNsCert, c.APNsKey)
		if err != nil {
			return nil, fmt.Errorf("APNs certificate: %w", err)
		}
		cl, err := apns.New(apns.Config{Certificate: cert, Topic: c.APNsTopic, URL: c.APNsURL})
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
		cl, err := fcm.New(fcm.Config{ServiceAccountJSON: b})
		if err != nil {
			return nil, fmt.Errorf("FCM: %w", err)
		}
		senders[push.FCM] = cl
	}
	if c.WNSPackageSID != "" || c.WNSClientSecret != "" {
		if c.WNSPackageSID == "" || c.WNSClientSecret == "" {
			return nil, errors.New("WNS needs both the package SID and the client secret")
		}
		cl, err := wns.New(wns.Config{PackageSID: c.WNSPackageSID, ClientSecret: c.WNSClientSecret})
		if err != nil {
			return nil, fmt.Errorf("WNS: %w", err)
		}
		senders[push.WNS] = cl
	}
	return senders, nil
}
