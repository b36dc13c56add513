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
	"github.com/custos-uem/custos/push/providers"
	"github.com/custos-uem/custos/secret"
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
		push providers.Config
		want string
	}{
		{"fail/apns-cert-missing", providers.Config{APNsCert: filepath.Join(dir, "none.pem"), APNsKey: filepath.Join(dir, "none.key")}, "APNs certificate"},
		{"fail/apns-cert-garbage", providers.Config{APNsCert: garbage, APNsKey: garbage}, "APNs certificate"},
		{"fail/fcm-credentials-garbage", providers.Config{FCMCredentials: garbage}, "FCM"},
		{"fail/wns-secret-without-sid", providers.Config{WNSClientSecret: "s3cret"}, "WNS"},
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

// TestSecretsSealedInTheDatabase: the Core seals a profile's secret before
// storing it, and no API read shows it.
func TestSecretsSealedInTheDatabase(t *testing.T) {
	e := newEnv(t, "sqlite")
	var pol struct {
		ID       string         `json:"id"`
		Settings map[string]any `json:"settings"`
	}
	body := map[string]any{"name": "office", "kind": "wifi", "rank": 1,
		"settings": map[string]any{"ssid": "office", "security": "wpa2_personal", "passphrase": "hunter2hunter2"}}
	if st := e.api("POST", "/api/v1/policies", body, &pol); st != 201 || pol.Settings["passphrase"] != "***" {
		t.Fatalf("create: %d %+v", st, pol)
	}
	stored, err := e.m.DB.Policy(context.Background(), pol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.Settings), "hunter2") || !strings.Contains(string(stored.Settings), secret.Prefix) {
		t.Fatalf("stored settings %s, want the passphrase sealed", stored.Settings)
	}
}
