// Package agent is the Core's side of the Custos agent protocol: the JSON
// over HTTPS protocol spoken by the reference agent (the seed's "UEM
// Client") and by the simulated Android, iOS and Windows clients. It walks
// the seed's "Data flow: Activating an Android device for MDM", steps 5–12:
//
//	POST /device/v1/activate      step 5–6: credentials → enrollment session (cookie)
//	POST /device/v1/enroll        step 7–8: PKCS#10 CSR → client certificate + root
//	POST /device/v1/checkin       step 9–10 (mTLS): device and software info → configuration
//	POST /device/v1/ack           step 12 (mTLS): configuration applied → device active
//
// Every request body is JSON with unknown fields refused and a size limit
// per endpoint (the Max* constants below). After enrollment every request
// must present the device's client certificate over TLS; the body never
// names the device, the certificate does.
package agent

import (
	"encoding/json"
	"time"

	"github.com/custos-uem/custos/device"
)

// Paths of the protocol.
const (
	PathActivate = "/device/v1/activate"
	PathEnroll   = "/device/v1/enroll"
	PathCheckin  = "/device/v1/checkin"
	PathAck      = "/device/v1/ack"
	// PathCommands is one command round trip (mTLS): the result of the
	// previous command in, the next command (or idle) out.
	PathCommands = "/device/v1/commands"
	// PathWait is the agent's own notification channel for installs
	// without Apple or Google push services (mTLS): a long poll that
	// answers as soon as something is pending for the device.
	PathWait = "/device/v1/wait"
)

// SessionCookie carries the enrollment session between steps 6 and 8 (the
// seed: "Adds the enrollment session ID to an HTTP session").
const SessionCookie = "custos_enrollment"

// Wire limits, checked before a body is read into memory.
const (
	MaxActivateBody = 8 << 10   // credentials and a few identifiers
	MaxEnrollBody   = 16 << 10  // one PEM CSR (an RSA-4096 CSR is ~1.7 KiB)
	MaxCheckinBody  = 4 << 20   // info + up to MaxApps software entries
	MaxAckBody      = 256 << 10 // MaxItems statuses with short errors
	MaxCommandsBody = 2 << 20   // one result, its data at most command.MaxResultData
	MaxWaitBody     = 1 << 10   //
	// MaxWait bounds a long poll; proxies commonly cut idle requests at 60 s.
	MaxWait       = 55 * time.Second
	MaxApps       = 20000 // software entries in one report
	MaxField      = 256   // bytes in any identifier or info string
	MaxAttributes = 64    // extra info attributes
	MaxItems      = 1000  // item statuses in one acknowledgment
)

// ActivateRequest is step 5: "the username, password, device operating
// system, and unique device identifier".
type ActivateRequest struct {
	// Login is the user's email address or username.
	Login    string `json:"login"`
	Password string `json:"password"`
	// Platform is one of activation.Platforms.
	Platform   string `json:"platform"`
	OSVersion  string `json:"os_version"`
	HardwareID string `json:"hardware_id"`
	Model      string `json:"model,omitempty"`
	Name       string `json:"name,omitempty"`
}

// ActivateResponse is step 6e: the credentials were accepted. It tells the
// agent what its CSR must contain (step 7: "creates a CSR using the
// information received").
type ActivateResponse struct {
	DeviceID       string `json:"device_id"`
	ActivationType string `json:"activation_type"`
	// CSRCommonName is the subject common name the CSR must carry.
	CSRCommonName string `json:"csr_common_name"`
	// ExpiresAt is when the enrollment session closes (RFC 3339).
	ExpiresAt string `json:"expires_at"`
}

// EnrollRequest is step 7.
type EnrollRequest struct {
	CSR string `json:"csr"` // PEM "CERTIFICATE REQUEST"
}

// EnrollResponse is step 8c.
type EnrollResponse struct {
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM root
}

// CheckinRequest is step 9: device and software information. Software nil
// means "unchanged since my last report".
type CheckinRequest struct {
	// DeviceID must name the device of the client certificate; a request
	// naming another device is refused (device_mismatch).
	DeviceID string       `json:"device_id"`
	Info     device.Info  `json:"info"`
	Software []device.App `json:"software"`
	// ConfigVersion is the configuration version the device runs; when it
	// is current the answer carries no items (Configuration.Unchanged).
	ConfigVersion string `json:"config_version,omitempty"`
	// Push registers (or replaces) the device's push token; nil keeps the
	// stored one. A device without one is reached by polling and PathWait.
	Push *PushRegistration `json:"push,omitempty"`
}

// PushRegistration is how the Core reaches the device through a push
// service.
type PushRegistration struct {
	Provider string `json:"provider"` // "apns", "fcm" or "wns"
	// Token is the APNs device token (hex), the FCM registration token or
	// the WNS channel URI.
	Token string `json:"token"`
	// Topic is the APNs topic (the app's bundle ID); empty otherwise.
	Topic string `json:"topic,omitempty"`
}

// Configuration is what the Core wants applied on the device. Version
// changes whenever any item does, so a device fetches only what changed.
type Configuration struct {
	Version string `json:"version"`
	// Unchanged is true when Version is the one the device said it runs;
	// Items is then empty and the device keeps what it has.
	Unchanged bool   `json:"unchanged,omitempty"`
	Items     []Item `json:"items"`
	// PollSeconds is how often the agent should check in.
	PollSeconds int `json:"poll_seconds"`
}

// Item is one configuration item (an IT policy rule set, a profile …).
type Item struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// Revision changes whenever the item's payload does.
	Revision int            `json:"revision,omitempty"`
	Payload  map[string]any `json:"payload"`
}

// CheckinResponse is step 10.
type CheckinResponse struct {
	DeviceID      string        `json:"device_id"`
	State         string        `json:"state"`
	Configuration Configuration `json:"configuration"`
	// PushRegistered says whether the Core holds a push token for the
	// device. The Core forgets a token its provider declares gone; a
	// device that has one registers it again when this is false.
	PushRegistered bool `json:"push_registered"`
}

// AckRequest is step 12: the configuration version the device applied.
type AckRequest struct {
	DeviceID string       `json:"device_id"`
	Version  string       `json:"version"`
	Items    []ItemStatus `json:"items,omitempty"`
}

// ItemStatus is the outcome of applying one item.
type ItemStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"` // "applied" or "failed"
	Error  string `json:"error,omitempty"`
}

// AckResponse confirms the acknowledgment.
type AckResponse struct {
	State string `json:"state"`
}

// CommandsRequest is one command round trip: the result of the command
// the device was last given (nil on the first call), asking for the next.
type CommandsRequest struct {
	DeviceID string         `json:"device_id"`
	Result   *CommandResult `json:"result,omitempty"`
}

// CommandResult is a device's answer to a command.
type CommandResult struct {
	CommandID string `json:"command_id"`
	// Status is "acknowledged", "error" or "not_now".
	Status  string          `json:"status"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// CommandsResponse carries the next command, or Idle when none is due.
type CommandsResponse struct {
	Command *Command `json:"command,omitempty"`
	Idle    bool     `json:"idle,omitempty"`
	// Duplicate is true when the result had already been recorded (a
	// retried request); the device goes on as if it was taken.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Command is one command for the device to run. A device may receive the
// same command twice (delivery is at least once) and must run it once per
// ID.
type Command struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// WaitRequest opens the long poll of PathWait.
type WaitRequest struct {
	DeviceID string `json:"device_id"`
	// TimeoutSeconds bounds the wait (at most MaxWait).
	TimeoutSeconds int `json:"timeout_seconds"`
}

// WaitResponse ends the long poll: Pending is true when a command is due
// (then the device runs PathCommands round trips until idle), false when
// the wait timed out.
type WaitResponse struct {
	Pending bool `json:"pending"`
}
