package apple

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/policy"
)

// RequestTypes of the commands Custos sends (Apple, "Commands and
// Queries").
const (
	ReqDeviceLock           = "DeviceLock"
	ReqEraseDevice          = "EraseDevice"
	ReqClearPasscode        = "ClearPasscode"
	ReqDeviceInformation    = "DeviceInformation"
	ReqInstalledAppList     = "InstalledApplicationList"
	ReqRestartDevice        = "RestartDevice"
	ReqInstallApplication   = "InstallApplication"
	ReqRemoveApplication    = "RemoveApplication"
	ReqInstallProfile       = "InstallProfile"
	ReqRemoveProfile        = "RemoveProfile"
	ReqSecurityInfo         = "SecurityInfo"
	ReqProfileList          = "ProfileList"
	ReqDeviceConfigured     = "DeviceConfigured"
	ReqDeclarativeManagemnt = "DeclarativeManagement"
)

// DeviceInformationQueries are the queries of a device_info command
// (Apple, "DeviceInformationCommand.Command.Queries").
var DeviceInformationQueries = []string{
	"DeviceName", "OSVersion", "BuildVersion", "ModelName", "Model", "ProductName", "SerialNumber", "UDID",
	"IMEI", "PhoneNumber", "IsSupervised", "DeviceCapacity", "AvailableDeviceCapacity", "WiFiMAC",
}

// wire is one command as the device receives it.
type wire struct {
	CommandUUID string
	Command     map[string]any
}

// ErrUnsupported: a command type Apple MDM has no form for. Such a
// command is completed as an error without reaching the device.
var ErrUnsupported = errs.E(errs.Invalid, "unsupported_command", "Apple MDM has no command of this type")

// render returns the plist of cmd for the device, or an error when the
// command is completed on the server's side (*expanded, ErrUnsupported,
// a raw command that cannot be sent).
func (h *Handler) render(ctx context.Context, c *Caller, cmd *command.Command) ([]byte, error) {
	body := map[string]any{}
	var p map[string]string
	if cmd.Type != command.Raw && len(cmd.Payload) > 0 {
		_ = json.Unmarshal(cmd.Payload, &p) // validated by command.Service: string members
	}
	switch cmd.Type {
	case command.Lock:
		body["RequestType"] = ReqDeviceLock
		if p["message"] != "" {
			body["Message"] = p["message"]
		}
		if p["phone_number"] != "" {
			body["PhoneNumber"] = p["phone_number"]
		}
		if p["pin"] != "" { // macOS only; iOS and iPadOS ignore it
			body["PIN"] = p["pin"]
		}
	case command.WipeDevice:
		body["RequestType"] = ReqEraseDevice
		if p["pin"] != "" {
			body["PIN"] = p["pin"]
		}
	case command.ClearPasscode:
		if c.Enrollment == nil || c.Enrollment.UnlockToken == "" {
			return nil, &unsendable{errors.New("clear_passcode: the device sent no UnlockToken")}
		}
		plain, err := h.Box.Open(c.Enrollment.UnlockToken)
		if err != nil {
			return nil, &unsendable{fmt.Errorf("clear_passcode: open the unlock token: %w", err)}
		}
		tok, err := base64.StdEncoding.DecodeString(plain)
		if err != nil {
			return nil, &unsendable{fmt.Errorf("clear_passcode: %w", err)}
		}
		body["RequestType"], body["UnlockToken"] = ReqClearPasscode, tok
	case command.DeviceInfo:
		body["RequestType"], body["Queries"] = ReqDeviceInformation, DeviceInformationQueries
	case command.InstalledApps:
		body["RequestType"] = ReqInstalledAppList
	case command.Restart:
		body["RequestType"] = ReqRestartDevice
	case command.InstallApp:
		body["RequestType"] = ReqInstallApplication
		if p["url"] != "" {
			body["ManifestURL"] = p["url"]
		} else {
			body["Identifier"] = p["app_id"]
		}
		body["ManagementFlags"] = 1 // remove the app with the MDM profile
	case command.RemoveApp:
		body["RequestType"], body["Identifier"] = ReqRemoveApplication, p["app_id"]
	case command.SyncConfig:
		return nil, h.expandSync(ctx, c)
	case command.WipeWork:
		return nil, h.expandWipeWork(ctx, c)
	case command.Raw:
		b, err := RawBody(cmd.Payload)
		if err != nil {
			return nil, &unsendable{err}
		}
		body = b
	default: // message, set_password
		return nil, &unsendable{fmt.Errorf("%w: %s", ErrUnsupported, cmd.Type)}
	}
	out, err := plist.Marshal(wire{CommandUUID: cmd.ID, Command: body})
	if err != nil {
		return nil, &unsendable{fmt.Errorf("render %s: %w", cmd.Type, err)}
	}
	return out, nil
}

// RawBody returns the Apple command of a raw command's payload
// {"platform": "apple", "body": {"RequestType": …}}: the body is sent as
// is, with {"$data": base64} standing for <data>. It must name a
// RequestType and render to at most MaxRawCommand bytes.
func RawBody(payload json.RawMessage) (map[string]any, error) {
	var raw struct {
		Platform string          `json:"platform"`
		Body     json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("raw command: %w", err)
	}
	if raw.Platform != "apple" {
		return nil, fmt.Errorf("raw command for platform %q, not apple", raw.Platform)
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("raw command: %w", err)
	}
	conv, err := toPlist(v)
	if err != nil {
		return nil, fmt.Errorf("raw command: %w", err)
	}
	body, ok := conv.(map[string]any)
	if !ok {
		return nil, errors.New("raw command: the body must be a dict")
	}
	if rt, _ := body["RequestType"].(string); rt == "" {
		return nil, errors.New("raw command: the body names no RequestType")
	}
	if b, err := plist.Marshal(body); err != nil || len(b) > MaxRawCommand {
		return nil, fmt.Errorf("raw command: the body must render to at most %d bytes of plist", MaxRawCommand)
	}
	return body, nil
}

// sendRaw queues an Apple command for one device and returns its ID.
func (h *Handler) sendRaw(ctx context.Context, deviceID string, body map[string]any) (string, error) {
	b, err := json.Marshal(map[string]any{"platform": "apple", "body": jsonForm(body)})
	if err != nil {
		return "", err
	}
	cs, err := h.Commands.Send(ctx, []string{deviceID}, command.NewCommand{Type: command.Raw, Payload: b, CreatedBy: "system"})
	if err != nil {
		return "", err
	}
	return cs[0].ID, nil
}

// jsonForm is toPlist's inverse for the values rendering produces.
func jsonForm(v any) any {
	switch v := v.(type) {
	case []byte:
		return map[string]any{plistData: base64.StdEncoding.EncodeToString(v)}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonForm(e)
		}
		return out
	}
	return v
}

// expandSync turns a configuration sync into one InstallProfile command
// per policy item Apple devices can apply, and a RemoveProfile for each
// profile installed by an earlier sync whose item is no longer in the
// configuration. Each is recorded, so that the device's answer becomes
// the item's state (policy.RecordStatus); items with no Apple form are
// recorded as failed, "not applicable". When every profile command of the
// version is answered, the device has applied its configuration
// (device.Service.Acknowledge: enrolled → active).
func (h *Handler) expandSync(ctx context.Context, c *Caller) error {
	d, err := h.device(ctx, c)
	if err != nil {
		return err
	}
	eff, err := h.Config.Effective(ctx, d)
	if err != nil {
		return err
	}
	now := h.now()
	var (
		pcs     []ProfileCommand
		skipped []policy.ItemState
		current = map[string]bool{}
	)
	for _, it := range eff.Items {
		prof, err := RenderProfile(h.prefix(), it)
		if err != nil {
			skipped = append(skipped, policy.ItemState{ID: it.ID, Revision: it.Revision, Status: policy.ItemFailed,
				Error: clip(err.Error(), policy.MaxStateError), At: now})
			continue
		}
		current[it.ID] = true
		id, err := h.sendRaw(ctx, d.ID, map[string]any{"RequestType": ReqInstallProfile, "Payload": prof})
		if err != nil {
			return err
		}
		pcs = append(pcs, ProfileCommand{CommandID: id, DeviceID: d.ID, ItemID: it.ID, Revision: it.Revision,
			Version: eff.Version, Status: policy.ItemPending, CreatedAt: now})
	}
	installed, err := h.Store.InstalledProfiles(ctx, d.ID)
	if err != nil {
		return err
	}
	for _, item := range installed {
		if current[item] {
			continue
		}
		id, err := h.sendRaw(ctx, d.ID, map[string]any{"RequestType": ReqRemoveProfile, "Identifier": h.prefix() + "." + item})
		if err != nil {
			return err
		}
		pcs = append(pcs, ProfileCommand{CommandID: id, DeviceID: d.ID, ItemID: item, Revision: 1,
			Version: eff.Version, Remove: true, Status: policy.ItemPending, CreatedAt: now})
	}
	if err := h.Store.AddProfileCommands(ctx, pcs); err != nil {
		return err
	}
	if len(skipped) > 0 {
		if err := h.Config.RecordStatus(ctx, d, eff.Version, skipped); err != nil {
			return err
		}
	}
	if len(pcs) == 0 {
		if err := h.Devices.Acknowledge(ctx, d, eff.Version); err != nil {
			return err
		}
	}
	ids := make([]string, len(pcs))
	for i, p := range pcs {
		ids[i] = p.CommandID
	}
	data, _ := json.Marshal(map[string]any{"version": eff.Version, "commands": ids, "not_applicable": len(skipped)})
	return &expanded{data: data}
}

// expandWipeWork removes every profile Custos installed (the work data
// Apple MDM manages: accounts, Wi-Fi, VPN, certificates and policies go
// with their profiles).
func (h *Handler) expandWipeWork(ctx context.Context, c *Caller) error {
	installed, err := h.Store.InstalledProfiles(ctx, c.DeviceID)
	if err != nil {
		return err
	}
	now := h.now()
	ids := []string{}
	var pcs []ProfileCommand
	for _, item := range installed {
		id, err := h.sendRaw(ctx, c.DeviceID, map[string]any{"RequestType": ReqRemoveProfile, "Identifier": h.prefix() + "." + item})
		if err != nil {
			return err
		}
		ids = append(ids, id)
		pcs = append(pcs, ProfileCommand{CommandID: id, DeviceID: c.DeviceID, ItemID: item, Revision: 1,
			Version: "wipe", Remove: true, Status: policy.ItemPending, CreatedAt: now})
	}
	if err := h.Store.AddProfileCommands(ctx, pcs); err != nil {
		return err
	}
	data, _ := json.Marshal(map[string]any{"commands": ids})
	return &expanded{data: data}
}

// absorb feeds an answered command into inventory, configuration status
// and compliance. Its failures are logged: the result is stored, and a
// failing secondary never fails the device's request.
func (h *Handler) absorb(ctx context.Context, c *Caller, cmd *command.Command, status string, body []byte) {
	if err := h.absorbErr(ctx, c, cmd, status, body); err != nil {
		h.log(ctx).WarnContext(ctx, "apple: recording a command's result failed", "device", c.DeviceID, "command", cmd.ID, "err", err)
	}
}

func (h *Handler) absorbErr(ctx context.Context, c *Caller, cmd *command.Command, status string, body []byte) error {
	if status == StatusNotNow {
		return nil
	}
	requestType := ""
	switch cmd.Type {
	case command.DeviceInfo:
		requestType = ReqDeviceInformation
	case command.InstalledApps:
		requestType = ReqInstalledAppList
	case command.Raw:
		b, err := RawBody(cmd.Payload)
		if err != nil {
			return nil
		}
		requestType, _ = b["RequestType"].(string)
		if requestType == ReqInstallProfile || requestType == ReqRemoveProfile {
			return h.profileResult(ctx, c, cmd, status)
		}
	default:
		return nil
	}
	if status != StatusAcknowledged {
		return nil
	}
	var (
		info     *device.Info
		software []device.App
	)
	d, err := h.device(ctx, c)
	if err != nil {
		return err
	}
	inv, err := h.Devices.Store.Inventory(ctx, d.ID)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		inv = &device.Inventory{}
	case err != nil:
		return err
	}
	switch requestType {
	case ReqDeviceInformation:
		var r struct{ QueryResponses map[string]any }
		if err := plist.Unmarshal(body, &r); err != nil {
			return err
		}
		i := mergeDeviceInformation(inv.Info, r.QueryResponses)
		info = &i
	case ReqSecurityInfo:
		var r struct{ SecurityInfo map[string]any }
		if err := plist.Unmarshal(body, &r); err != nil {
			return err
		}
		i := mergeSecurityInfo(inv.Info, r.SecurityInfo)
		info = &i
	case ReqInstalledAppList:
		var r struct {
			InstalledApplicationList []struct {
				Identifier, Name, ShortVersion, Version string
			}
		}
		if err := plist.Unmarshal(body, &r); err != nil {
			return err
		}
		software = make([]device.App, 0, len(r.InstalledApplicationList))
		for _, a := range r.InstalledApplicationList {
			name := a.Name
			if name == "" {
				name = a.Identifier
			}
			v := a.ShortVersion
			if v == "" {
				v = a.Version
			}
			if name != "" {
				software = append(software, device.App{Name: clip(name, device.MaxField), Version: clip(v, device.MaxField), ID: clip(a.Identifier, device.MaxField)})
			}
		}
		info = &inv.Info
	default:
		return nil
	}
	if err := h.Devices.Report(ctx, d, *info, software); err != nil {
		return err
	}
	if h.OnReport != nil {
		h.OnReport(ctx, d)
	}
	return nil
}

// profileResult records the device's answer to a profile command as its
// policy item's state.
func (h *Handler) profileResult(ctx context.Context, c *Caller, cmd *command.Command, status string) error {
	pc, err := h.Store.ProfileCommand(ctx, cmd.ID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil // a raw profile command of an administrator
	}
	if err != nil {
		return err
	}
	st := policy.ItemApplied
	if status != StatusAcknowledged {
		st = policy.ItemFailed
	}
	pending, err := h.Store.SetProfileStatus(ctx, cmd.ID, st)
	if err != nil {
		return err
	}
	if pc.Remove || pc.Version == "wipe" {
		return nil
	}
	d, err := h.device(ctx, c)
	if err != nil {
		return err
	}
	msg := ""
	if st == policy.ItemFailed {
		msg = cmd.Message
	}
	if err := h.Config.RecordStatus(ctx, d, pc.Version, []policy.ItemState{{ID: pc.ItemID, Revision: pc.Revision, Status: st, Error: clip(msg, policy.MaxStateError)}}); err != nil {
		return err
	}
	if pending == 0 {
		return h.Devices.Acknowledge(ctx, d, pc.Version)
	}
	return nil
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case int64, uint64, float64, int:
		return fmt.Sprint(v)
	}
	return ""
}

// mergeDeviceInformation overlays a DeviceInformation answer (Apple,
// "DeviceInformationResponse.QueryResponses") on the stored info.
func mergeDeviceInformation(info device.Info, q map[string]any) device.Info {
	set := func(dst *string, key string) {
		if v := str(q[key]); v != "" {
			*dst = clip(v, device.MaxField)
		}
	}
	info.Manufacturer = "Apple"
	set(&info.Hostname, "DeviceName")
	set(&info.OSVersion, "OSVersion")
	set(&info.Model, "ProductName")
	set(&info.SerialNumber, "SerialNumber")
	set(&info.IMEI, "IMEI")
	set(&info.PhoneNumber, "PhoneNumber")
	if info.Model == "" {
		set(&info.Model, "Model")
	}
	attrs := map[string]string{}
	for k, v := range info.Attributes {
		attrs[k] = v
	}
	for key, attr := range map[string]string{"BuildVersion": "build_version", "ModelName": "model_name", "UDID": "udid",
		"IsSupervised": "supervised", "DeviceCapacity": "device_capacity_gb", "AvailableDeviceCapacity": "available_capacity_gb", "WiFiMAC": "wifi_mac"} {
		if v := str(q[key]); v != "" {
			attrs[attr] = clip(v, device.MaxField)
		}
	}
	if len(attrs) > 0 {
		info.Attributes = attrs
	}
	return info
}

// Attributes the SecurityInfo answer sets (Apple,
// "SecurityInfoResponse.SecurityInfo"): passcode_present, passcode_compliant,
// encrypted (iOS HardwareEncryptionCaps data protection, or macOS
// FDE_Enabled).
const (
	AttrPasscodePresent   = "passcode_present"
	AttrPasscodeCompliant = "passcode_compliant"
	AttrEncrypted         = "encrypted"
)

func mergeSecurityInfo(info device.Info, s map[string]any) device.Info {
	attrs := map[string]string{}
	for k, v := range info.Attributes {
		attrs[k] = v
	}
	if v := str(s["PasscodePresent"]); v != "" {
		attrs[AttrPasscodePresent] = v
	}
	if v := str(s["PasscodeCompliant"]); v != "" {
		attrs[AttrPasscodeCompliant] = v
	}
	switch caps := s["HardwareEncryptionCaps"].(type) {
	case int64:
		attrs[AttrEncrypted] = str(caps&1 == 1)
	case uint64:
		attrs[AttrEncrypted] = str(caps&1 == 1)
	}
	if v, ok := s["FDE_Enabled"].(bool); ok {
		attrs[AttrEncrypted] = str(v)
	}
	info.Attributes = attrs
	return info
}
