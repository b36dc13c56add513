// Package device owns device instances: one per activation, tied to the user
// who activated it, with the information and software inventory the device
// reports.
//
// A device moves through the states below in one direction only:
//
//	activating → enrolled → active → removed
//
// activating: the credentials were accepted and an enrollment session is open
// (seed, Android MDM activation, step 6). enrolled: the client certificate was
// issued (step 8); from here on every request is authenticated by it. active:
// the device acknowledged its configuration (step 12). removed: retired by an
// administrator or replaced by a new activation of the same hardware; its
// certificate is revoked and refused at the next request.
package device

import (
	"context"
	"time"
)

// State of a device instance.
type State string

const (
	StateActivating State = "activating"
	StateEnrolled   State = "enrolled"
	StateActive     State = "active"
	StateRemoved    State = "removed"
)

// Device is one activation of one piece of hardware by one user.
type Device struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	// HardwareID is the unique device identifier the device reports
	// (Android ID, UDID, Windows HWDevID, /etc/machine-id …).
	HardwareID     string `json:"hardware_id"`
	Platform       string `json:"platform"`
	OSVersion      string `json:"os_version"`
	Model          string `json:"model"`
	Name           string `json:"name"`
	ActivationType string `json:"activation_type"`
	ProfileID      string `json:"activation_profile_id,omitempty"`
	State          State  `json:"state"`
	// CertSerial is the hex serial of the one client certificate that
	// authenticates this device; empty before enrollment.
	CertSerial string `json:"cert_serial,omitempty"`
	// ConfigVersion is the configuration version the device last
	// acknowledged.
	ConfigVersion string     `json:"config_version,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	EnrolledAt    *time.Time `json:"enrolled_at,omitempty"`
	ActivatedAt   *time.Time `json:"activated_at,omitempty"`
	LastSeenAt    *time.Time `json:"last_seen_at,omitempty"`
	RemovedAt     *time.Time `json:"removed_at,omitempty"`
}

// Info is what a device reports about itself.
type Info struct {
	Hostname     string            `json:"hostname,omitempty"`
	Manufacturer string            `json:"manufacturer,omitempty"`
	Model        string            `json:"model,omitempty"`
	SerialNumber string            `json:"serial_number,omitempty"`
	OSName       string            `json:"os_name,omitempty"`
	OSVersion    string            `json:"os_version,omitempty"`
	Kernel       string            `json:"kernel,omitempty"`
	Arch         string            `json:"arch,omitempty"`
	IMEI         string            `json:"imei,omitempty"`
	PhoneNumber  string            `json:"phone_number,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
}

// App is one installed software package or app.
type App struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// ID is the platform's identifier (package name, bundle ID), if any.
	ID string `json:"id,omitempty"`
}

// Inventory is the last report of a device.
type Inventory struct {
	DeviceID   string    `json:"device_id"`
	Info       Info      `json:"info"`
	Software   []App     `json:"software"`
	ReportedAt time.Time `json:"reported_at"`
}

// Query filters a device listing. Zero fields do not filter.
type Query struct {
	UserID     string
	HardwareID string
	State      State
	// After and Limit page through devices in ID order; Limit is capped at
	// MaxPage.
	After string
	Limit int
}

// MaxPage caps the devices returned by one listing call.
const MaxPage = 500

// Store keeps devices and their inventory.
type Store interface {
	// Device returns the device with id, or errs.ErrNotFound.
	Device(ctx context.Context, id string) (*Device, error)
	// ListDevices returns devices matching q in ID order.
	ListDevices(ctx context.Context, q Query) ([]*Device, error)
	// Inventory returns the last report of the device; a device that has not
	// reported yet, or does not exist, returns errs.ErrNotFound.
	Inventory(ctx context.Context, id string) (*Inventory, error)
	// SaveReport stores what an enrolled or active device reported: info
	// replaces the stored info and the device's model/OS version/name
	// columns; software replaces the stored list unless it is nil (the
	// device said it is unchanged). LastSeenAt becomes now. A removed or
	// unknown device returns errs.ErrNotFound and changes nothing. An empty
	// info field (not reported) leaves the device's column as it was, and a
	// device still activating is errs.ErrNotFound too.
	SaveReport(ctx context.Context, id string, info Info, software []App, now time.Time) error
	// Acknowledge records that the device applied configuration version and
	// moves an enrolled device to active (an active one stays active).
	// errs.ErrNotFound for a removed, activating or unknown device.
	Acknowledge(ctx context.Context, id, version string, now time.Time) error
}

// Remover retires devices.
type Remover interface {
	// RemoveDevice marks the device removed and revokes its certificates in
	// one transaction. Removing a removed device returns errs.ErrNotFound,
	// as does an unknown ID.
	RemoveDevice(ctx context.Context, id string, now time.Time) error
}
