// Package policy owns what administrators want on devices: IT policies
// (password rules, encryption, screen lock, camera, allowed OS versions …)
// and profiles (Wi-Fi, VPN, email, enterprise connectivity, certificate,
// app configuration, software-release requirements, compliance), their
// assignment to users and groups, and the one place that computes a
// device's effective configuration.
//
// # Precedence
//
// Kinds marked single (Kind.Single) apply one policy per device: a policy
// assigned to the user directly beats every group; among groups the lowest
// Rank wins (rank 1 is the top of the list), then the name. Other kinds
// apply every policy that reaches the user, directly or through any group
// (nested groups included). A policy whose Platforms list is not empty
// applies only to devices of those platforms.
//
// # Versions
//
// The effective configuration has a Version: a hash of its items' IDs,
// revisions and payloads in a fixed order. It changes exactly when what the
// device must apply changes, so a device that reports the current version
// fetches nothing.
package policy

import (
	"encoding/json"
	"time"
)

// Kind of a policy.
type Kind string

const (
	ITPolicy        Kind = "it_policy"
	WiFi            Kind = "wifi"
	VPN             Kind = "vpn"
	Email           Kind = "email" // ActiveSync account
	Connectivity    Kind = "connectivity"
	Certificate     Kind = "certificate"
	AppConfig       Kind = "app_config"
	SoftwareRelease Kind = "software_release"
	Compliance      Kind = "compliance"
)

// Policy is one IT policy or profile.
type Policy struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Kind        Kind   `json:"kind"`
	// Rank orders policies of a single kind that reach a user through
	// several groups: the lowest wins.
	Rank int `json:"rank"`
	// Platforms limits the policy to these platforms (activation.Platforms
	// names); empty applies to all.
	Platforms []string `json:"platforms"`
	// Settings is the kind's settings object, validated by Validate.
	Settings json.RawMessage `json:"settings"`
	// Revision starts at 1 and grows with every change of Settings or
	// Platforms.
	Revision  int       `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Target kinds of an assignment.
const (
	TargetUser  = "user"
	TargetGroup = "group"
)

// Assignment gives a policy to a user or a group.
type Assignment struct {
	PolicyID   string    `json:"policy_id"`
	TargetKind string    `json:"target_kind"`
	TargetID   string    `json:"target_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// Item is one entry of an effective configuration.
type Item struct {
	ID       string         `json:"id"` // the policy ID
	Kind     Kind           `json:"kind"`
	Name     string         `json:"name"`
	Revision int            `json:"revision"`
	Payload  map[string]any `json:"payload"`
	// Via says why it applies: "user" or "group:<id>".
	Via string `json:"via"`
}

// Effective is a device's effective configuration.
type Effective struct {
	Version string `json:"version"`
	Items   []Item `json:"items"`
}

// Item states in a device's configuration status.
const (
	ItemPending = "pending"
	ItemApplied = "applied"
	ItemFailed  = "failed"
)

// ItemState is what a device did with one item.
type ItemState struct {
	ID       string    `json:"id"`
	Revision int       `json:"revision"`
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// kinds lists every kind in the order a device applies them: certificates
// first, because Wi-Fi, VPN and email profiles refer to them.
var kinds = []Kind{Certificate, ITPolicy, Compliance, SoftwareRelease, Connectivity, WiFi, VPN, Email, AppConfig}

// Kinds returns every kind, in the order a device applies them.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, q := range kinds {
		if k == q {
			return true
		}
	}
	return false
}

// Single reports whether a device gets at most one policy of kind k (see
// Precedence in the package doc): a device has one password policy, one
// compliance profile, one software-release requirement and one
// connectivity setup, while Wi-Fi networks, VPNs, accounts, certificates
// and app configurations add up.
func (k Kind) Single() bool {
	switch k {
	case ITPolicy, Compliance, SoftwareRelease, Connectivity:
		return true
	}
	return false
}
