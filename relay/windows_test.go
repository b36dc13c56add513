package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/relay"
)

func routesOf(url, policy string, addrs ...string) coreOpt {
	return func(c *relay.ClientConfig) {
		c.Routes = func(context.Context) (*relay.RoutesRequest, error) {
			return &relay.RoutesRequest{Addresses: addrs, PublicURL: url, WindowsAuthPolicy: policy}, nil
		}
	}
}

// TestWindowsDiscovery: the relay answers Windows discovery for the Cores
// it links, with the URL each announced, and one fault for every address
// it cannot send anywhere.
func TestWindowsDiscovery(t *testing.T) {
	e := newRelay(t, nil)
	ctx := context.Background()
	onPrem := e.mustCore(nil, routesOf("https://mdm.example.com:8443/", "", "alice@example.com"))
	fed := e.mustCore(nil, routesOf("https://fed.example.com", mde.AuthFederated, "fred@example.org"))
	bad := e.mustCore(nil, routesOf("http://plain.example.com", "", "bob@example.net"))
	gone := e.mustCore(nil, routesOf("https://gone.example.com", "", "gina@example.com"))
	for _, c := range []*core{onPrem, fed, gone} {
		mustLinked(t, c.c, 1)
		if err := c.c.SyncRoutes(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mustLinked(t, bad.c, 1)
	if err := bad.c.SyncRoutes(ctx); err == nil || !strings.Contains(err.Error(), "invalid_public_url") {
		t.Fatalf("an http public URL: SyncRoutes = %v, want invalid_public_url", err)
	}
	srv, err := e.m.DB.Server(ctx, gone.id)
	if err != nil {
		t.Fatal(err)
	}
	srv.Disabled = true
	if err := e.m.DB.UpdateServer(ctx, srv); err != nil {
		t.Fatal(err)
	}
	base := "http://" + e.m.DeviceAddr()
	hc := http.DefaultClient

	_, unknown := wintest.Discover(ctx, hc, base, "nobody@example.com")
	var want *mde.Fault
	if !errors.As(unknown, &want) || want.Subcode != mde.SubcodeEnrollServer {
		t.Fatalf("unknown address: %v", unknown)
	}
	for _, tc := range []struct{ name, email string }{
		{"fail/unknown-domain", "x@nowhere.example"},
		{"fail/not-an-address", "alice"},
		{"fail/overlong", strings.Repeat("a", 300) + "@example.com"},
		{"fail/core-announced-no-valid-url", "bob@example.net"},
		{"fail/disabled-server", "gina@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wintest.Discover(ctx, hc, base, tc.email)
			var f *mde.Fault
			if !errors.As(err, &f) || f.Subcode != want.Subcode || f.Reason != want.Reason || f.Detail.ErrorType != want.Detail.ErrorType {
				t.Fatalf("%v, want the unknown address's fault %v", err, want)
			}
		})
	}
	t.Run("fail/doctype", func(t *testing.T) {
		resp, err := hc.Post(base+mde.PathDiscovery, mde.ContentType, strings.NewReader(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !bytes.Contains(b, []byte(mde.SubcodeMessageFormat)) {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("ok/on-premise", func(t *testing.T) {
		res, err := wintest.Discover(ctx, hc, base, "Alice@Example.com")
		if err != nil {
			t.Fatal(err)
		}
		want := mde.DiscoverResult{AuthPolicy: mde.AuthOnPremise, EnrollmentVersion: mde.EnrollmentVersion,
			EnrollmentPolicyServiceURL: "https://mdm.example.com:8443/device/windows/policy",
			EnrollmentServiceURL:       "https://mdm.example.com:8443/device/windows/enroll"}
		if *res != want {
			t.Fatalf("%+v, want %+v", *res, want)
		}
	})
	t.Run("ok/federated", func(t *testing.T) {
		res, err := wintest.Discover(ctx, hc, base, "fred@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if res.AuthPolicy != mde.AuthFederated || res.AuthenticationServiceURL != "https://fed.example.com/device/windows/auth" {
			t.Fatalf("%+v", *res)
		}
	})
}
