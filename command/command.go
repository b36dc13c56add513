// Package command is the device command queue: one queue for every
// platform (the agent's own verbs, Apple MDM, OMA-DM), so that "lock" is one
// thing rendered three ways by the platform adapters.
//
// # Delivery guarantees
//
// Each guarantee below is proven by a test of commandtest (run against
// SQLite and PostgreSQL) or of this package:
//
//   - Durable before the answer: Service.Send returns only after every
//     command of the call is committed; a Core killed after the answer
//     delivers them after restart. A bulk send to many devices is one
//     transaction: after a crash either all of its commands are queued or
//     none is.
//   - At least once: a delivered command stays "sent" until the device
//     reports its result. If the device asks for its next command without
//     having reported one (the answer was lost), the same command is
//     delivered again. Devices must treat commands as idempotent by ID.
//   - One command per round trip: each call of Next hands out at most one
//     command, the highest priority first, then the oldest (ID order).
//   - Idle: when nothing is due, Next returns ErrIdle and the platform
//     adapter answers with its explicit idle form.
//   - Results: acknowledged, error (with the device's message) and
//     not-now. A not-now command is resent after NotNowDelay, never in the
//     same round trip. Results are stored idempotently by command ID: the
//     first final result is kept, a repeat is answered as a duplicate and
//     changes nothing. A result for a command that was never queued for
//     that device is refused (ErrUnknownCommand) and changes nothing.
//   - Expiry: a command not delivered-and-answered by its ExpiresAt is
//     never delivered again; a sweep marks it expired.
//   - Cancel: a cancelled command is never delivered after the cancel
//     committed; a cancelled command that had already been delivered keeps
//     its state "cancelled" even if its result arrives later.
//   - History: a final command and its result are kept for the Service's
//     Retention from its creation, then pruned; an open command is never
//     pruned, whatever its age.
package command

import (
	"context"
	"encoding/json"
	"time"

	"github.com/custos-uem/custos/errs"
)

// Type names a command. Platform adapters translate each to their own verb.
type Type string

const (
	Lock          Type = "lock"
	ClearPasscode Type = "clear_passcode" // unlock: remove the device passcode
	SetPassword   Type = "set_password"   // payload {"password": "…"}
	WipeWork      Type = "wipe_work"      // delete work data
	WipeDevice    Type = "wipe_device"    // delete all device data
	Restart       Type = "restart"
	DeviceInfo    Type = "device_info"    // request device information
	InstalledApps Type = "installed_apps" // request the installed apps
	InstallApp    Type = "install_app"    // payload {"app_id": "…", "url": "…"}
	RemoveApp     Type = "remove_app"     // payload {"app_id": "…"}
	SyncConfig    Type = "sync_config"    // fetch and apply the configuration (sent when it changes)
	Message       Type = "message"        // payload {"text": "…"}: show a message to the device's user
	Raw           Type = "raw"            // payload {"platform": "…", "body": …} for a platform adapter
)

// Priorities range from MinPriority to MaxPriority; higher is delivered
// first. The seed: IT administration commands (delete device data, lock)
// outrank requests for information.
const (
	MinPriority = 0
	MaxPriority = 100
	// Default priorities per class.
	PriorityInfo   = 20 // device information, installed apps
	PriorityConfig = 40 // configuration sync, app install/remove, raw
	PriorityAdmin  = 80 // lock, passcode, restart, set password
	PriorityWipe   = 90 // delete work data, delete all device data
)

// Status of a command.
type Status string

const (
	StatusPending      Status = "pending"      // queued, not delivered yet
	StatusSent         Status = "sent"         // delivered, no result yet (redelivered on the next round trip)
	StatusNotNow       Status = "not_now"      // the device could not run it now; resent after NotNowDelay
	StatusAcknowledged Status = "acknowledged" // final: done
	StatusError        Status = "error"        // final: the device reported an error
	StatusCancelled    Status = "cancelled"    // final: cancelled by an administrator
	StatusExpired      Status = "expired"      // final: not answered before ExpiresAt
)

// Final reports whether no further change happens to a command in s.
func (s Status) Final() bool {
	switch s {
	case StatusAcknowledged, StatusError, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// Wire limits of commands and results.
const (
	MaxPayload       = 64 << 10 // bytes of a command payload (JSON)
	MaxResultData    = 1 << 20  // bytes of result data (an app list, device info)
	MaxResultMessage = 1024     // bytes of a device's error message
	// MaxBulk bounds the devices of one Send; more are refused, not cut.
	MaxBulk = 100_000
	// DefaultTTL is a command's lifetime when the caller names none.
	DefaultTTL = 7 * 24 * time.Hour
	// MaxTTL bounds a command's lifetime.
	MaxTTL = 90 * 24 * time.Hour
	// NotNowDelay is how long a not-now command waits before it is resent.
	NotNowDelay = time.Minute
)

// Command is one command for one device.
type Command struct {
	ID       string          `json:"id"`
	DeviceID string          `json:"device_id"`
	Type     Type            `json:"type"`
	Priority int             `json:"priority"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Status   Status          `json:"status"`
	// CreatedBy names who queued it: an administrator ID, or "system"
	// (compliance, configuration changes).
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// NotBefore holds a not-now command back until then.
	NotBefore *time.Time `json:"not_before,omitempty"`
	// Deliveries counts how often the command was handed to the device.
	Deliveries  int        `json:"deliveries"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// Message is the device's error message (StatusError, StatusNotNow).
	Message string `json:"message,omitempty"`
	// Result is what the device returned (device info, an app list).
	Result json.RawMessage `json:"result,omitempty"`
}

// Result is what a device reports for a command it was given.
type Result struct {
	CommandID string
	Status    Status // StatusAcknowledged, StatusError or StatusNotNow
	Message   string
	Data      json.RawMessage
}

// Query filters a listing of commands. Zero fields do not filter.
type Query struct {
	DeviceID string
	// Open selects commands not in a final state (the device's queue);
	// Final selects the others (its history).
	Open, Final bool
	// After and Limit page in ID order; Limit is capped at MaxPage.
	After string
	Limit int
}

// MaxPage caps one listing.
const MaxPage = 500

// Errors with stable codes.
var (
	// ErrIdle: nothing is due for the device.
	ErrIdle = errs.E(errs.NotFound, "idle", "no command is due")
	// ErrUnknownCommand: a result for a command not queued for this device.
	ErrUnknownCommand = errs.E(errs.NotFound, "unknown_command", "no such command was queued for this device")
	// ErrNotFound: an unknown command ID in the operator API.
	ErrNotFound = errs.E(errs.NotFound, "command_not_found", "no such command")
	// ErrFinal: cancel of a command that already completed.
	ErrFinal = errs.E(errs.Conflict, "command_final", "the command has already completed")
)

// Store keeps the queue. Implementations: sqlstore (both backends),
// checked by commandtest.
type Store interface {
	// Enqueue stores every command in one transaction: all or none. The
	// commands have their IDs (UUIDv7), CreatedAt and ExpiresAt set and
	// status pending. A device that does not exist or is removed fails the
	// whole call with errs.ErrNotFound. A SyncConfig command for a device
	// that already has one pending is not stored a second time (the pending
	// one fetches the newest configuration when it is delivered); the
	// returned count excludes it, and Enqueue sets its ID to "" so that the
	// caller knows which commands were stored. Only pending ones count: one
	// already delivered (sent, not-now) may have fetched the configuration
	// before the change, so the new one is queued behind it.
	Enqueue(ctx context.Context, cmds []*Command) (int, error)
	// Next hands out the device's next due command and records the
	// delivery (status sent, Deliveries+1, SentAt now): among commands
	// pending, sent, or not-now with NotBefore ≤ now, and ExpiresAt > now,
	// the highest priority, then the lowest ID. ErrIdle when none is due.
	Next(ctx context.Context, deviceID string, now time.Time) (*Command, error)
	// Due reports whether Next at now would hand the device a command,
	// without recording a delivery: a read, for callers that most often
	// find nothing due.
	Due(ctx context.Context, deviceID string, now time.Time) (bool, error)
	// Complete records a device's result for one of its commands and
	// returns the command as stored. Only a command of deviceID that was
	// delivered (sent) takes the result; a not-now result sets NotBefore to
	// now+NotNowDelay. A not-now command also takes a final result (the
	// device ran it after all), while a second not-now result for it is a
	// duplicate. A command already final is returned unchanged with
	// duplicate true. A command unknown for deviceID, or never delivered, is
	// ErrUnknownCommand.
	Complete(ctx context.Context, deviceID string, r Result, now time.Time) (c *Command, duplicate bool, err error)
	// Cancel makes an open command cancelled; ErrNotFound for an unknown
	// ID, ErrFinal for a final one.
	Cancel(ctx context.Context, id string, now time.Time) (*Command, error)
	// Command returns one command, or ErrNotFound.
	Command(ctx context.Context, id string) (*Command, error)
	// ListCommands lists commands matching q in ID order.
	ListCommands(ctx context.Context, q Query) ([]*Command, error)
	// ExpireCommands marks open commands whose ExpiresAt ≤ now expired, at
	// most limit of them, and returns how many.
	ExpireCommands(ctx context.Context, now time.Time, limit int) (int, error)
	// PruneCommands deletes final commands created before before, at most
	// limit of them, and returns how many. Open commands are kept whatever
	// their age.
	PruneCommands(ctx context.Context, before time.Time, limit int) (int, error)
}

// NewCommand is what an administrator (or the system) asks for; Service.Send
// turns it into one Command per device.
type NewCommand struct {
	Type Type `json:"type"`
	// Priority nil takes the type's default (DefaultPriority); otherwise it
	// must lie in MinPriority..MaxPriority.
	Priority *int            `json:"priority,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	// TTL is the command's lifetime; zero takes DefaultTTL, at most MaxTTL.
	TTL time.Duration `json:"-"`
	// CreatedBy is an administrator ID or "system".
	CreatedBy string `json:"-"`
}
