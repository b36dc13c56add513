package activation

import (
	"sort"
	"time"
)

// Platform is a device platform Custos can activate.
type Platform string

const (
	Android Platform = "android"
	IOS     Platform = "ios"
	IPadOS  Platform = "ipados"
	MacOS   Platform = "macos"
	Windows Platform = "windows"
	Linux   Platform = "linux"
	BB10    Platform = "bb10"
	BBOS    Platform = "bbos"
)

// Platforms lists every platform, in display order.
var Platforms = []Platform{Android, IOS, IPadOS, MacOS, Windows, Linux, BB10, BBOS}

// Type is an activation type: how much of the device the organisation
// controls. The set is the seed's (Architecture reference, "Activating
// devices" and each platform's activation data flow).
type Type string

const (
	MDMControls                 Type = "mdm_controls"
	WorkPersonalUserPrivacy     Type = "work_personal_user_privacy"
	WorkPersonalFullControl     Type = "work_personal_full_control"
	WorkSpaceOnly               Type = "work_space_only"
	KnoxWorkPersonalFullControl Type = "knox_work_personal_full_control"
	KnoxWorkPersonalUserPrivacy Type = "knox_work_personal_user_privacy"
	KnoxWorkSpaceOnly           Type = "knox_work_space_only"
	UserPrivacy                 Type = "user_privacy"
	WorkPersonalRegulated       Type = "work_personal_regulated"
	WorkPersonalCorporate       Type = "work_personal_corporate"
)

// TypeInfo describes an activation type.
type TypeInfo struct {
	Type      Type       `json:"type"`
	Label     string     `json:"label"`
	Platforms []Platform `json:"platforms"`
}

// Types lists every activation type with the platforms it applies to.
var Types = []TypeInfo{
	{MDMControls, "MDM controls", []Platform{Android, IOS, IPadOS, MacOS, Windows, Linux, BBOS}},
	{WorkPersonalUserPrivacy, "Work and personal - user privacy", []Platform{Android, BB10}},
	{WorkPersonalFullControl, "Work and personal - full control", []Platform{Android}},
	{WorkSpaceOnly, "Work space only", []Platform{Android, BB10}},
	{KnoxWorkPersonalFullControl, "Work and personal - full control (Samsung Knox)", []Platform{Android}},
	{KnoxWorkPersonalUserPrivacy, "Work and personal - user privacy (Samsung Knox)", []Platform{Android}},
	{KnoxWorkSpaceOnly, "Work space only (Samsung Knox)", []Platform{Android}},
	{UserPrivacy, "User privacy", []Platform{IOS, IPadOS, MacOS, Windows, Android}},
	{WorkPersonalRegulated, "Work and personal - Regulated", []Platform{BB10}},
	{WorkPersonalCorporate, "Work and personal - Corporate", []Platform{BB10}},
}

// ValidPlatform reports whether p is a known platform.
func ValidPlatform(p Platform) bool {
	for _, q := range Platforms {
		if p == q {
			return true
		}
	}
	return false
}

// Allows reports whether activation type t applies to platform p.
func Allows(t Type, p Platform) bool {
	for _, ti := range Types {
		if ti.Type == t {
			for _, q := range ti.Platforms {
				if q == p {
					return true
				}
			}
		}
	}
	return false
}

// Profile is an activation profile: which platforms a user may activate,
// with which activation type each, and how many devices.
type Profile struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Rank orders profiles that reach a user through several groups: the
	// lowest rank wins. A direct assignment to the user beats any group.
	Rank int `json:"rank"`
	// MaxDevices is how many devices (not removed) one user may have
	// activated with this profile.
	MaxDevices int `json:"max_devices"`
	// Types maps each allowed platform to its activation type; a platform
	// that is absent may not be activated.
	Types     map[Platform]Type `json:"types"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// SortedPlatforms returns the profile's platforms in a stable order.
func (p *Profile) SortedPlatforms() []Platform {
	out := make([]Platform, 0, len(p.Types))
	for k := range p.Types {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Password is an activation password. Only its keyed hash is stored.
type Password struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Hash      []byte    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt is set when a device completed enrollment with the password;
	// DeviceID names that device.
	UsedAt   *time.Time `json:"used_at,omitempty"`
	DeviceID string     `json:"device_id,omitempty"`
	// RevokedAt is set when a newer password replaced this one or an
	// administrator withdrew it.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// SessionState is the state of an enrollment session.
type SessionState string

const (
	SessionOpen       SessionState = "open"       // waiting for the CSR
	SessionConsumed   SessionState = "consumed"   // certificate issued
	SessionSuperseded SessionState = "superseded" // a newer attempt replaced it
)

// Session is an enrollment session: opened when the credentials were
// accepted (seed step 6d), consumed when the CSR is signed (step 8).
type Session struct {
	ID         string       `json:"id"`
	TokenHash  []byte       `json:"-"`
	UserID     string       `json:"user_id"`
	DeviceID   string       `json:"device_id"`
	PasswordID string       `json:"password_id"`
	State      SessionState `json:"state"`
	CreatedAt  time.Time    `json:"created_at"`
	ExpiresAt  time.Time    `json:"expires_at"`
}

// IssuedCert records a certificate issued to a device.
type IssuedCert struct {
	Serial    string    // hex, lower case
	DeviceID  string    //
	NotBefore time.Time //
	NotAfter  time.Time //
	DER       []byte    //
}
