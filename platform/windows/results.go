package windows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/policy"
)

// Inventory nodes: where device information comes from (devinfo-csp,
// devdetail-csp) and which Info field each fills.
var infoNodes = map[string]func(*device.Info, string){
	"./DevInfo/Man": func(i *device.Info, v string) { i.Manufacturer = v },
	"./DevInfo/Mod": func(i *device.Info, v string) { i.Model = v },
	"./DevDetail/OEM": func(i *device.Info, v string) {
		if i.Manufacturer == "" {
			i.Manufacturer = v
		}
	},
	"./DevDetail/SwV":                                 func(i *device.Info, v string) { i.OSVersion = v },
	"./DevDetail/Ext/Microsoft/OSPlatform":            func(i *device.Info, v string) { i.OSName = v },
	"./DevDetail/Ext/Microsoft/SMBIOSSerialNumber":    func(i *device.Info, v string) { i.SerialNumber = v },
	"./DevDetail/Ext/Microsoft/DeviceName":            func(i *device.Info, v string) { i.Hostname = v },
	"./DevDetail/Ext/Microsoft/ProcessorArchitecture": func(i *device.Info, v string) { i.Arch = v },
	"./DevInfo/DevId":                                 attr("dev_id"),
	"./DevInfo/DmV":                                   attr("dm_version"),
	"./DevInfo/Lang":                                  attr("language"),
	"./DevDetail/HwV":                                 attr("hardware_version"),
	"./DevDetail/Ext/Microsoft/TotalRAM":              attr("total_ram_mb"),
	"./DevDetail/Ext/Microsoft/TotalStorage":          attr("total_storage_mb"),
}

func attr(name string) func(*device.Info, string) {
	return func(i *device.Info, v string) {
		if i.Attributes == nil {
			i.Attributes = map[string]string{}
		}
		i.Attributes[name] = v
	}
}

// deviceInfoNodes are the nodes a device_info command gets, in order.
var deviceInfoNodes = []string{
	"./DevInfo/DevId", "./DevInfo/Man", "./DevInfo/Mod", "./DevInfo/DmV", "./DevInfo/Lang",
	"./DevDetail/SwV", "./DevDetail/OEM", "./DevDetail/HwV",
	"./DevDetail/Ext/Microsoft/OSPlatform", "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
	"./DevDetail/Ext/Microsoft/DeviceName", "./DevDetail/Ext/Microsoft/ProcessorArchitecture",
	"./DevDetail/Ext/Microsoft/TotalRAM", "./DevDetail/Ext/Microsoft/TotalStorage",
}

// cleanValue is a node value fit for the inventory: trimmed, valid, short.
func cleanValue(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > device.MaxField {
		v = v[:device.MaxField]
		for !utf8Valid(v) {
			v = v[:len(v)-1]
		}
	}
	return v
}

// mergeInfo applies node values to info; it returns the nodes it does not
// know (never stored as inventory).
func mergeInfo(info *device.Info, items []syncml.Item) (unknown []string) {
	for _, it := range items {
		uri := it.Source
		if uri == "" {
			uri = it.Target
		}
		set, ok := infoNodes[uri]
		if !ok {
			if len(uri) > MaxLocURI {
				uri = uri[:MaxLocURI]
			}
			unknown = append(unknown, uri)
			continue
		}
		if v := cleanValue(it.Data); v != "" && !strings.ContainsRune(v, 0) {
			set(info, v)
		}
	}
	return unknown
}

// saveDevInfo merges the DevInfo of package 1 into the stored inventory
// (st). It writes only when something changed or the last report is older
// than ReportEvery: a session is not a database write.
func (h *Handler) saveDevInfo(ctx context.Context, d *device.Device, st *DeviceState, items []syncml.Item) error {
	var info device.Info
	if st.Reported {
		info = st.Info
		info.Attributes = cloneMap(st.Info.Attributes)
	}
	before, _ := json.Marshal(info)
	mergeInfo(&info, items)
	if info.OSName == "" {
		info.OSName = "Windows"
	}
	after, _ := json.Marshal(info)
	if st.Reported && string(before) == string(after) && h.now().Sub(st.ReportedAt) < ReportEvery {
		return nil
	}
	return h.report(ctx, d, info)
}

func (h *Handler) report(ctx context.Context, d *device.Device, info device.Info) error {
	if err := h.Devices.Report(ctx, d, info, nil); err != nil {
		if errs.Is(err, errs.Invalid) || errs.Is(err, errs.TooLarge) {
			return fmt.Errorf("windows: inventory refused: %w", err)
		}
		return err
	}
	if h.OnReport != nil {
		h.OnReport(ctx, d)
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// outcome of one queue command (or one configuration item) once every
// pending part was answered.
type outcome struct {
	parts    []Pending
	answered int
	failures []string
	// itemFailures are the failures per configuration item.
	itemFailures map[string][]string
	results      []syncml.Item
}

func (o *outcome) fail(p Pending, text string) {
	o.failures = append(o.failures, text)
	if p.Item != "" {
		if o.itemFailures == nil {
			o.itemFailures = map[string][]string{}
		}
		o.itemFailures[p.Item] = append(o.itemFailures[p.Item], text)
	}
}

func (o *outcome) add(p Pending, a *answer) {
	o.parts = append(o.parts, p)
	if p.CmdID == 0 { // decided without the device (an item Windows cannot apply)
		o.answered++
		if p.Fail != "" {
			o.fail(p, p.Fail)
		}
		return
	}
	if a == nil || a.code == "" {
		if a != nil && len(a.results) > 0 {
			o.results = append(o.results, a.results...)
		}
		return
	}
	o.answered++
	o.results = append(o.results, a.results...)
	if !syncml.OK(a.code) && !slices.Contains(p.Tolerate, a.code) {
		o.fail(p, fmt.Sprintf("%s: status %s", p.LocURI, a.code))
	}
}

func (o *outcome) complete() bool { return o.answered == len(o.parts) }

// message is the failure text of the command: the root causes first (an
// Atomic's inner failure explains the 507 and the 215/216 of its
// siblings).
func (o *outcome) message() string {
	var root, rest []string
	for _, f := range o.failures {
		if strings.HasSuffix(f, " 215") || strings.HasSuffix(f, " 216") || strings.HasSuffix(f, " 507") {
			rest = append(rest, f)
		} else {
			root = append(root, f)
		}
	}
	msg := strings.Join(append(root, rest...), "; ")
	if len(msg) > command.MaxResultMessage {
		msg = msg[:command.MaxResultMessage-3] + "..."
		for !utf8Valid(msg) {
			msg = msg[:len(msg)-4] + "..."
		}
	}
	return msg
}

// settle turns the device's answers into queue results, configuration
// item states, push tokens and inventory. pending are our commands of the
// previous message; answers are keyed by CmdID.
func (h *Handler) settle(ctx context.Context, d *device.Device, log *slog.Logger, pending []Pending, answers map[int]*answer) (retired bool, err error) {
	if len(pending) == 0 {
		return false, nil
	}
	byCommand := map[string]*outcome{}
	var order []string
	push := &outcome{}
	for _, p := range pending {
		a := answers[p.CmdID]
		if p.Op == OpPush {
			push.add(p, a)
			continue
		}
		o := byCommand[p.Command]
		if o == nil {
			o = &outcome{}
			byCommand[p.Command] = o
			order = append(order, p.Command)
		}
		o.add(p, a)
	}
	if len(push.parts) > 0 {
		if err := h.savePush(ctx, d, log, push); err != nil {
			return false, err
		}
	}
	for _, id := range order {
		o := byCommand[id]
		if !o.complete() {
			log.Info("windows: command not fully answered; it is delivered again", "command", id)
			continue
		}
		r, err := h.finish(ctx, d, log, id, o)
		if err != nil {
			return false, err
		}
		retired = retired || r
	}
	return retired, nil
}

// finish records the result of one queue command.
func (h *Handler) finish(ctx context.Context, d *device.Device, log *slog.Logger, id string, o *outcome) (retired bool, err error) {
	kind := ""
	for _, p := range o.parts {
		if p.Op == OpConfig {
			kind = OpConfig
		}
	}
	res := command.Result{CommandID: id, Status: command.StatusAcknowledged}
	if len(o.failures) > 0 {
		res.Status, res.Message = command.StatusError, o.message()
	}
	var data map[string]any
	switch {
	case kind == OpConfig:
		if err := h.recordConfig(ctx, d, o); err != nil {
			return false, err
		}
	case len(o.results) > 0:
		data = map[string]any{}
		var info device.Info
		unknown := mergeInfo(&info, o.results)
		if len(unknown) < len(o.results) {
			if info.OSName == "" {
				info.OSName = "Windows"
			}
			// device_info: merge into what is stored (DevInfo of package 1).
			if inv, err := h.Devices.Store.Inventory(ctx, d.ID); err == nil {
				merged := inv.Info
				merged.Attributes = cloneMap(inv.Info.Attributes)
				mergeInfo(&merged, o.results)
				info = merged
			}
			if err := h.report(ctx, d, info); err != nil {
				return false, err
			}
			data["info"] = info
		}
		if len(unknown) > 0 {
			// Nodes we did not ask about (or raw Gets): kept in the result
			// for the administrator, never as inventory.
			log.Info("windows: results for unknown nodes", "count", len(unknown))
			vals := map[string]string{}
			for _, it := range o.results {
				uri := cmpOr(it.Source, it.Target)
				if _, ok := infoNodes[uri]; !ok && len(vals) < 256 {
					vals[truncate(uri, MaxLocURI)] = truncate(it.Data, 4096)
				}
			}
			data["unknown"] = vals
		}
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err == nil && len(b) <= command.MaxResultData {
			res.Data = b
		}
	}
	c, _, err := h.Commands.Report(ctx, d.ID, res)
	if errors.Is(err, command.ErrUnknownCommand) || errs.Is(err, errs.NotFound) {
		log.Warn("windows: result for a command that is not open", "command", id, "err", err)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// wipe_work is rendered as the DMClient Unenroll Exec: once the device
	// accepted it, the device is retired here as well.
	if c != nil && c.Type == command.WipeWork && res.Status == command.StatusAcknowledged {
		return true, h.retire(ctx, d, log, "wipe_work: the device accepted the unenrollment")
	}
	return false, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8Valid(s) {
		s = s[:len(s)-1]
	}
	return s
}

// recordConfig stores the item states of a configuration sync and the
// version the device now runs.
func (h *Handler) recordConfig(ctx context.Context, d *device.Device, o *outcome) error {
	type item struct {
		rev      int
		failures []string
	}
	items := map[string]*item{}
	var order []string
	version := ""
	for _, p := range o.parts {
		version = p.Version
		if p.Item == "" {
			continue
		}
		it := items[p.Item]
		if it == nil {
			it = &item{rev: p.Revision}
			items[p.Item] = it
			order = append(order, p.Item)
		}
	}
	for id, fs := range o.itemFailures {
		if it := items[id]; it != nil {
			it.failures = fs
		}
	}
	if version == "" {
		return nil
	}
	now := h.now()
	states := make([]policy.ItemState, 0, len(order))
	for _, id := range order {
		it := items[id]
		st := policy.ItemState{ID: id, Revision: it.rev, Status: policy.ItemApplied, At: now}
		if len(it.failures) > 0 {
			st.Status, st.Error = policy.ItemFailed, truncate(strings.Join(it.failures, "; "), policy.MaxStateError)
		}
		states = append(states, st)
	}
	// The device answered every part: it runs this version, whatever it
	// could not apply (the item states say what).
	if err := h.Devices.Acknowledge(ctx, d, version); err != nil {
		if errs.Is(err, errs.NotFound) {
			return nil // the device was removed meanwhile
		}
		return err
	}
	if len(states) > 0 {
		if err := h.Config.RecordStatus(ctx, d, version, states); err != nil {
			return err
		}
	}
	return nil
}
