// Package dep is Apple's automated device enrollment (ADE, formerly the
// Device Enrollment Program) on the Core: the seed's "Activating an iOS
// device" steps 1 (the administrator syncs the Core with Apple Business
// Manager, devices are assigned to this server and an enrollment
// configuration to the devices) and 3 (the device, during Setup Assistant,
// asks the Core for its enrollment profile).
//
// Its promise:
//
//   - Server token: the Core generates a keypair and certificate (nanodep
//     tokenpki) the administrator uploads to Apple Business Manager; the
//     .p7m Apple gives back is decrypted to the OAuth1 tokens, which are
//     stored sealed by the Core's secret.Box and never shown again.
//   - Device sync: the devices assigned to this server are fetched
//     (/server/devices) once, then followed incrementally (/devices/sync)
//     from the persisted cursor; a lost or expired cursor starts a full
//     fetch again. An expired server token refuses the sync with a clear
//     error (and a log warning).
//   - Profiles: an ADE profile whose url is PublicURL + PathEnroll is
//     defined from a small administrator-edited config and assigned to the
//     devices; the profile UUID and Apple's answer are recorded per device.
//   - Enrollment: POST PathEnroll carries the CMS-signed MachineInfo plist.
//     Its signature is verified against Apple's device CA roots BEFORE
//     anything else is read; then the serial must be one the sync saw
//     assigned to this server, and the device must have a Custos user (its
//     own assignment, else the default user). The Core then creates the
//     device (activation) and answers with its enrollment profile.
//
// Apple: "Device Assignment" https://developer.apple.com/documentation/devicemanagement/device-assignment
// and "Authenticating with a Device Enrollment Program (DEP) server"
// https://developer.apple.com/documentation/devicemanagement/authenticating-with-a-device-enrollment-program-dep-server;
// MachineInfo: https://developer.apple.com/documentation/devicemanagement/machineinfo.
package dep

import (
	"context"
	"time"
)

// Paths and defaults.
const (
	// PathEnroll is the ADE profile's url: the device POSTs MachineInfo here.
	PathEnroll = "/device/apple/dep/enroll"
	// DefaultBaseURL is Apple's ADE API.
	DefaultBaseURL = "https://mdmenrollment.apple.com"
	// depName is the one nanodep "DEP name" of a Core: one server token.
	depName = "custos"
	// WarnBefore is how long before the server token's expiry the Core
	// warns (Apple's tokens last a year).
	WarnBefore = 30 * 24 * time.Hour
	// DefaultSyncInterval is how often the Core syncs the device list.
	DefaultSyncInterval = 30 * time.Minute
	// PageSize is the limit of a fetch or sync request: Apple's maximum
	// ("The maximum number of entries to return ... 1000").
	PageSize = 1000
	// MaxPages bounds the pages of one sync run, so that a server that
	// always answers more_to_follow cannot hold the job forever.
	MaxPages = 10000
)

// Settings keys (Store.DEPSetting).
const (
	keyKeypair     = "token_keypair"
	keyToken       = "server_token"
	keyCursor      = "cursor"
	keyProfile     = "profile"
	keyConfig      = "profile_config"
	keyDefaultUser = "default_user"
	keyLastSync    = "last_sync"
)

// SettingStore keeps the settings of automated enrollment, one value per
// key, so that writers of different keys never overwrite each other.
type SettingStore interface {
	// DEPSetting returns the value under key; errs.ErrNotFound when none.
	DEPSetting(ctx context.Context, key string) (string, error)
	// PutDEPSetting stores value under key, replacing any; value "" deletes.
	PutDEPSetting(ctx context.Context, key, value string, at time.Time) error
	// ClaimDEPSetting stores value under key unless one is stored, and
	// returns the stored value (value itself for the first caller).
	ClaimDEPSetting(ctx context.Context, key, value string, at time.Time) (string, error)
}

// Device is a device Apple Business Manager assigned to this server.
type Device struct {
	Serial       string     `json:"serial"`
	Model        string     `json:"model"`
	Description  string     `json:"description"`
	Color        string     `json:"color"`
	DeviceFamily string     `json:"device_family"`
	OS           string     `json:"os"`
	OpType       string     `json:"op_type"` // Apple's last operation: added, modified, deleted ("" from a fetch)
	OpDate       *time.Time `json:"op_date,omitempty"`
	// Removed is set when Apple reported the device deleted (unassigned
	// from this server): it can no longer enroll here.
	Removed bool `json:"removed"`
	// AppleProfileUUID and AppleProfileStatus are what Apple reported
	// (empty, assigned, pushed, removed).
	AppleProfileUUID   string `json:"apple_profile_uuid"`
	AppleProfileStatus string `json:"apple_profile_status"`
	// ProfileUUID and AssignStatus are the Core's last assignment of its
	// profile and Apple's answer (SUCCESS, FAILED, NOT_ACCESSIBLE).
	ProfileUUID  string     `json:"profile_uuid"`
	AssignStatus string     `json:"assign_status"`
	AssignedAt   *time.Time `json:"assigned_at,omitempty"`
	// UserID is the Custos user the device enrolls for ("" = the default
	// user, if any).
	UserID string `json:"user_id"`
	// EnrolledDeviceID is the Custos device its last enrollment created.
	EnrolledDeviceID string     `json:"enrolled_device_id,omitempty"`
	EnrolledAt       *time.Time `json:"enrolled_at,omitempty"`
	SyncedAt         time.Time  `json:"synced_at"`
}

// DeviceStore keeps the devices of automated enrollment.
type DeviceStore interface {
	// UpsertDEPDevices stores what Apple reported of devs (by serial),
	// keeping each known device's user, profile assignment and enrollment.
	UpsertDEPDevices(ctx context.Context, devs []Device) error
	// DEPDevice returns the device with serial; errs.ErrNotFound when the
	// sync never saw it.
	DEPDevice(ctx context.Context, serial string) (*Device, error)
	// ListDEPDevices lists devices by serial after the given one, at most
	// limit (<= 0: a default page).
	ListDEPDevices(ctx context.Context, after string, limit int) ([]*Device, error)
	// AssignDEPUser sets the device's user ("" clears it); an unknown
	// serial or user is errs.ErrNotFound.
	AssignDEPUser(ctx context.Context, serial, userID string) error
	// RecordDEPAssignment records the profile assignment of serials with
	// Apple's answer per serial; unknown serials are skipped.
	RecordDEPAssignment(ctx context.Context, profileUUID string, status map[string]string, at time.Time) error
	// RecordDEPEnrollment records that serial enrolled as deviceID.
	RecordDEPEnrollment(ctx context.Context, serial, deviceID string, at time.Time) error
}

// Store is everything the Service needs.
type Store interface {
	SettingStore
	DeviceStore
}
