package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Result statuses of a command (wire.CommandResult.Status).
const (
	ResultAcknowledged = string(command.StatusAcknowledged)
	ResultError        = string(command.StatusError)
	ResultNotNow       = string(command.StatusNotNow)
)

// CommandMessage is the agent's "show this text to the user" command
// (payload {"text": "…"}). The command package names no such type yet; the
// agent protocol carries it as any other verb.
const CommandMessage = "message"

// Limits of command payloads the agent parses (untrusted bytes from the
// Core), checked before decoding.
const (
	// MaxMessageText bounds the text of a message command.
	MaxMessageText = 4 << 10
	// MaxPassword bounds the password of set_password.
	MaxPassword = 256
	// MaxAppURL bounds the URL of install_app.
	MaxAppURL = 2 << 10
)

// ErrUnsupported is wrapped by the error of a command a device cannot run;
// the Core is told so with status "error" (never a silent acknowledgment).
var ErrUnsupported = errors.New("not supported")

// Unsupported returns the error of a command of type typ that by ("the
// Linux agent") cannot run: "restart is not supported by the Linux agent".
func Unsupported(typ, by string) error {
	return fmt.Errorf("%s is %w by %s", display(typ), ErrUnsupported, by)
}

// Executor runs the commands the Core sends (all but sync_config, which the
// Client runs itself). The Client calls it at most once per command ID:
// it remembers what it ran and re-reports the stored result when the Core
// delivers the same command again (delivery is at least once).
type Executor interface {
	// Execute runs cmd and returns its result: Status ResultAcknowledged,
	// ResultError or ResultNotNow (the device cannot run it now; the Core
	// sends it again later), a short Message, and Data (JSON, at most
	// command.MaxResultData bytes) for commands that return something. The
	// Client sets CommandID. An error return is reported as ResultError
	// with the error's text: wrap ErrUnsupported (see Unsupported) for a
	// command the device does not support.
	Execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error)
}

// CollectorExecutor is the default Executor: it answers device_info and
// installed_apps from Collector and refuses every other command.
type CollectorExecutor struct {
	Collector Collector
}

// Execute implements Executor.
func (e CollectorExecutor) Execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error) {
	switch cmd.Type {
	case string(command.DeviceInfo), string(command.InstalledApps):
		return InventoryResult(ctx, e.Collector, cmd.Type)
	}
	return wire.CommandResult{}, Unsupported(cmd.Type, "this agent")
}

// Acknowledged returns an acknowledged result with message msg.
func Acknowledged(msg string) wire.CommandResult {
	return wire.CommandResult{Status: ResultAcknowledged, Message: msg}
}

// NotNow returns a not-now result: the device cannot run the command now
// (locked, busy) and the Core sends it again later.
func NotNow(reason string) wire.CommandResult {
	return wire.CommandResult{Status: ResultNotNow, Message: reason}
}

// DeviceInfoData is the Data of a device_info result.
type DeviceInfoData struct {
	Platform   string      `json:"platform"`
	OSVersion  string      `json:"os_version"`
	HardwareID string      `json:"hardware_id"`
	Model      string      `json:"model,omitempty"`
	Name       string      `json:"name,omitempty"`
	Info       device.Info `json:"info"`
}

// InstalledAppsData is the Data of an installed_apps result. A list that
// would not fit command.MaxResultData is cut (apps in name order): Total
// counts them all, Truncated and Note say so.
type InstalledAppsData struct {
	Apps      []device.App `json:"apps"`
	Total     int          `json:"total"`
	Truncated bool         `json:"truncated,omitempty"`
	Note      string       `json:"note,omitempty"`
}

// resultDataHeadroom is kept free of apps in an installed_apps result for
// the object around them (total, note).
const resultDataHeadroom = 1 << 10

// InventoryResult collects the device with col (see Collect) and returns
// the acknowledged result of a device_info or installed_apps command, its
// Data within command.MaxResultData.
func InventoryResult(ctx context.Context, col Collector, typ string) (wire.CommandResult, error) {
	inv, err := Collect(ctx, col)
	if err != nil {
		return wire.CommandResult{}, err
	}
	var data any
	switch typ {
	case string(command.DeviceInfo):
		data = DeviceInfoData{Platform: inv.Platform, OSVersion: inv.OSVersion, HardwareID: inv.HardwareID,
			Model: inv.Model, Name: inv.Name, Info: inv.Info}
	case string(command.InstalledApps):
		data = FitApps(inv.Apps, command.MaxResultData)
	default:
		return wire.CommandResult{}, fmt.Errorf("agent: %s is not an inventory command", display(typ))
	}
	b, err := json.Marshal(data)
	if err != nil {
		return wire.CommandResult{}, fmt.Errorf("agent: encode %s: %w", typ, err)
	}
	if len(b) > command.MaxResultData {
		// Normalize bounds every field, so only a broken invariant gets here.
		return wire.CommandResult{}, fmt.Errorf("agent: the %s result is %d bytes, over the %d-byte limit", typ, len(b), command.MaxResultData)
	}
	return wire.CommandResult{Status: ResultAcknowledged, Data: b}, nil
}

// FitApps returns the apps as InstalledAppsData whose JSON encoding is at
// most limit bytes: the first apps that fit, with a note when some were
// left out, rather than a result the Core would refuse.
func FitApps(apps []device.App, limit int) InstalledAppsData {
	out := InstalledAppsData{Apps: apps, Total: len(apps)}
	if out.Apps == nil {
		out.Apps = []device.App{}
	}
	budget := limit - resultDataHeadroom
	used := 0
	for i, a := range apps {
		b, _ := json.Marshal(a) // a struct of strings cannot fail
		used += len(b) + 1      // and its comma
		if used > budget {
			out.Apps = apps[:i]
			out.Truncated = true
			out.Note = fmt.Sprintf("%d of %d apps listed: the full list exceeds the %d-byte result limit", i, len(apps), limit)
			break
		}
	}
	return out
}

// InstallAppPayload is the payload of install_app.
type InstallAppPayload struct {
	AppID string `json:"app_id"`
	URL   string `json:"url,omitempty"`
}

// RemoveAppPayload is the payload of remove_app.
type RemoveAppPayload struct {
	AppID string `json:"app_id"`
}

// SetPasswordPayload is the payload of set_password. Its String never
// shows the password.
type SetPasswordPayload struct {
	Password string `json:"password"`
}

// String hides the password from logs.
func (SetPasswordPayload) String() string { return "{password:<hidden>}" }

// MessagePayload is the payload of a message command.
type MessagePayload struct {
	Text string `json:"text"`
}

// decodePayload decodes the payload of cmd (untrusted bytes from the Core)
// into v, bounded by command.MaxPayload. Unknown fields are ignored: a
// newer Core may add some, and the agent still does what it understands.
func decodePayload(cmd wire.Command, v any) error {
	if len(cmd.Payload) > command.MaxPayload {
		return fmt.Errorf("the %s payload is larger than %d bytes", display(cmd.Type), command.MaxPayload)
	}
	if len(cmd.Payload) == 0 {
		return fmt.Errorf("the %s command has no payload", display(cmd.Type))
	}
	if err := json.Unmarshal(cmd.Payload, v); err != nil {
		return fmt.Errorf("the %s payload is not the expected JSON object: %w", display(cmd.Type), err)
	}
	return nil
}

// ParseInstallApp parses and checks an install_app payload: an app ID of
// printable characters within wire.MaxField bytes, and an optional https
// URL within MaxAppURL bytes.
func ParseInstallApp(cmd wire.Command) (InstallAppPayload, error) {
	var p InstallAppPayload
	if err := decodePayload(cmd, &p); err != nil {
		return p, err
	}
	if err := checkAppID(p.AppID); err != nil {
		return p, err
	}
	if p.URL != "" {
		if len(p.URL) > MaxAppURL {
			return p, fmt.Errorf("the app URL is longer than %d bytes", MaxAppURL)
		}
		u, err := url.Parse(p.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return p, errors.New("the app URL must be https://host/…")
		}
	}
	return p, nil
}

// ParseRemoveApp parses and checks a remove_app payload.
func ParseRemoveApp(cmd wire.Command) (RemoveAppPayload, error) {
	var p RemoveAppPayload
	if err := decodePayload(cmd, &p); err != nil {
		return p, err
	}
	return p, checkAppID(p.AppID)
}

// ParseSetPassword parses and checks a set_password payload: a password of
// valid UTF-8 without control characters, within MaxPassword bytes. Empty
// is allowed (clear_passcode has its own verb, but a platform may accept
// an empty password as "none").
func ParseSetPassword(cmd wire.Command) (SetPasswordPayload, error) {
	var p SetPasswordPayload
	if err := decodePayload(cmd, &p); err != nil {
		return p, err
	}
	if len(p.Password) > MaxPassword {
		return p, fmt.Errorf("the password is longer than %d bytes", MaxPassword)
	}
	if !utf8.ValidString(p.Password) || strings.IndexFunc(p.Password, unicode.IsControl) >= 0 {
		return p, errors.New("the password holds invalid or control characters")
	}
	return p, nil
}

// ParseMessage parses and checks a message payload: non-empty text within
// MaxMessageText bytes. The text may hold anything; show it with
// DisplayText.
func ParseMessage(cmd wire.Command) (MessagePayload, error) {
	var p MessagePayload
	if err := decodePayload(cmd, &p); err != nil {
		return p, err
	}
	if strings.TrimSpace(p.Text) == "" {
		return p, errors.New("the message has no text")
	}
	if len(p.Text) > MaxMessageText {
		return p, fmt.Errorf("the message is longer than %d bytes", MaxMessageText)
	}
	return p, nil
}

// DisplayText returns text from the Core made safe to print on a terminal:
// valid UTF-8, control characters other than newline and tab replaced, so
// that it cannot drive the terminal it is printed on.
func DisplayText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (unicode.IsPrint(r) || unicode.IsSpace(r) && !unicode.IsControl(r)) {
			return r
		}
		return '\uFFFD'
	}, s)
}

func checkAppID(id string) error {
	switch {
	case id == "":
		return errors.New("the payload names no app_id")
	case len(id) > wire.MaxField:
		return fmt.Errorf("the app_id is longer than %d bytes", wire.MaxField)
	case !utf8.ValidString(id) || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0:
		return errors.New("the app_id holds spaces, invalid or non-printable characters")
	}
	return nil
}
