package core_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-uem/custos/core"
)

// TestPushCredentialsRefusedAtStart: credentials that cannot work stop the
// Core at start with a message naming them, instead of failing every push
// later where only the logs would tell.
func TestPushCredentialsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name string
		push core.PushConfig
		want string
	}{
		{"fail/apns-cert-missing", core.PushConfig{APNsCert: filepath.Join(dir, "none.pem"), APNsKey: filepath.Join(dir, "none.key")}, "APNs certificate"},
		{"fail/apns-cert-garbage", core.PushConfig{APNsCert: garbage, APNsKey: garbage}, "APNs certificate"},
		{"fail/fcm-credentials-garbage", core.PushConfig{FCMCredentials: garbage}, "FCM"},
		{"fail/wns-secret-without-sid", core.PushConfig{WNSClientSecret: "s3cret"}, "WNS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := core.NewMain(core.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Push: tc.push,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			err := m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}
