package windows

import (
	"context"
	"time"

	"github.com/custos-uem/custos/device"
)

// Session is the state of one OMA-DM session kept between its messages.
// A session's next message may reach another Core process sharing the
// database, so everything the answer depends on is here, not in memory.
type Session struct {
	DeviceID string
	// SessionID is the device's SyncHdr SessionID. Windows numbers sessions
	// per device (MS-MDM §3.1.5.1), so a session is keyed by device and ID:
	// two devices using the same number never share state.
	SessionID string
	// MsgID is the MsgID of the device's last message we answered (ours
	// carries the same number, MS-MDM §4).
	MsgID int
	// CmdID is the last CmdID we used in this session; ours increase.
	CmdID int
	// Pending are the commands we sent and the device has not answered.
	Pending []Pending
	// Delivered lists the queue commands handed out in this session: one
	// the device left unanswered is not handed out again in the same
	// session (it waits for the next, the queue's at-least-once rule).
	Delivered []string
	UpdatedAt time.Time
}

// Pending is one command of ours awaiting the device's Status.
type Pending struct {
	MsgID int    `json:"m"` // the message of ours that carried it
	CmdID int    `json:"c"`
	Op    string `json:"o"` // OpCommand, OpConfig, OpPush …
	// Command is the queue command it renders (command.Command.ID).
	Command string `json:"q,omitempty"`
	LocURI  string `json:"u,omitempty"`
	// Item, Revision and Version name the configuration item it applies
	// (OpConfig).
	Item     string `json:"i,omitempty"`
	Revision int    `json:"r,omitempty"`
	Version  string `json:"v,omitempty"`
	// Tolerate lists status codes that count as success (404 for the
	// Delete before a profile's Add: there was nothing to delete).
	Tolerate []string `json:"t,omitempty"`
	// Fail, when set, is an error known before sending (an item Windows
	// cannot apply); the command carries nothing to the device.
	Fail string `json:"f,omitempty"`
	// Token is the push channel stored when an OpPush Get was sent: an
	// unchanged answer is not written again.
	Token string `json:"k,omitempty"`
}

// Pending operations.
const (
	OpCommand = "command" // part of a queue command
	OpConfig  = "config"  // part of a configuration item of a sync_config command
	OpPush    = "push"    // the DMClient push nodes
)

// SessionStore keeps sessions. Implementations: sqlstore (both backends),
// checked by windowstest.
type SessionStore interface {
	// WindowsSession returns the device's session with that ID, or
	// errs.ErrNotFound. Another device's session is never returned.
	WindowsSession(ctx context.Context, deviceID, sessionID string) (*Session, error)
	// SaveWindowsSession stores s. With prevMsgID 0 it creates the session
	// or replaces the device's session of that ID (a package 1 starts it
	// over); otherwise it updates the session only if its stored MsgID is
	// still prevMsgID, else errs.ErrConflict (a replayed or concurrent
	// message) and nothing changes. An unknown device is errs.ErrNotFound.
	SaveWindowsSession(ctx context.Context, s *Session, prevMsgID int) error
	// EndWindowsSession deletes the session if its MsgID is still
	// prevMsgID; errs.ErrConflict otherwise, and none when it is absent.
	EndWindowsSession(ctx context.Context, deviceID, sessionID string, prevMsgID int) error
	// WindowsDeviceState returns the device's stored inventory and push
	// token in one read. A device with neither, or an unknown device, has
	// a zero DeviceState.
	WindowsDeviceState(ctx context.Context, deviceID string) (*DeviceState, error)
	// SweepWindowsSessions deletes sessions last updated before before and
	// returns how many.
	SweepWindowsSessions(ctx context.Context, before time.Time) (int, error)
}

// DeviceState is what a session reads of its device besides the device
// itself: the inventory (to store a changed DevInfo) and the push token (to
// provision the channel). One read, not one per store: a session's cost is
// mostly its statements.
type DeviceState struct {
	// Reported is whether an inventory is stored; Info and ReportedAt are
	// its info and time.
	Reported   bool
	Info       device.Info
	ReportedAt time.Time
	// Push is the device's push token, nil when it has none.
	Push *device.PushToken
}
