// Package syncml is the OMA-DM 1.2 SyncML message model that Windows MDM
// speaks (MS-MDM), with a decoder hardened for untrusted bytes and an
// encoder that writes what the Windows DM client expects.
//
// Its promise: Decode never allocates beyond MaxBody bytes of input, refuses
// DTDs and entity declarations, nesting deeper than MaxDepth and more than
// MaxElements elements, checking each token before the decoder acts on it
// (a limit crossed anywhere in a message is the reason it is refused,
// whatever else is wrong with it), and keeps the order of the commands in a
// SyncBody (the order is the protocol: the device runs them in order, and
// Status elements refer to them by CmdID).
// Encode(Decode(b)) is a fixed point: Decode(Encode(m)) == m for every
// message m whose strings are XML text.
//
// Specifications:
//   - OMA-TS-DM_RepPro-V1_2 (representation protocol: SyncHdr, SyncBody,
//     commands, Item, Meta) and OMA-TS-DM_Protocol-V1_2 (packages 0-4,
//     session, MsgID/CmdID rules).
//   - [MS-MDM] https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-mdm/
//     §2.2 message syntax, §3 protocol details, §4 examples.
//   - https://learn.microsoft.com/en-us/windows/client-management/oma-dm-protocol-support
//     (supported commands, SyncML namespace "SYNCML:SYNCML1.2", Meta in
//     "syncml:metinf", status codes).
package syncml

import (
	"errors"
	"strings"
)

// Namespaces. Windows writes the SyncML element with the default
// namespace SYNCML:SYNCML1.2 and every Meta child (Format, Type,
// MaxMsgSize) with xmlns="syncml:metinf" (oma-dm-protocol-support, "SyncML
// response status codes" examples; MS-MDM §4).
const (
	NamespaceSyncML = "SYNCML:SYNCML1.2"
	NamespaceMetInf = "syncml:metinf"
	// VerDTD and VerProto are the only versions Windows speaks.
	VerDTD   = "1.2"
	VerProto = "DM/1.2"
	// ContentType is the media type of a SyncML message over HTTP
	// (MS-MDM §2.1: application/vnd.syncml.dm+xml).
	ContentType = "application/vnd.syncml.dm+xml"
)

// Wire limits: MaxBody before a message is read, the others on each token
// before the decoder acts on it.
const (
	// MaxBody bounds one message in bytes. Windows advertises MaxMsgSize
	// 65535 in its SyncHdr Meta by default (oma-dm-protocol-support); a
	// Results message with a large node (a WLAN profile, an app inventory)
	// can be bigger, so we allow 1 MiB and no more.
	MaxBody = 1 << 20
	// MaxDepth bounds element nesting. A real message nests SyncML >
	// SyncBody > Atomic > Replace > Item > Meta > Format: 7 levels; Atomic
	// may contain Sequence (RepPro §6.6.2), so 16 leaves room and stops a
	// million-deep nesting bomb before it is decoded.
	MaxDepth = 16
	// MaxElements bounds the elements of one message (a Get of every
	// DevDetail node is ~100).
	MaxElements = 50_000
	// MaxCommands bounds the commands of one message, nested ones included.
	MaxCommands = 1000
	// MaxItems bounds the items of one command.
	MaxItems = 1000
	// MaxAtomicDepth bounds Atomic/Sequence nesting.
	MaxAtomicDepth = 3
)

// Alert codes (OMA-TS-DM_Protocol §8.7, MS-MDM §2.2.7.2).
const (
	AlertDisplay         = "1100"
	AlertServerInitiated = "1200" // the session was started by a push (package 0)
	AlertClientInitiated = "1201" // the client started the session
	AlertNextMessage     = "1222" // more messages to come in this package
	AlertSessionAbort    = "1223"
	AlertClientEvent     = "1224" // Windows: com.microsoft/MDM/LoginStatus, AADJ state …
	AlertGeneric         = "1226" // generic alert, e.g. unenrollment
)

// Generic alert types Windows sends in a 1226 Alert's Meta/Type
// (disconnecting-from-mdm-unenrollment).
const (
	AlertTypeUserUnenroll = "com.microsoft:mdm.unenrollment.userrequest"
	AlertTypeLoginStatus  = "com.microsoft/MDM/LoginStatus"
)

// Status codes (OMA-TS-DM_RepPro §7; oma-dm-protocol-support "SyncML
// response status codes").
const (
	StatusOK              = "200"
	StatusAccepted        = "202" // accepted for processing (async: RemoteWipe, Reboot)
	StatusAuthenticated   = "212"
	StatusAtomicRollback  = "216"
	StatusNotExecuted     = "215"
	StatusBadRequest      = "400"
	StatusUnauthorized    = "401"
	StatusForbidden       = "403"
	StatusNotFound        = "404"
	StatusNotAllowed      = "405"
	StatusOptionalFeature = "406"
	StatusAlreadyExists   = "418"
	StatusCommandFailed   = "500"
	StatusAtomicFailed    = "507"
)

// Command element names.
const (
	CmdAlert    = "Alert"
	CmdStatus   = "Status"
	CmdResults  = "Results"
	CmdGet      = "Get"
	CmdReplace  = "Replace"
	CmdAdd      = "Add"
	CmdDelete   = "Delete"
	CmdExec     = "Exec"
	CmdCopy     = "Copy"
	CmdAtomic   = "Atomic"
	CmdSequence = "Sequence"
)

// IsCommand reports whether name is a SyncBody command element.
func IsCommand(name string) bool {
	switch name {
	case CmdAlert, CmdStatus, CmdResults, CmdGet, CmdReplace, CmdAdd, CmdDelete, CmdExec, CmdCopy, CmdAtomic, CmdSequence:
		return true
	}
	return false
}

// IsContainer reports whether a command holds other commands.
func IsContainer(name string) bool { return name == CmdAtomic || name == CmdSequence }

// Message is one SyncML message.
type Message struct {
	Header Header
	Body   Body
}

// Header is the SyncHdr (RepPro §6.1.7).
type Header struct {
	VerDTD    string
	VerProto  string
	SessionID string
	MsgID     string
	Target    string // Target/LocURI: the server URL in a device's message, the device ID in ours
	Source    string // Source/LocURI: the device ID in a device's message
	// SourceName is Source/LocName (a user name in some clients).
	SourceName string
	Cred       *Cred
	Meta       *Meta
}

// Cred is the SyncHdr credential; Windows authenticates with the TLS
// client certificate and sends none, but the element is part of the model.
type Cred struct {
	Meta *Meta
	Data string
}

// Body is the SyncBody: commands in order, then Final.
type Body struct {
	Commands []Command
	Final    bool
}

// Command is any SyncBody command; Name says which. Fields a command does
// not use stay empty.
type Command struct {
	Name       string // CmdAlert, CmdStatus …
	CmdID      string
	MsgRef     string // Status, Results
	CmdRef     string // Status, Results
	Cmd        string // Status: the name of the command answered
	TargetRef  string // Status, Results
	SourceRef  string // Status, Results
	NoResp     bool
	Correlator string // Alert 1226 in answer to an async Exec
	Meta       *Meta
	Data       string // Alert code, Status code
	Items      []Item
	Commands   []Command // Atomic, Sequence
}

// Item is one Item (RepPro §5.1.10).
type Item struct {
	Target string // Target/LocURI
	Source string // Source/LocURI
	Meta   *Meta
	Data   string
}

// Meta holds the metinf elements Windows uses.
type Meta struct {
	Format     string // chr, int, b64, bool, xml, node, null …
	Type       string // MIME type or an alert type
	MaxMsgSize string
}

// Errors of decoding. Each is wrapped with the detail.
var (
	ErrTooLarge  = errors.New("syncml: message too large")
	ErrDTD       = errors.New("syncml: DTDs and entity declarations are refused")
	ErrTooDeep   = errors.New("syncml: elements nested too deep")
	ErrMalformed = errors.New("syncml: malformed message")
	ErrTooMany   = errors.New("syncml: too many elements or commands")
)

// Count returns how many commands cmds hold, nested ones included.
func Count(cmds []Command) int {
	n := 0
	for _, c := range cmds {
		n += 1 + Count(c.Commands)
	}
	return n
}

// Status returns the first Item-less status code of c as an integer class
// check: OK reports 2xx.
func OK(code string) bool { return len(code) == 3 && strings.HasPrefix(code, "2") }
