package router

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, bad := range []string{"example.com", "*.example.com", "example.com:http", "a.*.example.com:80", ":80", "10.0.0.0/33"} {
		t.Run("fail/"+bad, func(t *testing.T) {
			if _, err := ParsePolicy([]string{bad}); err == nil {
				t.Fatalf("ParsePolicy(%q) accepted it", bad)
			}
		})
	}
	t.Run("ok/every form", func(t *testing.T) {
		if _, err := ParsePolicy([]string{"127.0.0.0/8", "::1", "relay.example.com:3101", "*.corp.example:*", "[::1]:8443", " "}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPolicyCheck(t *testing.T) {
	allow, err := ParsePolicy([]string{"127.0.0.2/32", "relay.corp.example:3101", "*.lab.example:*", "127.0.0.3:8443", "169.254.10.10"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		p         Policy
		host      string // the name the client asked for
		dest      string
		wantClass string // "" means allowed
	}{
		{name: "fail/loopback", dest: "127.0.0.1:80", wantClass: "loopback"},
		{name: "fail/loopback anywhere in 127/8", dest: "127.9.9.9:80", wantClass: "loopback"},
		{name: "fail/IPv6 loopback", dest: "[::1]:80", wantClass: "loopback"},
		{name: "fail/IPv4-mapped loopback", dest: "[::ffff:127.0.0.1]:80", wantClass: "loopback"},
		{name: "fail/name resolving to loopback", host: "localhost", dest: "127.0.0.1:80", wantClass: "loopback"},
		{name: "fail/metadata service", dest: "169.254.169.254:80", wantClass: "link-local"},
		{name: "fail/IPv6 link-local", dest: "[fe80::1]:80", wantClass: "link-local"},
		{name: "fail/AWS IPv6 metadata", dest: "[fd00:ec2::254]:80", wantClass: "cloud metadata"},
		{name: "fail/unspecified", dest: "0.0.0.0:80", wantClass: "unspecified"},
		{name: "fail/this network", dest: "0.1.2.3:80", wantClass: "unspecified"},
		{name: "fail/IPv6 unspecified", dest: "[::]:80", wantClass: "unspecified"},
		{name: "fail/multicast", dest: "224.0.0.1:80", wantClass: "multicast"},
		{name: "fail/IPv6 multicast", dest: "[ff02::1]:80", wantClass: "multicast"},
		{name: "fail/broadcast", dest: "255.255.255.255:80", wantClass: "broadcast"},
		{name: "fail/allowed name, other port", p: allow, host: "relay.corp.example", dest: "127.0.0.1:22", wantClass: "loopback"},
		{name: "fail/wildcard does not match the bare suffix", p: allow, host: "lab.example", dest: "127.0.0.1:80", wantClass: "loopback"},
		{name: "fail/allowed IP:port, other port", p: allow, dest: "127.0.0.3:8444", wantClass: "loopback"},
		{name: "fail/allowed name is not the IP's name", p: allow, dest: "127.0.0.1:3101", wantClass: "loopback"},
		{name: "ok/public", dest: "192.0.2.1:443"},
		{name: "ok/RFC 1918 10/8", dest: "10.1.2.3:3101"},
		{name: "ok/RFC 1918 172.16/12", dest: "172.16.0.1:3101"},
		{name: "ok/RFC 1918 192.168/16", dest: "192.168.1.1:3101"},
		{name: "ok/IPv6 unique local", dest: "[fd12:3456::1]:3101"},
		{name: "ok/allowed CIDR", p: allow, dest: "127.0.0.2:80"},
		{name: "ok/allowed bare IP", p: allow, dest: "169.254.10.10:80"},
		{name: "ok/allowed name and port", p: allow, host: "Relay.Corp.Example.", dest: "127.0.0.1:3101"},
		{name: "ok/allowed wildcard", p: allow, host: "a.b.lab.example", dest: "[::1]:9"},
		{name: "ok/allowed IP:port", p: allow, dest: "127.0.0.3:8443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.host, netip.MustParseAddrPort(tt.dest))
			var denied *DeniedError
			switch {
			case tt.wantClass == "" && err != nil:
				t.Fatalf("Check(%q, %s) = %v, want allowed", tt.host, tt.dest, err)
			case tt.wantClass != "" && (!errors.As(err, &denied) || denied.Class != tt.wantClass):
				t.Fatalf("Check(%q, %s) = %v, want refused as %s", tt.host, tt.dest, err, tt.wantClass)
			}
		})
	}
}
