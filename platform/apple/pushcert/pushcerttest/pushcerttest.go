// Package pushcerttest is the conformance suite of pushcert.Store: every
// implementation runs Run (sqlstore against SQLite and PostgreSQL).
package pushcerttest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/pushcert"
)

// Run checks the contract of pushcert.Store on fresh stores from open.
func Run(t *testing.T, open func(*testing.T) pushcert.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	cert := func(topic, serial string) *pushcert.Stored {
		return &pushcert.Stored{Topic: topic, CertPEM: []byte("-----BEGIN CERTIFICATE-----\n" + serial + "\n-----END CERTIFICATE-----\n"),
			KeySealed: "sealed:v1:" + serial, Serial: serial, Subject: "UID=" + topic, NotBefore: at.Add(-time.Hour),
			NotAfter: at.Add(365 * 24 * time.Hour), UploadedAt: at, UploadedBy: "admin"}
	}
	t.Run("fail/none-uploaded-is-not-found", func(t *testing.T) {
		s := open(t)
		if _, err := s.PushCertificate(ctx); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("PushCertificate on an empty store: %v, want ErrNotFound", err)
		}
	})
	t.Run("ok/put-then-read-round-trips", func(t *testing.T) {
		s := open(t)
		want := cert("com.apple.mgmt.External.a", "01")
		if err := s.PutPushCertificate(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.PushCertificate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != want.Topic || !bytes.Equal(got.CertPEM, want.CertPEM) || got.KeySealed != want.KeySealed ||
			got.Serial != want.Serial || got.Subject != want.Subject || !got.NotBefore.Equal(want.NotBefore) ||
			!got.NotAfter.Equal(want.NotAfter) || !got.UploadedAt.Equal(want.UploadedAt) || got.UploadedBy != want.UploadedBy {
			t.Fatalf("read %+v, want %+v", got, want)
		}
	})
	t.Run("ok/put-replaces-the-one-certificate", func(t *testing.T) {
		s := open(t)
		for _, c := range []*pushcert.Stored{cert("com.apple.mgmt.External.a", "01"), cert("com.apple.mgmt.External.b", "02")} {
			if err := s.PutPushCertificate(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.PushCertificate(ctx)
		if err != nil || got.Serial != "02" || got.Topic != "com.apple.mgmt.External.b" {
			t.Fatalf("after a replacement: %+v, %v", got, err)
		}
	})
}
