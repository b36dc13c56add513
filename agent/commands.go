package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Bounds of the command channel.
const (
	// MaxRemembered bounds State.Commands: the commands remembered so that
	// one delivered again is not run again. The Core redelivers a command
	// only until it has its result, so the last few hundred are plenty.
	MaxRemembered = 256
	// maxRememberedData bounds the result data a record keeps: a larger
	// result (an app list) belongs to a query, which is answered afresh
	// when delivered again, and State must stay far below MaxStoreItem.
	maxRememberedData = 2 << 10
	// maxRoundTrips bounds one Commands call, so that a Core that never
	// says idle cannot keep the agent from checking in.
	maxRoundTrips = 1000
)

// recordRunning is the status of a CommandRecord whose executor has not
// returned: saved before a command with effects runs, so that a device that
// restarts (or crashes) in the middle never runs it a second time.
const recordRunning = "running"

// codeUnknownCommand is the Core's 404 for a result of a command not queued
// for the device (command.ErrUnknownCommand): resending it cannot help.
const codeUnknownCommand = "unknown_command"

// ErrNotOffered is wrapped by the error of a request the Core answered 404
// or 405 for the endpoint itself: an older Core without the command channel
// or the long poll. Run then falls back to what the Core offers.
var ErrNotOffered = errors.New("the Core does not offer this endpoint (an older Core)")

// CommandRecord is one command the device ran (State.Commands).
type CommandRecord struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Status is ResultAcknowledged or ResultError, or "running" while the
	// executor runs.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Data is the result's data when it is small (at most 2 KiB).
	Data json.RawMessage `json:"data,omitempty"`
	At   time.Time       `json:"at,omitzero"`
}

// CommandOutcome is what happened to one command in a Commands call.
type CommandOutcome struct {
	ID, Type, Status, Message string
	// Repeated is true when the command had run before and its stored
	// result was reported again.
	Repeated bool
}

// CommandsResult is the outcome of a Commands call.
type CommandsResult struct {
	// RoundTrips counts the requests to PathCommands.
	RoundTrips int
	// Executed counts commands run; Repeated those delivered again and
	// answered from memory.
	Executed, Repeated int
	// Commands lists them in order of delivery.
	Commands []CommandOutcome
}

// Commands runs command round trips until the Core says idle: each
// request carries the result of the previous command and asks for the
// next. sync_config runs a check-in (fetch, apply, acknowledge the
// configuration) and is reported acknowledged, or error with the reason
// when the Applier failed entirely; every other command goes to the
// Executor, once per command ID: a command delivered again is answered
// with the stored result. A result is kept in the State until the Core has
// taken it, so a lost answer or a restart re-reports it.
//
// Errors: a *RefusedError when the Core refuses the certificate (recorded,
// as by Checkin); one wrapping ErrNotOffered when the Core has no command
// channel; others for the network or the Store (the pending result is sent
// again by the next call).
func (c *Client) Commands(ctx context.Context) (*CommandsResult, error) {
	c.op.Lock()
	defer c.op.Unlock()
	return c.commands(ctx)
}

// session returns what a mutual-TLS request needs: the client, a copy of
// the State, and the Core's URL.
func (c *Client) session() (*http.Client, State, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mtls == nil || c.st == nil {
		return nil, State{}, "", c.notActivated()
	}
	st := *c.st
	base := c.serverURL
	if base == "" {
		base = st.ServerURL
	}
	return c.mtls, st, base, nil
}

func (c *Client) commands(ctx context.Context) (*CommandsResult, error) {
	res := &CommandsResult{}
	for res.RoundTrips < maxRoundTrips {
		hc, st, base, err := c.session()
		if err != nil {
			return res, err
		}
		sent := st.PendingResult
		var cr wire.CommandsResponse
		_, err = c.post(ctx, hc, base, wire.PathCommands, wire.CommandsRequest{DeviceID: st.DeviceID, Result: sent}, nil, true, maxCommandsAnswer, &cr)
		res.RoundTrips++
		if err != nil {
			var se *ServerError
			if sent != nil && errors.As(err, &se) && se.Status == http.StatusNotFound && se.Code == codeUnknownCommand {
				// The Core has no such command for this device any more:
				// drop the result and go on with the next command.
				c.log.Warn("the Core refused a command result as unknown; dropping it", "command_id", sent.CommandID, "err", err)
				st.PendingResult = nil
				if err := c.commit(&st); err != nil {
					return res, err
				}
				continue
			}
			return res, c.commandsError(&st, sent, err)
		}
		if cr.Duplicate {
			c.log.Debug("the Core had the result already", "command_id", sent.CommandID)
		}
		st.PendingResult = nil
		if cr.Idle || cr.Command == nil {
			if sent != nil {
				if err := c.commit(&st); err != nil {
					return res, err
				}
			}
			return res, nil
		}
		cmd := *cr.Command
		if err := checkCommand(cmd); err != nil {
			// Nothing can be reported for a command without a usable ID.
			_ = c.commit(&st)
			return res, fmt.Errorf("commands: the Core sent an unusable command: %w", err)
		}
		out, err := c.runCommand(ctx, &st, cmd)
		if err != nil {
			return res, err
		}
		res.Commands = append(res.Commands, out)
		if out.Repeated {
			res.Repeated++
		} else {
			res.Executed++
		}
	}
	return res, nil
}

// commandsError words a failed commands round trip. A refused certificate
// is recorded; a Core that refuses the result itself (a 4xx other than a
// refusal) will refuse it again, so it is dropped rather than resent
// forever.
func (c *Client) commandsError(st *State, sent *wire.CommandResult, err error) error {
	if re, ok := refusal("commands", err); ok {
		return c.refused(st, re)
	}
	var se *ServerError
	if errors.As(err, &se) {
		switch {
		case se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed:
			return fmt.Errorf("commands: %w: %w", ErrNotOffered, se)
		case se.Status >= 400 && se.Status < 500 && se.Status != http.StatusRequestTimeout &&
			se.Status != http.StatusTooManyRequests && sent != nil:
			c.log.Warn("the Core refused a command result; dropping it", "command_id", sent.CommandID, "err", err)
			st.PendingResult = nil
			_ = c.commit(st)
		}
	}
	return c.deviceError("commands", st, err)
}

// checkCommand checks what the agent needs of a command to run it and
// report on it: an ID and a type within wire.MaxField bytes of printable
// ASCII (they are saved, logged and sent back).
func checkCommand(cmd wire.Command) error {
	for _, f := range []struct{ name, v string }{{"id", cmd.ID}, {"type", cmd.Type}} {
		if f.v == "" || len(f.v) > wire.MaxField {
			return fmt.Errorf("command %s is empty or longer than %d bytes", f.name, wire.MaxField)
		}
		for i := 0; i < len(f.v); i++ {
			if f.v[i] <= ' ' || f.v[i] >= 0x7f {
				return fmt.Errorf("command %s %s holds a non-printable character", f.name, display(f.v))
			}
		}
	}
	return nil
}

// queryCommand reports whether running cmdType twice is the same as
// running it once: such commands are answered afresh when their stored
// result is gone, and need no "running" record.
func queryCommand(cmdType string) bool {
	switch cmdType {
	case string(command.DeviceInfo), string(command.InstalledApps), string(command.SyncConfig):
		return true
	}
	return false
}

// runCommand answers one delivered command: from memory when it ran
// before, else by running it. It leaves the result pending in the State
// (saved). st is the caller's copy, current on entry; it is reloaded after
// a sync_config, whose check-in commits the State itself.
func (c *Client) runCommand(ctx context.Context, st *State, cmd wire.Command) (CommandOutcome, error) {
	out := CommandOutcome{ID: cmd.ID, Type: cmd.Type}
	var result wire.CommandResult
	rec := findRecord(st.Commands, cmd.ID)
	switch {
	case rec != nil && rec.Status != recordRunning:
		out.Repeated = true
		result = wire.CommandResult{Status: rec.Status, Message: rec.Message, Data: rec.Data}
		if rec.Data == nil && rec.Status == ResultAcknowledged && (cmd.Type == string(command.DeviceInfo) || cmd.Type == string(command.InstalledApps)) {
			// The data was too large to remember: a query answered again
			// is the same query.
			r, err := c.executor.Execute(ctx, cmd)
			result = normalizeResult(r, err)
		}
		c.log.Info("command delivered again; reporting its stored result", "command_id", cmd.ID, "type", cmd.Type, "status", result.Status)
	case rec != nil:
		// It was running when the agent stopped: never run it twice.
		out.Repeated = true
		if cmd.Type == string(command.Restart) {
			result = Acknowledged("the device restarted")
		} else {
			result = wire.CommandResult{Status: ResultError, Message: "the agent stopped while running this command; its outcome is unknown"}
		}
		c.log.Warn("command was interrupted by an agent restart", "command_id", cmd.ID, "type", cmd.Type, "status", result.Status)
	case cmd.Type == string(command.SyncConfig):
		if err := c.commit(st); err != nil { // the previous result was taken
			return out, err
		}
		r, err := c.syncConfig(ctx)
		if err != nil {
			return out, err
		}
		result = r
		_, *st, _, err = c.session()
		if err != nil {
			return out, err
		}
	default:
		if !queryCommand(cmd.Type) {
			st.Commands = remember(st.Commands, CommandRecord{ID: cmd.ID, Type: cmd.Type, Status: recordRunning, At: c.clock.Now().UTC()})
			if err := c.commit(st); err != nil {
				return out, err
			}
		}
		c.log.Info("running command", "command_id", cmd.ID, "type", cmd.Type)
		r, err := c.execute(ctx, cmd)
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped before it completed: forget it, so the Core's next
			// delivery runs it.
			st.Commands = forget(st.Commands, cmd.ID)
			_ = c.commit(st)
			return out, err
		}
		result = normalizeResult(r, err)
	}
	result.CommandID = cmd.ID
	out.Status, out.Message = result.Status, result.Message
	if result.Status == ResultNotNow {
		// Not run: the Core sends it again later, and then it must run.
		st.Commands = forget(st.Commands, cmd.ID)
	} else if !out.Repeated || rec.Status == recordRunning {
		r := CommandRecord{ID: cmd.ID, Type: cmd.Type, Status: result.Status, Message: result.Message, At: c.clock.Now().UTC()}
		if len(result.Data) <= maxRememberedData {
			r.Data = result.Data
		}
		st.Commands = remember(st.Commands, r)
	}
	st.PendingResult = &result
	if err := c.commit(st); err != nil {
		return out, err
	}
	c.log.Info("command done", "command_id", cmd.ID, "type", cmd.Type, "status", result.Status, "message", result.Message)
	return out, nil
}

// execute hands cmd to the Executor, refusing an oversized payload first.
func (c *Client) execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error) {
	if len(cmd.Payload) > command.MaxPayload {
		return wire.CommandResult{}, fmt.Errorf("the payload is larger than %d bytes", command.MaxPayload)
	}
	return c.executor.Execute(ctx, cmd)
}

// syncData is the Data of a sync_config result.
type syncData struct {
	Version   string            `json:"version"`
	Unchanged bool              `json:"unchanged,omitempty"`
	Items     []wire.ItemStatus `json:"items,omitempty"`
}

// syncConfig runs sync_config: a check-in that applies and acknowledges
// the configuration. An Applier failing entirely is the command's error; a
// check-in that failed otherwise (the network, the Core) leaves the command
// unanswered, so the Core delivers it again.
func (c *Client) syncConfig(ctx context.Context) (wire.CommandResult, error) {
	res, err := c.checkin(ctx)
	var ae *ApplyError
	switch {
	case errors.As(err, &ae):
		return wire.CommandResult{Status: ResultError, Message: ae.Error()}, nil
	case err != nil:
		return wire.CommandResult{}, fmt.Errorf("sync_config: %w", err)
	}
	failed := 0
	for _, it := range res.Items {
		if it.Status != StatusApplied {
			failed++
		}
	}
	msg := ""
	switch {
	case res.Unchanged && !res.Acknowledged:
		msg = "configuration " + res.ConfigVersion + " is current"
	case failed > 0:
		msg = fmt.Sprintf("configuration %s applied; %d of %d items failed", res.ConfigVersion, failed, len(res.Items))
	default:
		msg = "configuration " + res.ConfigVersion + " applied"
	}
	data, _ := json.Marshal(syncData{Version: res.ConfigVersion, Unchanged: res.Unchanged, Items: res.Items})
	if len(data) > command.MaxResultData {
		data = nil // the acknowledgment has the items already
	}
	return wire.CommandResult{Status: ResultAcknowledged, Message: msg, Data: data}, nil
}

// normalizeResult turns what an Executor returned into a result the Core
// accepts: a known status, a message of valid UTF-8 within
// command.MaxResultMessage bytes, data that is JSON within
// command.MaxResultData bytes.
func normalizeResult(r wire.CommandResult, err error) wire.CommandResult {
	if err != nil {
		return wire.CommandResult{Status: ResultError, Message: cut(err.Error(), command.MaxResultMessage)}
	}
	switch r.Status {
	case ResultAcknowledged, ResultError, ResultNotNow:
	default:
		return wire.CommandResult{Status: ResultError, Message: "the agent's executor returned no valid status (" + cut(display(r.Status), 64) + ")"}
	}
	r.Message = cut(r.Message, command.MaxResultMessage)
	switch {
	case len(r.Data) > command.MaxResultData:
		return wire.CommandResult{Status: ResultError, Message: fmt.Sprintf("the result data is larger than %d bytes", command.MaxResultData)}
	case len(r.Data) > 0 && !json.Valid(r.Data):
		return wire.CommandResult{Status: ResultError, Message: "the agent's executor returned result data that is not JSON"}
	case len(r.Data) == 0:
		r.Data = nil
	}
	return r
}

// cut returns s as valid UTF-8 cut at a character boundary to n bytes.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func findRecord(recs []CommandRecord, id string) *CommandRecord {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].ID == id {
			r := recs[i]
			return &r
		}
	}
	return nil
}

// remember returns recs with r in place of any record of its ID, at the
// end, keeping the last MaxRemembered. It never changes recs, which copies
// of the State share.
func remember(recs []CommandRecord, r CommandRecord) []CommandRecord {
	out := make([]CommandRecord, 0, min(len(recs)+1, MaxRemembered))
	keep := forget(recs, r.ID)
	if len(keep) >= MaxRemembered {
		keep = keep[len(keep)-MaxRemembered+1:]
	}
	out = append(out, keep...)
	return append(out, r)
}

// forget returns recs without the record of id, never changing recs.
func forget(recs []CommandRecord, id string) []CommandRecord {
	return slices.DeleteFunc(slices.Clone(recs), func(r CommandRecord) bool { return r.ID == id })
}
