// Package sim simulates the device side of the platforms Custos manages, for
// `custos agent activate --simulate PLATFORM`, end-to-end tests and
// benchmarks: each Device is a plausible, internally consistent phone or
// computer (a Galaxy S24 runs Android 14 with Samsung's system apps and a
// Samsung IMEI; an iPhone15,2 has an A16 UDID and runs iOS 17) with a
// realistic software list.
//
// A Device is a pure function of its platform and seed: the same seed is
// the same hardware, identifiers and apps. The CLI stores the seed in the
// agent's state (agent.State.Simulation), so activating again on the same
// state directory is the same device.
package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Platforms lists the platforms New simulates (activation.Platform values).
var Platforms = []string{"android", "ios", "windows", "linux"}

// Device is one simulated device. It is safe for concurrent use.
type Device struct {
	mu  sync.Mutex
	rng *rand.Rand // drives UpdateApp after construction
	inv agent.Inventory

	// What the device did as the agent's Applier and Executor (device.go).
	applied  []wire.Item
	executed []Execution
	busy     string // non-empty: every command is answered "not now"
	locked   bool
	client   *agent.Client // Wake's target
}

var _ agent.Collector = (*Device)(nil)

// New returns the simulated device of platform for seed.
func New(platform string, seed uint64) (*Device, error) {
	// One stream per platform and seed: the device, then its later changes.
	h := fnv.New64a()
	h.Write([]byte(platform))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	var inv agent.Inventory
	switch platform {
	case "android":
		inv = android(r)
	case "ios":
		inv = ios(r)
	case "windows":
		windows(r, &inv)
	case "linux":
		linux(r, &inv)
	default:
		return nil, fmt.Errorf("sim: no simulator for platform %q (have %s)", platform, strings.Join(Platforms, ", "))
	}
	inv.Platform = platform
	inv.Info.OSVersion = inv.OSVersion
	inv.Info.Model = inv.Model
	slices.SortFunc(inv.Apps, func(a, b device.App) int { return strings.Compare(a.Name, b.Name) })
	return &Device{rng: r, inv: inv}, nil
}

// RandomSeed returns a seed from crypto/rand, for a new random device.
func RandomSeed() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// Collect implements agent.Collector: a copy of the device's inventory.
func (d *Device) Collect(ctx context.Context) (*agent.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	inv := d.inv
	inv.Apps = slices.Clone(d.inv.Apps)
	if d.inv.Info.Attributes != nil {
		inv.Info.Attributes = make(map[string]string, len(d.inv.Info.Attributes))
		for k, v := range d.inv.Info.Attributes {
			inv.Info.Attributes[k] = v
		}
	}
	return &inv, nil
}

// Platform returns the simulated platform.
func (d *Device) Platform() string { return d.inv.Platform }

// HardwareID returns the device's hardware ID.
func (d *Device) HardwareID() string { return d.inv.HardwareID }

// UpdateApp simulates a software update: one app, chosen by the device's
// own random stream, gets a newer version. It returns the updated app.
func (d *Device) UpdateApp() device.App {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.rng.IntN(len(d.inv.Apps))
	d.inv.Apps[i].Version = bump(d.inv.Apps[i].Version)
	return d.inv.Apps[i]
}

// bump increments the last number in v ("124.0.6367.82" → "124.0.6367.83").
func bump(v string) string {
	end := len(v)
	for end > 0 && (v[end-1] < '0' || v[end-1] > '9') {
		end--
	}
	start := end
	for start > 0 && v[start-1] >= '0' && v[start-1] <= '9' {
		start--
	}
	if start == end {
		return v + ".1"
	}
	n, err := strconv.Atoi(v[start:end])
	if err != nil {
		return v + ".1"
	}
	return v[:start] + strconv.Itoa(n+1) + v[end:]
}

// LuhnValid reports whether s is all digits with a valid Luhn check digit
// (the last), as in an IMEI.
func LuhnValid(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return luhnDigit(s[:len(s)-1]) == s[len(s)-1]
}

// luhnDigit returns the Luhn check digit of the digits in payload.
func luhnDigit(payload string) byte {
	sum := 0
	double := true // the digit left of the check digit is doubled
	for i := len(payload) - 1; i >= 0; i-- {
		d := int(payload[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// imei returns a 15-digit IMEI: the model's 8-digit type allocation code,
// a 6-digit serial and the Luhn check digit.
func imei(r *rand.Rand, tac string) string {
	s := tac + digits(r, 6)
	return s + string(luhnDigit(s))
}

const (
	hexLower = "0123456789abcdef"
	hexUpper = "0123456789ABCDEF"
	upperNum = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func chars(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func digits(r *rand.Rand, n int) string { return chars(r, "0123456789", n) }

// version fills a pattern: each '#' becomes a random digit.
func version(r *rand.Rand, pattern string) string {
	b := []byte(pattern)
	for i, c := range b {
		if c == '#' {
			b[i] = byte('0' + r.IntN(10))
		}
	}
	return string(b)
}

// app is a catalog entry: ID, display name and version pattern.
type app struct{ id, name, ver string }

// apps returns all of always plus n − len(always) entries of pool in random
// order (as many as the pool holds), with versions filled in.
func apps(r *rand.Rand, always, pool []app, n int) []device.App {
	out := make([]device.App, 0, max(n, len(always)))
	for _, a := range always {
		out = append(out, device.App{ID: a.id, Name: a.name, Version: version(r, a.ver)})
	}
	perm := r.Perm(len(pool))
	for _, i := range perm {
		if len(out) >= n {
			break
		}
		a := pool[i]
		out = append(out, device.App{ID: a.id, Name: a.name, Version: version(r, a.ver)})
	}
	return out
}

// phone returns a fictional North American number (555-01xx is reserved
// for fiction).
func phone(r *rand.Rand) string {
	return "+1" + pick(r, []string{"202", "312", "415", "617", "646", "512"}) + "55501" + digits(r, 2)
}
