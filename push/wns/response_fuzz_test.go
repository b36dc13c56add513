package wns

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
)

// FuzzParseResponse: any status and headers parse without panic; the
// provider's free-text description is kept short and printable.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "", "")
	f.Add(410, "", "The channel expired.")
	f.Add(406, "7", "throttled")
	f.Add(503, "Fri, 31 Dec 9999 23:59:59 GMT", "\x00\r\nX-Evil: 1")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter, desc string) {
		h := http.Header{"Retry-After": {retryAfter}, "X-Wns-Error-Description": {desc}}
		err := parseResponse(status, h, now, push.MaxRetryAfter)
		if status == 200 {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		var pe *push.ProviderError
		if !errors.As(err, &pe) {
			t.Fatalf("status %d: %v", status, err)
		}
		if pe.RetryAfter < 0 || pe.RetryAfter > push.MaxRetryAfter {
			t.Fatalf("%+v", pe)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\r\n\x00") {
			t.Fatalf("control characters in %q", msg)
		}
	})
}

// FuzzCheckChannelURI: whatever a device sends, an accepted URI is https on
// a WNS host.
func FuzzCheckChannelURI(f *testing.F) {
	for _, s := range []string{"https://db5p.notify.windows.com/?token=a", "https://127.0.0.1/", "https://a.notify.windows.com@evil/", "https://evil%2enotify.windows.com/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := CheckChannelURI(s, nil)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.User != nil || !strings.HasSuffix(strings.ToLower(u.Hostname()), HostSuffix) {
			t.Fatalf("accepted %q", s)
		}
	})
}
