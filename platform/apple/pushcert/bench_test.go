package pushcert_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns/apnstest"
)

// BenchmarkParseP12 is the validation of a PKCS#12 upload (PBKDF with
// 2048 iterations, RSA-2048 key).
func BenchmarkParseP12(b *testing.B) {
	p12, err := os.ReadFile("testdata/push.p12")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		if _, err := pushcert.Parse(pushcert.Upload{P12: p12, Password: "correct-horse"}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMDMPush is one MDM push through the uploaded certificate's
// client to the fake APNs over loopback (HTTP/2, connections reused).
func BenchmarkMDMPush(b *testing.B) {
	fake := apnstest.NewServer(b, apnstest.Options{Discard: true})
	s, _ := newService(b, fake)
	certPEM, keyPEM := pemPair(b, fake.ClientCertificate(b, topicA))
	ctx := context.Background()
	if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		b.Fatal(err)
	}
	sender := s.Sender(nil)
	t := push.Target{Provider: push.APNs, Token: token, PushMagic: "magic"}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := sender.Send(ctx, t); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
