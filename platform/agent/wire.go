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
	"github.com/custos-uem/custos/device"
)

// Paths of the protocol.
const (
	PathActivate = "/device/v1/activate"
	PathEnroll   = "/device/v1/enroll"
	PathCheckin  = "/device/v1/checkin"
	PathAck      = "/device/v1/ack"
)

// SessionCookie carries the enrollment session between steps 6 and 8 (the
// seed: "Adds the enrollment session ID to an HTTP session").
const SessionCookie = "custos_enrollment"

// Wire limits, checked before a body is read into memory.
const (
	MaxActivateBody = 8 << 10  // credentials and a few identifiers
	MaxEnrollBody   = 16 << 10 // one PEM CSR (an RSA-4096 CSR is ~1.7 KiB)
	MaxCheckinBody  = 4 << 20  // info + up to MaxApps software entries
	MaxAckBody      = 4 << 10  //
	MaxApps         = 20000    // software entries in one report
	MaxField        = 256      // bytes in any identifier or info string
	MaxAttributes   = 64       // extra info attributes
	MaxItems        = 1000     // item statuses in one acknowledgment
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
}

// Configuration is what the Core wants applied on the device. Version
// changes whenever any item does, so a device fetches only what changed.
type Configuration struct {
	Version string `json:"version"`
	Items   []Item `json:"items"`
	// PollSeconds is how often the agent should check in.
	PollSeconds int `json:"poll_seconds"`
}

// Item is one configuration item (an IT policy rule set, a profile …).
type Item struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	Payload map[string]any `json:"payload"`
}

// CheckinResponse is step 10.
type CheckinResponse struct {
	DeviceID      string        `json:"device_id"`
	State         string        `json:"state"`
	Configuration Configuration `json:"configuration"`
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
