package windows

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/push/wns"
)

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// CSP nodes of the queue's commands.
const (
	// RemoteLock/Lock (remotelock-csp): Exec locks the device. Desktop
	// editions of Windows answer 405 (the CSP exists on Windows 10 Mobile
	// and HoloLens); the status reaches the command as its error.
	NodeLock = "./Vendor/MSFT/RemoteLock/Lock"
	// RemoteWipe/doWipe (remotewipe-csp): Exec resets the device.
	NodeWipe = "./Device/Vendor/MSFT/RemoteWipe/doWipe"
	// Reboot/RebootNow (reboot-csp): Exec restarts the device.
	NodeReboot = "./Device/Vendor/MSFT/Reboot/RebootNow"
)

// NodeUnenroll is the DMClient node whose Exec makes the device unenroll
// from the provider (dmclient-csp "Provider/ProviderID/Unenroll": "The node
// accepts unenrollment requests by way of the OMA DM Exec command", with
// the provider ID as Data). disconnecting-from-mdm-unenrollment describes
// the server-initiated unenrollment this starts.
func NodeUnenroll(provider string) string {
	return "./Vendor/MSFT/DMClient/Provider/" + provider + "/Unenroll"
}

// Push nodes of the DMClient CSP (dmclient-csp, push-notification-windows-mdm).
func nodePush(leaf string) string {
	return "./Vendor/MSFT/DMClient/Provider/" + ProviderID + "/Push/" + leaf
}

// op is one CSP operation before numbering.
type op struct {
	verb     string // syncml.CmdReplace, CmdAdd, CmdDelete, CmdExec, CmdGet
	uri      string
	format   string
	data     string
	tolerate []string
}

func (o op) command() syncml.Command {
	it := syncml.Item{Target: o.uri, Data: o.data}
	if o.format != "" {
		it.Meta = &syncml.Meta{Format: o.format}
	}
	return syncml.Command{Name: o.verb, Items: []syncml.Item{it}}
}

// number assigns CmdIDs to cmds (nested ones included) and returns a
// pending entry for each, built by mk.
func number(cmds []syncml.Command, next func() string, msgID int, mk func(c *syncml.Command) Pending) []Pending {
	var out []Pending
	for i := range cmds {
		c := &cmds[i]
		c.CmdID = next()
		p := mk(c)
		p.MsgID = msgID
		p.CmdID, _ = strconv.Atoi(c.CmdID)
		if p.LocURI == "" {
			p.LocURI = c.Name
			if len(c.Items) > 0 {
				p.LocURI = c.Name + " " + truncate(c.Items[0].Target, MaxLocURI)
			}
		}
		out = append(out, p)
		out = append(out, number(c.Commands, next, msgID, mk)...)
	}
	return out
}

// render turns a queue command into SyncML commands and their pending
// entries; fail is set instead when Windows cannot run the command at all
// (answered at once as an error).
func (h *Handler) render(ctx context.Context, d *device.Device, c *command.Command, next func() string, msgID int) (cmds []syncml.Command, pend []Pending, fail string, err error) {
	simple := func(ops ...op) {
		for _, o := range ops {
			cmds = append(cmds, o.command())
		}
		tol := map[string][]string{}
		for _, o := range ops {
			tol[o.uri] = o.tolerate
		}
		pend = number(cmds, next, msgID, func(sc *syncml.Command) Pending {
			p := Pending{Op: OpCommand, Command: c.ID}
			if len(sc.Items) > 0 {
				p.LocURI, p.Tolerate = sc.Items[0].Target, tol[sc.Items[0].Target]
			}
			return p
		})
	}
	switch c.Type {
	case command.Lock:
		simple(op{verb: syncml.CmdExec, uri: NodeLock})
	case command.WipeDevice:
		simple(op{verb: syncml.CmdExec, uri: NodeWipe, format: "chr"})
	case command.Restart:
		simple(op{verb: syncml.CmdExec, uri: NodeReboot, format: "null"})
	case command.WipeWork:
		// Decision: work data on Windows is what the enrollment brought
		// (policies, profiles, certificates, the managed apps): the
		// DMClient Unenroll removes exactly that. doWipeProtected would
		// reset the whole device, which is wipe_device's job.
		simple(op{verb: syncml.CmdExec, uri: NodeUnenroll(ProviderID), format: "chr", data: ProviderID})
	case command.DeviceInfo:
		var ops []op
		for _, n := range deviceInfoNodes {
			ops = append(ops, op{verb: syncml.CmdGet, uri: n})
		}
		simple(ops...)
	case command.SyncConfig:
		return h.renderConfig(ctx, d, c, next, msgID)
	case command.Raw:
		return renderRaw(c, next, msgID)
	case command.InstalledApps:
		// The app inventory of Windows (EnterpriseModernAppManagement
		// AppInventoryQuery/AppInventoryResults) needs a query written
		// first and answers in its own XML schema; not implemented.
		return nil, nil, "installed_apps is not supported on Windows", nil
	default:
		return nil, nil, string(c.Type) + " is not supported on Windows", nil
	}
	return cmds, pend, "", nil
}

// RawPlatform is the platform name of a raw command for Windows.
const RawPlatform = "windows"

// renderRaw renders a raw command: {"platform":"windows","body":"<SyncML
// commands>"}; the body passes the decoder's limits and only management
// commands (Get, Replace, Add, Delete, Exec, Atomic, Sequence) are sent,
// renumbered.
func renderRaw(c *command.Command, next func() string, msgID int) ([]syncml.Command, []Pending, string, error) {
	var p struct {
		Platform string `json:"platform"`
		Body     string `json:"body"`
	}
	if err := json.Unmarshal(c.Payload, &p); err != nil || p.Platform != RawPlatform {
		return nil, nil, "a raw command for Windows needs {\"platform\": \"windows\", \"body\": \"<SyncML commands>\"}", nil
	}
	cmds, err := syncml.DecodeCommands([]byte(p.Body))
	if err != nil {
		return nil, nil, "the raw body is not valid SyncML: " + truncate(err.Error(), 200), nil
	}
	var bad string
	var walk func([]syncml.Command)
	walk = func(cs []syncml.Command) {
		for _, x := range cs {
			switch x.Name {
			case syncml.CmdGet, syncml.CmdReplace, syncml.CmdAdd, syncml.CmdDelete, syncml.CmdExec, syncml.CmdAtomic, syncml.CmdSequence:
			default:
				bad = x.Name
			}
			walk(x.Commands)
		}
	}
	walk(cmds)
	if bad != "" {
		return nil, nil, "a raw command may not contain " + bad, nil
	}
	pend := number(cmds, next, msgID, func(*syncml.Command) Pending { return Pending{Op: OpCommand, Command: c.ID} })
	return cmds, pend, "", nil
}

// pushNodes appends the push provisioning of a session's first message:
// the PFN when the device has no channel yet, and a Get of the channel URI
// and its status every session (the docs: the channel URI changes; read it
// at each session).
func (x *exchange) pushNodes(ctx context.Context) (int, error) {
	st, err := x.deviceState(ctx)
	if err != nil {
		return 0, err
	}
	var ops []op
	stored := ""
	if st.Push == nil || st.Push.Provider != "wns" {
		ops = append(ops, op{verb: syncml.CmdReplace, uri: nodePush("PFN"), format: "chr", data: x.h.PFN})
	} else {
		stored = st.Push.Token
	}
	ops = append(ops, op{verb: syncml.CmdGet, uri: nodePush("ChannelURI")}, op{verb: syncml.CmdGet, uri: nodePush("Status")})
	var cmds []syncml.Command
	for _, o := range ops {
		cmds = append(cmds, o.command())
	}
	pend := number(cmds, x.nextCmdID, x.msgID, func(c *syncml.Command) Pending {
		return Pending{Op: OpPush, LocURI: c.Items[0].Target, Token: stored}
	})
	x.out = append(x.out, cmds...)
	x.sess.Pending = append(x.sess.Pending, pend...)
	return len(cmds), nil
}

// savePush stores the channel URI the device reported.
func (h *Handler) savePush(ctx context.Context, d *device.Device, log interface {
	Info(string, ...any)
}, o *outcome) error {
	var uri, stored string
	for _, p := range o.parts {
		if p.Token != "" {
			stored = p.Token
		}
	}
	for _, it := range o.results {
		if cmpOr(it.Source, it.Target) == nodePush("ChannelURI") {
			uri = strings.TrimSpace(it.Data)
		}
	}
	if uri == "" {
		return nil // no channel yet (the PFN was just written; Status tells)
	}
	if len(uri) > wns.MaxChannelURILen || !strings.HasPrefix(uri, "https://") || !utf8Valid(uri) || strings.ContainsAny(uri, "\x00\r\n ") {
		log.Info("windows: unusable channel URI ignored")
		return nil
	}
	if uri == stored {
		return nil // unchanged since the session began
	}
	return h.Pushes.SetPushToken(ctx, device.PushToken{DeviceID: d.ID, Provider: "wns", Token: uri, UpdatedAt: h.now()})
}
