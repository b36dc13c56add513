package dep_test

import (
	"testing"
	"time"

	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/dep/deptest"
)

// BenchmarkParseMachineInfo is the check of one ADE enrollment request:
// CMS parse, signature and chain verification (P-256 device chain), plist
// depth check and decode.
func BenchmarkParseMachineInfo(b *testing.B) {
	apple := deptest.NewDeviceCA(b, "Fake Apple")
	body := apple.Sign(b, deptest.MachineInfo{UDID: "00008030-001A2B3C4D5E6F70", Serial: "C02XK1ABCDEF", Product: "iPhone16,1",
		Version: "22A3354", IMEI: "35 123456 789012 3", Language: "en-US"}.Plist())
	roots := apple.Roots()
	now := time.Now()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := dep.ParseMachineInfo(body, roots, now); err != nil {
			b.Fatal(err)
		}
	}
}
