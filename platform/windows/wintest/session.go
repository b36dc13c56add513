package wintest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/custos-uem/custos/platform/windows/syncml"
)

// Device is the management side of the emulator: a Windows DM client that
// runs OMA-DM sessions (MS-MDM) over mutual TLS with its enrolled
// certificate against the management URL, with a small CSP tree.
type Device struct {
	// URL is the management URL (ADDR of the provisioning document).
	URL string
	// DevID is the SyncHdr Source (./DevInfo/DevId).
	DevID string
	HTTP  *http.Client
	Tree  *Tree

	mu        sync.Mutex
	sessionID int
	// Sessions counts the sessions run; LastCommands the server commands
	// of the last session, in order.
	Sessions     int
	LastCommands []syncml.Command
}

// NewDevice returns the DM client of an enrolled emulator: its HTTP client
// presents the enrollment certificate and trusts e.CA.
func NewDevice(e *Enrolled) *Device {
	pool := x509.NewCertPool()
	pool.AddCert(e.CA)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{e.Certificate.Raw}, PrivateKey: e.Key, Leaf: e.Certificate}},
	}}}
	provider := e.ProviderID
	if provider == "" {
		provider = "Custos"
	}
	return &Device{URL: e.ManagementURL, DevID: e.DeviceID, HTTP: hc, Tree: NewTree(e.DeviceID, provider)}
}

// MaxMessages bounds the messages of one emulated session.
const MaxMessages = 100

// ErrStatus is an HTTP answer other than 200.
type ErrStatus struct {
	Code int
	Body []byte
}

func (e *ErrStatus) Error() string { return fmt.Sprintf("wintest: HTTP %d: %s", e.Code, e.Body) }

// Post sends one raw message and returns the answer's body; an answer
// other than 200 is an *ErrStatus.
func (d *Device) Post(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", syncml.ContentType)
	req.Header.Set("User-Agent", "MSFT OMA DM Client/1.2.0.1")
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, syncml.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &ErrStatus{Code: resp.StatusCode, Body: b}
	}
	return b, nil
}

// Package1 builds the first message of a session: the session's alert
// (1201 client-initiated or 1200 after a push), the LoginStatus alert 1224
// and the Replace of ./DevInfo (MS-MDM §4.1), plus extra commands.
func (d *Device) Package1(sessionID, alert string, extra ...syncml.Command) *syncml.Message {
	var devInfo []syncml.Item
	for _, n := range []string{"DevId", "Man", "Mod", "DmV", "Lang"} {
		v, _ := d.Tree.Get("./DevInfo/" + n)
		devInfo = append(devInfo, syncml.Item{Source: "./DevInfo/" + n, Data: v})
	}
	cmds := []syncml.Command{
		{Name: syncml.CmdAlert, CmdID: "1", Data: alert},
		{Name: syncml.CmdAlert, CmdID: "2", Data: syncml.AlertClientEvent, Items: []syncml.Item{{Meta: &syncml.Meta{Type: syncml.AlertTypeLoginStatus}, Data: "user"}}},
		{Name: syncml.CmdReplace, CmdID: "3", Items: devInfo},
	}
	for i, c := range extra {
		c.CmdID = strconv.Itoa(4 + i)
		cmds = append(cmds, c)
	}
	return &syncml.Message{Header: d.header(sessionID, 1), Body: syncml.Body{Commands: cmds, Final: true}}
}

func (d *Device) header(sessionID string, msgID int) syncml.Header {
	return syncml.Header{VerDTD: syncml.VerDTD, VerProto: syncml.VerProto, SessionID: sessionID, MsgID: strconv.Itoa(msgID),
		Target: d.URL, Source: d.DevID, Meta: &syncml.Meta{MaxMsgSize: "65535"}}
}

// NextSessionID returns a new session ID (Windows counts in hex).
func (d *Device) NextSessionID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessionID++
	return strconv.FormatInt(int64(d.sessionID), 16)
}

// Session runs one session that starts with alert (1201 or 1200) and
// returns when the server sends nothing more.
func (d *Device) Session(ctx context.Context, alert string) error {
	return d.SessionWith(ctx, alert)
}

// Unenroll runs the session of a user's unenrollment: the generic alert
// 1226 com.microsoft:mdm.unenrollment.userrequest
// (disconnecting-from-mdm-unenrollment).
func (d *Device) Unenroll(ctx context.Context) error {
	return d.SessionWith(ctx, syncml.AlertClientInitiated, UnenrollAlert())
}

// UnenrollAlert is the 1226 alert of a user's unenrollment.
func UnenrollAlert() syncml.Command {
	return syncml.Command{Name: syncml.CmdAlert, Data: syncml.AlertGeneric, Items: []syncml.Item{{
		Meta: &syncml.Meta{Type: syncml.AlertTypeUserUnenroll, Format: "int"}, Data: "1"}}}
}

// SessionWith runs a session whose package 1 carries extra commands.
func (d *Device) SessionWith(ctx context.Context, alert string, extra ...syncml.Command) error {
	sid := d.NextSessionID()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Sessions++
	d.LastCommands = nil
	msg := d.Package1(sid, alert, extra...)
	for n := 1; n <= MaxMessages; n++ {
		raw, err := d.Post(ctx, syncml.Encode(msg))
		if err != nil {
			return err
		}
		resp, err := syncml.Decode(raw)
		if err != nil {
			return fmt.Errorf("wintest: the server's answer: %w", err)
		}
		if resp.Header.SessionID != sid || resp.Header.MsgID != strconv.Itoa(n) {
			return fmt.Errorf("wintest: answer for session %s message %s, want %s/%d", resp.Header.SessionID, resp.Header.MsgID, sid, n)
		}
		next := d.answer(resp, n+1)
		if next == nil {
			return nil
		}
		msg = next
	}
	return errors.New("wintest: the session did not end")
}

// answer runs the server's commands and returns the next message, or nil
// when the server sent only statuses (the session ends, MS-MDM §3.1.5.1).
func (d *Device) answer(resp *syncml.Message, msgID int) *syncml.Message {
	cmdID := 0
	next := func() string { cmdID++; return strconv.Itoa(cmdID) }
	out := []syncml.Command{{Name: syncml.CmdStatus, CmdID: next(), MsgRef: resp.Header.MsgID, CmdRef: "0", Cmd: "SyncHdr", Data: syncml.StatusOK}}
	work := false
	status := func(c syncml.Command, code string) {
		out = append(out, syncml.Command{Name: syncml.CmdStatus, CmdID: next(), MsgRef: resp.Header.MsgID, CmdRef: c.CmdID, Cmd: c.Name, Data: code})
	}
	for _, c := range resp.Body.Commands {
		if c.Name == syncml.CmdStatus {
			continue
		}
		work = true
		d.LastCommands = append(d.LastCommands, c)
		if c.Name == syncml.CmdAtomic || c.Name == syncml.CmdSequence {
			snap := d.Tree.snapshot()
			codes := make([]string, len(c.Commands))
			failed := false
			for i, in := range c.Commands {
				if failed && c.Name == syncml.CmdAtomic {
					codes[i] = syncml.StatusNotExecuted
					continue
				}
				codes[i], _ = d.Tree.run(in)
				failed = failed || !syncml.OK(codes[i])
			}
			if failed && c.Name == syncml.CmdAtomic {
				d.Tree.nodes = snap
				status(c, syncml.StatusAtomicFailed)
				for i, in := range c.Commands {
					if syncml.OK(codes[i]) {
						codes[i] = syncml.StatusAtomicRollback
					}
					status(in, codes[i])
				}
				continue
			}
			status(c, syncml.StatusOK)
			for i, in := range c.Commands {
				status(in, codes[i])
			}
			continue
		}
		code, results := d.Tree.run(c)
		status(c, code)
		if len(results) > 0 {
			out = append(out, syncml.Command{Name: syncml.CmdResults, CmdID: next(), MsgRef: resp.Header.MsgID, CmdRef: c.CmdID, Items: results})
		}
	}
	if !work {
		return nil
	}
	return &syncml.Message{Header: d.header(resp.Header.SessionID, msgID), Body: syncml.Body{Commands: out, Final: true}}
}
