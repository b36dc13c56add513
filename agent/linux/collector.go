// Package linux is the reference agent's inventory of a real Linux system:
// os-release, hostname, kernel release, DMI vendor/product/serial, a hardware
// ID derived from the machine ID, and the packages of dpkg and apk.
//
// Every file is read under Root, so tests run on fixture trees
// (testdata/debian, testdata/alpine), and every file is parsed as untrusted
// bytes under a named size limit checked before reading.
package linux

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Platform is the activation platform of a Linux device.
const Platform = "linux"

// Attributes the collector adds to device.Info.Attributes.
const (
	AttrPrettyName      = "pretty_name"
	AttrOSID            = "os_id"
	AttrPackagesSkipped = "linux.packages_skipped" // invalid names, over-long lines, over wire.MaxApps
	AttrPackageDBError  = "linux.package_db_error" // a package database that could not be read
)

// Collector reads the system under Root. The zero value reads "/".
type Collector struct {
	// Root is the file system root; "" is "/".
	Root string
	// Arch is reported as the architecture; "" is runtime.GOARCH.
	Arch string
}

var _ agent.Collector = (*Collector)(nil)

func (c *Collector) path(rel string) string {
	root := c.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// Collect implements agent.Collector. Missing optional files (DMI strings,
// package databases) leave their fields empty; a missing or malformed
// machine ID is an error, since the device would have no identity.
func (c *Collector) Collect(ctx context.Context) (*agent.Inventory, error) {
	inv := &agent.Inventory{Platform: Platform}
	attrs := map[string]string{}
	info := &inv.Info

	osr, err := c.readFirst(MaxOSRelease, "etc/os-release", "usr/lib/os-release")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	kv := ParseOSRelease(osr)
	info.OSName = kv["NAME"]
	if info.OSName == "" {
		info.OSName = "Linux"
	}
	if kv["PRETTY_NAME"] != "" {
		attrs[AttrPrettyName] = kv["PRETTY_NAME"]
	}
	if kv["ID"] != "" {
		attrs[AttrOSID] = kv["ID"]
	}
	info.Kernel = c.line("proc/sys/kernel/osrelease")
	info.OSVersion = kv["VERSION_ID"]
	if info.OSVersion == "" {
		info.OSVersion = kv["VERSION"]
	}
	if info.OSVersion == "" {
		info.OSVersion = info.Kernel // rolling distributions name no version
	}
	inv.OSVersion = info.OSVersion

	info.Hostname = c.line("proc/sys/kernel/hostname")
	if info.Hostname == "" {
		info.Hostname = c.line("etc/hostname")
	}
	inv.Name = info.Hostname
	info.Manufacturer = dmi(c.line("sys/class/dmi/id/sys_vendor"))
	info.Model = dmi(c.line("sys/class/dmi/id/product_name"))
	info.SerialNumber = dmi(c.line("sys/class/dmi/id/product_serial")) // root only: often empty
	inv.Model = info.Model
	info.Arch = c.Arch
	if info.Arch == "" {
		info.Arch = runtime.GOARCH
	}

	mid, err := c.readFirst(MaxSmallFile, "etc/machine-id", "var/lib/dbus/machine-id")
	if err != nil {
		return nil, fmt.Errorf("linux: machine ID: %w", err)
	}
	if inv.HardwareID, err = HardwareID(string(mid)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	skipped := 0
	var dbErrs []string
	for _, db := range []struct {
		rel   string
		limit int64
		parse func(io.Reader, int) ([]device.App, int, error)
	}{
		{"var/lib/dpkg/status", MaxDpkgStatus, ParseDpkgStatus},
		{"lib/apk/db/installed", MaxAPKInstalled, ParseAPKInstalled},
	} {
		apps, n, err := c.packages(db.rel, db.limit, wire.MaxApps-len(inv.Apps), db.parse)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				dbErrs = append(dbErrs, db.rel+": "+err.Error())
			}
			continue
		}
		inv.Apps = append(inv.Apps, apps...)
		skipped += n
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if skipped > 0 {
		attrs[AttrPackagesSkipped] = strconv.Itoa(skipped)
	}
	if len(dbErrs) > 0 {
		attrs[AttrPackageDBError] = strings.Join(dbErrs, "; ")
	}
	if len(attrs) > 0 {
		info.Attributes = attrs
	}
	return inv, nil
}

// packages parses one package database, checking its size first.
func (c *Collector) packages(rel string, limit int64, max int, parse func(io.Reader, int) ([]device.App, int, error)) ([]device.App, int, error) {
	f, err := os.Open(c.path(rel))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if fi.Size() > limit {
		return nil, 0, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, fi.Size(), limit)
	}
	return parse(io.LimitReader(f, limit), max)
}

// readFirst reads the first of rels that exists, at most limit bytes
// (checked before reading, and again while reading for files whose size
// the kernel does not report).
func (c *Collector) readFirst(limit int64, rels ...string) ([]byte, error) {
	var err error
	for _, rel := range rels {
		var b []byte
		b, err = readLimited(c.path(rel), limit)
		if !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	return nil, err
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes, limit %d)", path, ErrTooLarge, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w (limit %d)", path, ErrTooLarge, limit)
	}
	return b, nil
}

// line returns the first line of a small file, cleaned, or "" when it cannot
// be read (absent, unreadable like product_serial for non-root, too large).
func (c *Collector) line(rel string) string {
	b, err := readLimited(c.path(rel), MaxSmallFile)
	if err != nil {
		return ""
	}
	if i := strings.IndexByte(string(b), '\n'); i >= 0 {
		b = b[:i]
	}
	return cleanValue(b)
}

// dmi drops the placeholders firmware vendors leave in DMI strings.
func dmi(s string) string {
	switch strings.ToLower(s) {
	case "to be filled by o.e.m.", "default string", "system product name", "system manufacturer",
		"not specified", "not applicable", "none", "0", "0123456789", "system serial number":
		return ""
	}
	return s
}

// appID is Custos's application ID for deriving the hardware ID from the
// machine ID (machine-id(5): the ID itself is confidential and "must not be
// used directly"; an application hashes it with its own key).
var appID = [16]byte{0xe5, 0x08, 0xf2, 0x30, 0x94, 0xc6, 0x41, 0xd0, 0x81, 0x82, 0x7c, 0x6f, 0x9f, 0xc0, 0x8a, 0xb0}

// HardwareID derives the device's hardware ID from the content of
// /etc/machine-id exactly as systemd's sd_id128_get_machine_app_specific
// does (HMAC-SHA256 keyed by the machine ID over Custos's application ID,
// cut to 128 bits as a version 4 UUID), so an administrator can compute it
// with `systemd-id128 machine-id --app-specific=e508f23094c641d081827c6f9fc08ab0`.
// It is 32 lower-case hex digits.
func HardwareID(machineID string) (string, error) {
	s := strings.TrimSpace(machineID)
	var mid [16]byte
	if len(s) != 32 {
		return "", fmt.Errorf("linux: machine ID %q is not 32 hex digits", trimForError(s))
	}
	if _, err := hex.Decode(mid[:], []byte(s)); err != nil {
		return "", fmt.Errorf("linux: machine ID %q is not 32 hex digits", trimForError(s))
	}
	if mid == [16]byte{} {
		return "", errors.New("linux: machine ID is all zeros (not initialized)")
	}
	mac := hmac.New(sha256.New, mid[:])
	mac.Write(appID[:])
	sum := mac.Sum(nil)
	id := sum[:16]
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(id), nil
}

func trimForError(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
