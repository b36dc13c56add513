package compliance

import (
	"context"
	"time"
)

// Status of a device's compliance.
type Status string

const (
	// StatusUnknown: the device was never evaluated (it has not finished
	// activating, or no check ran yet), or no compliance profile has ever
	// applied to it.
	StatusUnknown Status = "unknown"
	// StatusCompliant: the device breaks no rule, or its profile was
	// unassigned (ProfileID empty).
	StatusCompliant Status = "compliant"
	// StatusNoncompliant: the device breaks at least one rule of its
	// profile; the ladder runs.
	StatusNoncompliant Status = "noncompliant"
)

// NoStep is State.Step before the first ladder step is taken.
const NoStep = -1

// State is where a device stands: its last evaluation and how far up the
// ladder it has gone.
type State struct {
	DeviceID   string      `json:"device_id"`
	Status     Status      `json:"status"`
	Violations []Violation `json:"violations"`
	// Since is when the current violation began (nil when compliant):
	// the clock every step's after_hours counts from.
	Since *time.Time `json:"since,omitempty"`
	// Step is the index in the profile's ladder of the highest step taken,
	// NoStep when none.
	Step int `json:"step"`
	// Prompts counts the prompts sent since the violation began.
	Prompts      int        `json:"prompts"`
	LastPromptAt *time.Time `json:"last_prompt_at,omitempty"`
	// Untrusted and Quarantined are what the connectivity services
	// (gateway, proxy, tunnel) read: an untrusted device gets no work
	// resources, a quarantined one is cut off from every work service.
	// Both are lifted when the device becomes compliant again.
	Untrusted   bool `json:"untrusted"`
	Quarantined bool `json:"quarantined"`
	// ProfileID is the compliance policy the device was judged by; empty
	// when none applies.
	ProfileID string `json:"profile_id,omitempty"`
	// Taken lists the ladder steps taken since the violation began.
	Taken []Taken `json:"taken"`
	// UpdatedAt is when the state last changed (a check that changes
	// nothing writes nothing).
	UpdatedAt time.Time `json:"updated_at"`
	// Version is the store's optimistic-concurrency counter: 0 for a
	// state never stored, then 1, 2, … with every save.
	Version int64 `json:"-"`
}

// Taken records one ladder step taken.
type Taken struct {
	Step   int       `json:"step"`
	Action Action    `json:"action"`
	At     time.Time `json:"at"`
	// CommandID is the queued wipe command, kept so that it can be
	// cancelled if the device becomes compliant before it is delivered.
	CommandID string `json:"command_id,omitempty"`
}

// StateQuery filters a listing of states. Zero fields do not filter.
type StateQuery struct {
	Status Status
	// After and Limit page in device ID order; Limit is capped at MaxPage.
	After string
	Limit int
}

// MaxPage caps one listing of states.
const MaxPage = 500

// Store keeps the compliance state of devices. Implementations: sqlstore
// (both backends), checked by compliancetest. Only the Engine writes.
type Store interface {
	// ComplianceState returns the stored state of a device (Version ≥ 1),
	// or errs.ErrNotFound when none was stored or the device was deleted.
	ComplianceState(ctx context.Context, deviceID string) (*State, error)
	// SaveComplianceState stores st if the stored version is st.Version
	// (0: nothing stored yet) and then sets st.Version to the new version.
	// Any other stored version is errs.ErrConflict and changes nothing:
	// another check decided first, and the caller must re-read and decide
	// again. A device that does not exist is errs.ErrNotFound. The state
	// of a removed device may still be saved. Deleting a device deletes its
	// state.
	SaveComplianceState(ctx context.Context, st *State) error
	// ListComplianceStates returns the states matching q in device ID
	// order.
	ListComplianceStates(ctx context.Context, q StateQuery) ([]*State, error)
}
