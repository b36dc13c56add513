package providers

import (
	"strings"
	"testing"
)

func TestProxy(t *testing.T) {
	for _, tc := range []struct {
		name, proxy, wantErr string
	}{
		{"fail/scheme", "ftp://proxy:21", "want socks5://host:port or http://host:port"},
		{"fail/no-host", "socks5://", "want socks5://"},
		{"fail/not-a-url", "http://[::1", "want socks5://"},
		{"ok/direct", "", ""},
		{"ok/socks5", "socks5://127.0.0.1:1080", ""},
		{"ok/http-connect", "http://proxy.example.com:3128", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Config{Proxy: tc.proxy}.Senders()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Senders with proxy %q: %v, want %q", tc.proxy, err, tc.wantErr)
			}
		})
	}
}
