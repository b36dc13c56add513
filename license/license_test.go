package license_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/license"
)

// t0 is the tests' clock: whole seconds in UTC, as licences keep times.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// prefix is the documented domain-separation prefix, repeated here so a
// change of the signed message breaks a test, not only old licences.
const prefix = "custos-license-v1\x00"

// MustKey returns a deterministic issuer key: distinct seeds give distinct
// keys, so "another key" is reproducible.
func MustKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// sample is a valid licence issued at t0 for a year.
func sample() license.License {
	return license.License{
		ID: "0123456789abcdef", Organisation: "Example <Org> & Co", ServerID: "core-1", DeviceLimit: 10,
		IssuedAt: t0, Expires: t0.AddDate(1, 0, 0), Features: []string{"relay", "tunnel"},
	}
}

// MustIssue issues l with key.
func MustIssue(t testing.TB, key ed25519.PrivateKey, l license.License) []byte {
	t.Helper()
	doc, err := (&license.Issuer{Key: key, Now: func() time.Time { return t0 }}).Issue(l)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return doc
}

// MustSignJSON signs payload as an issuer would, without checking it, so
// tests can make documents that are well signed but wrong inside.
func MustSignJSON(t testing.TB, key ed25519.PrivateKey, payload []byte) []byte {
	t.Helper()
	sig := ed25519.Sign(key, append([]byte(prefix), payload...))
	return pem.EncodeToMemory(&pem.Block{Type: license.PEMType, Bytes: append(append([]byte{}, payload...), sig...)})
}

// MustSign signs l's JSON as it is (KeyID set to key's unless set).
func MustSign(t testing.TB, key ed25519.PrivateKey, l license.License) []byte {
	t.Helper()
	if l.KeyID == "" {
		l.KeyID = license.KeyID(pub(key))
	}
	payload, err := json.Marshal(&l)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return MustSignJSON(t, key, payload)
}

// MustBlock returns the bytes of doc's PEM block.
func MustBlock(t testing.TB, doc []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(doc)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes
}

// MustPayload returns the payload of an issued document.
func MustPayload(t testing.TB, doc []byte) []byte {
	t.Helper()
	raw := MustBlock(t, doc)
	return raw[:len(raw)-ed25519.SignatureSize]
}

func reencode(raw []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: license.PEMType, Bytes: raw})
}

func code(err error) string {
	if err == nil {
		return ""
	}
	c, _, _ := errs.Public(err)
	return c
}

func fields(err error) map[string]string {
	_, _, f := errs.Public(err)
	return f
}

func TestVerify(t *testing.T) {
	key, other := MustKey(t, 1), MustKey(t, 2)
	trusted := []ed25519.PublicKey{pub(key)}
	good := MustIssue(t, key, sample())
	payload := MustPayload(t, good)
	// resign replaces a field's JSON text and signs the result properly,
	// so only the edit can be what Verify refuses.
	resign := func(old, new string) []byte {
		t.Helper()
		if !bytes.Contains(payload, []byte(old)) {
			t.Fatalf("payload has no %s", old)
		}
		return MustSignJSON(t, key, bytes.Replace(payload, []byte(old), []byte(new), 1))
	}
	with := func(edit func(l *license.License)) []byte {
		l := sample()
		l.KeyID = license.KeyID(pub(key))
		edit(&l)
		return MustSign(t, key, l)
	}
	claimed := sample()
	claimed.KeyID = license.KeyID(pub(key))
	tests := []struct {
		name      string
		doc       []byte
		keys      []ed25519.PublicKey
		wantCode  string
		wantField string
	}{
		{name: "fail/empty input", doc: nil, wantCode: "license_not_pem"},
		{name: "fail/oversized input", doc: append(append([]byte{}, good...), bytes.Repeat([]byte("\n"), license.MaxLicenseSize)...), wantCode: "license_too_large"},
		{name: "fail/text before the block", doc: append([]byte("licence:\n"), good...), wantCode: "license_not_pem"},
		{name: "fail/wrong PEM type", doc: bytes.Replace(good, []byte("CUSTOS LICENSE"), []byte("CUSTOS LICENCE"), 2), wantCode: "license_not_pem"},
		{name: "fail/PEM headers", doc: pem.EncodeToMemory(&pem.Block{Type: license.PEMType, Headers: map[string]string{"Device-Limit": "100000"}, Bytes: MustBlock(t, good)}), wantCode: "license_not_pem"},
		{name: "fail/trailing bytes after the PEM block", doc: append(append([]byte{}, good...), "x"...), wantCode: "license_trailing_data"},
		{name: "fail/second PEM block", doc: append(append([]byte{}, good...), good...), wantCode: "license_trailing_data"},
		{name: "fail/payload not an object", doc: reencode(append([]byte(`[1]`), make([]byte, 64)...)), wantCode: "license_malformed"},
		{name: "fail/truncated JSON", doc: reencode(payload[:len(payload)-1]), wantCode: "license_malformed"},
		{name: "fail/truncated signature", doc: reencode(MustBlock(t, good)[:len(MustBlock(t, good))-1]), wantCode: "license_signature_size"},
		{name: "fail/no signature", doc: reencode(payload), wantCode: "license_signature_size"},
		{name: "fail/byte after signature", doc: reencode(append(MustBlock(t, good), 0)), wantCode: "license_signature_size"},
		{name: "fail/unknown JSON field", doc: resign(`"id":`, `"seats":5,"id":`), wantCode: "license_unknown_field", wantField: "seats"},
		{name: "fail/field in another case", doc: resign(`"id":`, `"ID":`), wantCode: "license_unknown_field", wantField: "ID"},
		{name: "fail/missing field", doc: resign(`"grace":"0s",`, ``), wantCode: "license_field_missing", wantField: "grace"},
		{name: "fail/wrong field type", doc: resign(`"device_limit":10`, `"device_limit":"10"`), wantCode: "license_malformed", wantField: "device_limit"},
		{name: "fail/duplicate key", doc: resign(`"device_limit":10`, `"device_limit":10,"device_limit":100000`), wantCode: "license_not_canonical"},
		{name: "fail/whitespace in JSON", doc: resign(`"device_limit":10`, `"device_limit": 10`), wantCode: "license_not_canonical"},
		{name: "fail/time with numeric UTC offset", doc: resign(`"issued_at":"2031-03-04T05:06:07Z"`, `"issued_at":"2031-03-04T05:06:07+00:00"`), wantCode: "license_not_canonical"},
		{name: "fail/duration in short form", doc: resign(`"grace":"0s"`, `"grace":"0"`), wantCode: "license_not_canonical"},
		{name: "fail/unescaped HTML", doc: resign(`\u003cOrg\u003e`, `<Org>`), wantCode: "license_not_canonical"},
		{name: "fail/signed by another key", doc: MustIssue(t, other, sample()), wantCode: "license_unknown_key"},
		{name: "fail/no trusted keys", doc: good, keys: []ed25519.PublicKey{}, wantCode: "license_unknown_key"},
		{name: "fail/trusted key of the wrong size", doc: good, keys: []ed25519.PublicKey{pub(key)[:31]}, wantCode: "license_unknown_key"},
		// The key ID only picks the key; the signature must still verify
		// under it.
		{name: "fail/another key claiming the trusted key ID", doc: MustSign(t, other, claimed), wantCode: "license_bad_signature"},
		{name: "fail/payload edited after signing", doc: reencode(append(bytes.Replace(payload, []byte(`"device_limit":10`), []byte(`"device_limit":99`), 1), MustBlock(t, good)[len(payload):]...)), wantCode: "license_bad_signature"},
		{name: "fail/signature bit flipped", doc: reencode(func() []byte { b := MustBlock(t, good); b[len(b)-1] ^= 1; return b }()), wantCode: "license_bad_signature"},
		{name: "fail/signed without the domain prefix", doc: reencode(append(append([]byte{}, payload...), ed25519.Sign(key, payload)...)), wantCode: "license_bad_signature"},
		{name: "fail/duplicate features", doc: with(func(l *license.License) { l.Features = []string{"relay", "relay"} }), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/unsorted features", doc: with(func(l *license.License) { l.Features = []string{"tunnel", "relay"} }), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/feature with capitals", doc: with(func(l *license.License) { l.Features = []string{"Relay"} }), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/feature too long", doc: with(func(l *license.License) { l.Features = []string{strings.Repeat("a", 33)} }), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/too many features", doc: with(func(l *license.License) {
			l.Features = nil
			for i := range 65 {
				l.Features = append(l.Features, "f"+string(rune('a'+i/26))+string(rune('a'+i%26)))
			}
		}), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/features null", doc: with(func(l *license.License) { l.Features = nil }), wantCode: "license_invalid", wantField: "features"},
		{name: "fail/wildcard server", doc: with(func(l *license.License) { l.ServerID = "*" }), wantCode: "license_invalid", wantField: "server_id"},
		{name: "fail/empty server", doc: with(func(l *license.License) { l.ServerID = "" }), wantCode: "license_invalid", wantField: "server_id"},
		{name: "fail/zero device limit", doc: with(func(l *license.License) { l.DeviceLimit = 0 }), wantCode: "license_invalid", wantField: "device_limit"},
		{name: "fail/negative device limit", doc: with(func(l *license.License) { l.DeviceLimit = -1 }), wantCode: "license_invalid", wantField: "device_limit"},
		{name: "fail/empty ID", doc: with(func(l *license.License) { l.ID = "" }), wantCode: "license_invalid", wantField: "id"},
		{name: "fail/organisation with a newline", doc: with(func(l *license.License) { l.Organisation = "Example\nValid until 2099" }), wantCode: "license_invalid", wantField: "organisation"},
		{name: "fail/expires before issued", doc: with(func(l *license.License) { l.Expires = l.IssuedAt.Add(-time.Second) }), wantCode: "license_invalid", wantField: "expires"},
		{name: "fail/issued at zero", doc: with(func(l *license.License) { l.IssuedAt = time.Time{} }), wantCode: "license_invalid", wantField: "issued_at"},
		{name: "fail/time not in UTC", doc: with(func(l *license.License) { l.IssuedAt = l.IssuedAt.In(time.FixedZone("", 7200)) }), wantCode: "license_invalid", wantField: "issued_at"},
		{name: "fail/fraction of a second", doc: with(func(l *license.License) { l.Expires = l.Expires.Add(time.Millisecond) }), wantCode: "license_invalid", wantField: "expires"},
		{name: "fail/negative grace", doc: with(func(l *license.License) { l.Grace = license.Duration(-time.Hour) }), wantCode: "license_invalid", wantField: "grace"},
		{name: "fail/grace over the maximum", doc: with(func(l *license.License) { l.Grace = license.Duration(license.MaxGrace + time.Second) }), wantCode: "license_invalid", wantField: "grace"},
		{name: "ok/issued licence", doc: good},
		{name: "ok/second of two trusted keys", doc: MustIssue(t, other, sample()), keys: []ed25519.PublicKey{pub(key), pub(other)}},
		{name: "ok/surrounding whitespace", doc: append(append([]byte("\r\n\n"), good...), "\r\n\n"...)},
		{name: "ok/grace at the maximum", doc: with(func(l *license.License) { l.Grace = license.Duration(license.MaxGrace) })},
		{name: "ok/no features", doc: with(func(l *license.License) { l.Features = []string{} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys == nil {
				keys = trusted
			}
			got, err := license.Verify(tc.doc, keys)
			if code(err) != tc.wantCode {
				t.Fatalf("Verify: %v; want code %q", err, tc.wantCode)
			}
			if tc.wantField != "" {
				if _, ok := fields(err)[tc.wantField]; !ok {
					t.Fatalf("Verify: fields %v; want one for %q", fields(err), tc.wantField)
				}
			}
			if tc.wantCode == "" && got == nil {
				t.Fatal("Verify returned no licence and no error")
			}
		})
	}
}

func TestVerifyReturnsTheIssuedFields(t *testing.T) {
	key := MustKey(t, 1)
	in := sample()
	in.Grace = license.Duration(72 * time.Hour)
	got, err := license.Verify(MustIssue(t, key, in), []ed25519.PublicKey{pub(key)})
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.KeyID = license.KeyID(pub(key))
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("Verify = %+v\nwant     %+v", *got, want)
	}
	if err := got.CheckServer("core-1"); err != nil {
		t.Fatalf("CheckServer(own server): %v", err)
	}
	if err := got.CheckServer("core-2"); code(err) != "license_wrong_server" {
		t.Fatalf("CheckServer(another server): %v; want license_wrong_server", err)
	}
}

// TestPayloadFormat pins the documented wire format: canonical JSON with
// every field, then 64 bytes of signature over the prefixed payload.
func TestPayloadFormat(t *testing.T) {
	key := MustKey(t, 1)
	doc := MustIssue(t, key, sample())
	payload := MustPayload(t, doc)
	want := `{"id":"0123456789abcdef","organisation":"Example \u003cOrg\u003e \u0026 Co","server_id":"core-1","device_limit":10,` +
		`"issued_at":"2031-03-04T05:06:07Z","expires":"2032-03-04T05:06:07Z","grace":"0s","features":["relay","tunnel"],` +
		`"development":false,"key_id":"` + license.KeyID(pub(key)) + `"}`
	if string(payload) != want {
		t.Fatalf("payload\n%s\nwant\n%s", payload, want)
	}
	sig := MustBlock(t, doc)[len(payload):]
	if !ed25519.Verify(pub(key), append([]byte(prefix), payload...), sig) {
		t.Fatal("the signature does not verify over prefix || payload")
	}
	s, err := license.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Payload, payload) || !bytes.Equal(s.Signature, sig) {
		t.Fatal("Parse split payload and signature elsewhere")
	}
}

func TestIssue(t *testing.T) {
	key := MustKey(t, 1)
	keyID := license.KeyID(pub(key))
	tests := []struct {
		name      string
		key       ed25519.PrivateKey
		edit      func(l *license.License)
		wantErr   bool
		wantField string
		check     func(t *testing.T, in, got license.License)
	}{
		{name: "fail/short key", key: key[:32], wantErr: true},
		{name: "fail/duplicate features", edit: func(l *license.License) { l.Features = []string{"relay", "relay"} }, wantErr: true, wantField: "features"},
		{name: "fail/wildcard server", edit: func(l *license.License) { l.ServerID = "*" }, wantErr: true, wantField: "server_id"},
		{name: "fail/zero device limit", edit: func(l *license.License) { l.DeviceLimit = 0 }, wantErr: true, wantField: "device_limit"},
		{name: "fail/no expiry", edit: func(l *license.License) { l.Expires = time.Time{} }, wantErr: true, wantField: "expires"},
		{name: "ok/fills ID, issue time and key ID", edit: func(l *license.License) {
			l.ID, l.IssuedAt, l.KeyID = "", time.Time{}, "forged"
		}, check: func(t *testing.T, in, got license.License) {
			if len(got.ID) != 32 || !got.IssuedAt.Equal(t0) || got.KeyID != keyID {
				t.Fatalf("ID %q, IssuedAt %v, KeyID %q; want 32 hex, %v, %q", got.ID, got.IssuedAt, got.KeyID, t0, keyID)
			}
		}},
		{name: "ok/keeps ID and issue time of a re-issue", check: func(t *testing.T, in, got license.License) {
			if got.ID != in.ID || !got.IssuedAt.Equal(in.IssuedAt) {
				t.Fatalf("ID %q, IssuedAt %v; want %q, %v", got.ID, got.IssuedAt, in.ID, in.IssuedAt)
			}
		}},
		{name: "ok/normalises times and sorts a copy of the features", edit: func(l *license.License) {
			l.Expires = l.Expires.In(time.FixedZone("CEST", 7200)).Add(time.Millisecond)
			l.Features = []string{"tunnel", "relay"}
		}, check: func(t *testing.T, in, got license.License) {
			if got.Expires.Location() != time.UTC || !got.Expires.Equal(t0.AddDate(1, 0, 0)) {
				t.Fatalf("Expires %v; want %v", got.Expires, t0.AddDate(1, 0, 0))
			}
			if !reflect.DeepEqual(got.Features, []string{"relay", "tunnel"}) || in.Features[0] != "tunnel" {
				t.Fatalf("features %v, caller's %v; want sorted, caller's untouched", got.Features, in.Features)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := sample()
			if tc.edit != nil {
				tc.edit(&in)
			}
			k := tc.key
			if k == nil {
				k = key
			}
			doc, err := (&license.Issuer{Key: k, Now: func() time.Time { return t0.Add(300 * time.Millisecond) }}).Issue(in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Issue: %v; want error %v", err, tc.wantErr)
			}
			if tc.wantField != "" {
				if _, ok := fields(err)[tc.wantField]; !ok || code(err) != "license_invalid" {
					t.Fatalf("Issue: %v %v; want license_invalid for %q", err, fields(err), tc.wantField)
				}
			}
			if err != nil {
				return
			}
			got, err := license.Verify(doc, []ed25519.PublicKey{pub(key)})
			if err != nil {
				t.Fatalf("Verify of an issued licence: %v", err)
			}
			if tc.check != nil {
				tc.check(t, in, *got)
			}
		})
	}
}

func TestDevelopment(t *testing.T) {
	key := MustKey(t, 1)
	now := t0.Add(1500 * time.Millisecond)
	doc, err := license.Development("core-dev", &license.Issuer{Key: key}, now)
	if err != nil {
		t.Fatal(err)
	}
	l, err := license.Verify(doc, []ed25519.PublicKey{pub(key)})
	if err != nil {
		t.Fatal(err)
	}
	issued := now.Truncate(time.Second)
	if l.Organisation != license.DevelopmentOrganisation || l.ServerID != "core-dev" || l.DeviceLimit != 100_000 ||
		!l.Development || !reflect.DeepEqual(l.Features, []string{"all"}) || !l.IssuedAt.Equal(issued) ||
		!l.Expires.Equal(issued.Add(365*24*time.Hour)) {
		t.Fatalf("development licence %+v", l)
	}
	// The benchmarks' fleet of 100,000 fits: the last one is admitted.
	if err := license.Check(l, now, 99_999); err != nil {
		t.Fatalf("Check(99,999 active): %v", err)
	}
	if _, err := license.Development("*", &license.Issuer{Key: key}, now); code(err) != "license_invalid" {
		t.Fatalf("Development(\"*\"): %v; want license_invalid", err)
	}
}

func TestState(t *testing.T) {
	base := sample() // expires t0+1y, default grace 14 days
	exp := base.Expires
	withGrace := sample()
	withGrace.Grace = license.Duration(time.Hour)
	tests := []struct {
		name string
		l    license.License
		now  time.Time
		want license.State
	}{
		{"not yet valid/just past the skew", base, t0.Add(-license.ClockSkew - time.Nanosecond), license.NotYetValid},
		{"valid/at the skew", base, t0.Add(-license.ClockSkew), license.Valid},
		{"valid/at issue", base, t0, license.Valid},
		{"valid/just before the warning window", base, exp.Add(-license.ExpiringSoonWindow - time.Nanosecond), license.Valid},
		{"expiring soon/window opens", base, exp.Add(-license.ExpiringSoonWindow), license.ExpiringSoon},
		{"expiring soon/last instant", base, exp.Add(-time.Nanosecond), license.ExpiringSoon},
		{"grace/at expiry", base, exp, license.Grace},
		{"grace/last instant of the default 14 days", base, exp.Add(14*24*time.Hour - time.Nanosecond), license.Grace},
		{"expired/end of the default grace", base, exp.Add(14 * 24 * time.Hour), license.Expired},
		{"grace/last instant of one hour", withGrace, exp.Add(time.Hour - time.Nanosecond), license.Grace},
		{"expired/end of one hour", withGrace, exp.Add(time.Hour), license.Expired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.State(tc.now); got != tc.want {
				t.Fatalf("State(%v) = %s; want %s", tc.now, got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	l := sample() // 10 devices, expires 2032-03-04
	exp := l.Expires
	tests := []struct {
		name    string
		l       *license.License
		now     time.Time
		active  int
		want    string
		wantMsg string
	}{
		{"fail/no licence", nil, t0, 0, "license_missing", ""},
		{"fail/at the limit", &l, t0, 10, "license_device_limit", "the licence allows 10 devices and 10 are active; remove devices or extend the licence"},
		{"fail/over the limit", &l, t0, 11, "license_device_limit", "the licence allows 10 devices and 11 are active; remove devices or extend the licence"},
		{"fail/expired", &l, exp.Add(license.DefaultGrace), 0, "license_expired", "the licence expired on 2032-03-04; existing devices stay managed, new activations are refused until it is renewed"},
		{"fail/not yet valid", &l, t0.Add(-time.Hour), 0, "license_not_yet_valid", ""},
		{"ok/one below the limit", &l, t0, 9, "", ""},
		{"ok/in grace", &l, exp, 0, "", ""},
		{"ok/expiring soon", &l, exp.Add(-time.Hour), 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := license.Check(tc.l, tc.now, tc.active)
			if code(err) != tc.want {
				t.Fatalf("Check: %v; want code %q", err, tc.want)
			}
			if err != nil && errs.KindOf(err) != errs.Forbidden {
				t.Fatalf("Check: kind %s; want forbidden", errs.KindOf(err))
			}
			if _, msg, _ := errs.Public(err); tc.wantMsg != "" && msg != tc.wantMsg {
				t.Fatalf("message %q\nwant    %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	l := sample()
	dev := sample()
	dev.Development = true
	tests := []struct {
		name   string
		l      *license.License
		now    time.Time
		active int
		want   []string // substrings, in order
	}{
		{"no licence", nil, t0, 0, []string{"no validated licence"}},
		{"all well", &l, t0, 8, nil},
		{"90 % of the limit", &l, t0, 9, []string{"9 of the licence's 10 devices"}},
		{"full", &l, t0, 10, []string{"allows 10 devices and 10 are active"}},
		{"expiring soon", &l, l.Expires.Add(-36 * time.Hour), 0, []string{"expires on 2032-03-04 (in 2 days)"}},
		{"in grace", &l, l.Expires, 0, []string{"refused from 2032-03-18"}},
		{"expired and full", &l, l.Expires.Add(license.DefaultGrace), 10, []string{"expired on 2032-03-04", "are active"}},
		{"development", &dev, t0, 0, []string{"development licence"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := license.Warnings(tc.l, tc.now, tc.active)
			if len(got) != len(tc.want) {
				t.Fatalf("Warnings = %q; want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("warning %d = %q; want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestGateAdmit(t *testing.T) {
	l := sample()
	errDB := errors.New("database down")
	tests := []struct {
		name      string
		current   *license.License
		now       time.Time
		count     int
		countErr  error
		want      string
		wantCount bool
	}{
		{name: "fail/no licence yet", current: nil, now: t0, want: "license_missing"},
		{name: "fail/expired, without counting", current: &l, now: l.Expires.Add(license.DefaultGrace), want: "license_expired"},
		{name: "fail/full", current: &l, now: t0, count: 10, want: "license_device_limit", wantCount: true},
		{name: "fail/count fails closed", current: &l, now: t0, countErr: errDB, want: "internal", wantCount: true},
		{name: "ok/room for one more", current: &l, now: t0, count: 9, wantCount: true},
		{name: "ok/in grace", current: &l, now: l.Expires, count: 0, wantCount: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			counted := false
			g := &license.Gate{
				Current: func() *license.License { return tc.current },
				ActiveDevices: func(context.Context) (int, error) {
					counted = true
					return tc.count, tc.countErr
				},
				Now: func() time.Time { return tc.now },
				Log: slog.New(slog.NewTextHandler(&logged, nil)),
			}
			err := g.Admit(context.Background())
			if code(err) != tc.want {
				t.Fatalf("Admit: %v; want code %q", err, tc.want)
			}
			if counted != tc.wantCount {
				t.Fatalf("counted devices: %v; want %v", counted, tc.wantCount)
			}
			if tc.countErr != nil && !errors.Is(err, tc.countErr) {
				t.Fatalf("Admit: %v; want it to wrap the count's error", err)
			}
			refusedByLicence := tc.want != "" && tc.countErr == nil
			if strings.Contains(logged.String(), "code="+tc.want) != refusedByLicence {
				t.Fatalf("log %q; want a refusal logged: %v", logged.String(), refusedByLicence)
			}
			if tc.name == "ok/in grace" {
				// After expiry the gate warns (once an hour), and admits.
				if n := strings.Count(logged.String(), "licence: "); n == 0 {
					t.Fatalf("log %q; want the grace warning", logged.String())
				}
				before := logged.Len()
				if err := g.Admit(context.Background()); err != nil || logged.Len() != before {
					t.Fatalf("second Admit: %v, logged %q again", err, logged.String()[before:])
				}
			}
		})
	}
	if err := (&license.Gate{}).Admit(context.Background()); code(err) != "license_missing" {
		t.Fatalf("zero Gate: %v; want license_missing", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "license-key.pem")
	priv, err := license.GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	loaded, err := license.LoadKey(path)
	if err != nil || !priv.Equal(loaded) {
		t.Fatalf("LoadKey: %v; equal %v", err, priv.Equal(loaded))
	}
	if _, err := license.GenerateKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateKey over an existing key: %v; want fs.ErrExist", err)
	}
	if again, _ := license.LoadKey(path); !priv.Equal(again) {
		t.Fatal("a refused GenerateKey changed the key file")
	}

	other := MustKey(t, 2)
	both := append(license.PublicKeyPEM(pub(priv)), license.PublicKeyPEM(pub(other))...)
	tests := []struct {
		name    string
		content []byte
		want    []ed25519.PublicKey
	}{
		{"fail/empty", []byte("\n"), nil},
		{"fail/wrong block type", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub(other)}), nil},
		{"fail/short key", pem.EncodeToMemory(&pem.Block{Type: license.KeyPEMType, Bytes: pub(other)[:31]}), nil},
		{"fail/text between keys", append(append(license.PublicKeyPEM(pub(priv)), "junk\n"...), license.PublicKeyPEM(pub(other))...), nil},
		{"fail/private key", func() []byte { b, _ := os.ReadFile(path); return b }(), nil},
		{"ok/two keys", both, []ed25519.PublicKey{pub(priv), pub(other)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keys.pem")
			if err := os.WriteFile(p, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := license.LoadPublicKeys(p)
			if (err != nil) != (tc.want == nil) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("LoadPublicKeys = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzParse: no input panics Parse or Verify, and whatever verifies is a
// fixed point of issuing: re-issued with the same key it verifies to an
// equal licence with the same payload.
func FuzzParse(f *testing.F) {
	key := MustKey(f, 1)
	keys := []ed25519.PublicKey{pub(key)}
	good := MustIssue(f, key, sample())
	dev, err := license.Development("core-dev", &license.Issuer{Key: key}, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(dev)
	f.Add(MustIssue(f, MustKey(f, 2), sample()))
	f.Add(append(append([]byte{}, good...), good...))
	f.Add(reencode(MustPayload(f, good)))
	f.Add([]byte("-----BEGIN CUSTOS LICENSE-----\ne30=\n-----END CUSTOS LICENSE-----\n"))
	iss := &license.Issuer{Key: key, Now: func() time.Time { return t0 }}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, perr := license.Parse(doc)
		l, err := license.Verify(doc, keys)
		if err == nil && perr != nil {
			t.Fatalf("Verify accepted what Parse refused: %v", perr)
		}
		if err != nil {
			return
		}
		again, err := iss.Issue(*l)
		if err != nil {
			t.Fatalf("re-issue of a verified licence: %v", err)
		}
		l2, err := license.Verify(again, keys)
		if err != nil {
			t.Fatalf("Verify of the re-issue: %v", err)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip changed the licence:\n%+v\n%+v", l, l2)
		}
		s2, err := license.Parse(again)
		if err != nil || !bytes.Equal(s.Payload, s2.Payload) {
			t.Fatalf("round trip changed the payload: %v\n%s\n%s", err, s.Payload, s2.Payload)
		}
	})
}
