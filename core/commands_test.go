package core_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/httpx"
	wire "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// devicePost posts a raw body to a device endpoint with the device's
// certificate and returns the status, the error code (if any) and the body.
func (e *env) devicePost(cert tls.Certificate, path string, body []byte) (int, string, []byte) {
	e.t.Helper()
	cfg := &tls.Config{RootCAs: e.roots, Certificates: []tls.Certificate{cert}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(e.m.URL()+path, "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb httpx.ErrorBody
	_ = json.Unmarshal(raw, &eb)
	return resp.StatusCode, eb.Error.Code, raw
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// roundTrip runs one command round trip for the device.
func (e *env) roundTrip(cert tls.Certificate, deviceID string, res *wire.CommandResult) wire.CommandsResponse {
	e.t.Helper()
	st, code, raw := e.devicePost(cert, wire.PathCommands, mustJSON(wire.CommandsRequest{DeviceID: deviceID, Result: res}))
	if st != 200 {
		e.t.Fatalf("commands round trip: %d %s", st, code)
	}
	var out wire.CommandsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestCommandProtocolRefusals walks the device side of the command queue
// through the attacks DESIGN.md §5 names for it, then the ordinary path.
func TestCommandProtocolRefusals(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			ctx := context.Background()
			ua, pwa := e.mustUser("a@example.com")
			ub, pwb := e.mustUser("b@example.com")
			certA, idA := e.mustEnrolled(ua.Email, pwa, "hw-a")
			certB, idB := e.mustEnrolled(ub.Email, pwb, "hw-b")

			info, err := e.m.Commands.Send(ctx, []string{idA}, command.NewCommand{Type: command.DeviceInfo, CreatedBy: "test"})
			if err != nil {
				t.Fatal(err)
			}
			infoID := info[0].ID

			for _, tc := range []struct {
				name     string
				cert     tls.Certificate
				path     string
				body     []byte
				status   int
				code     string
				deviceID string
			}{
				{name: "fail/result-for-unknown-command", cert: certA, path: wire.PathCommands,
					body:   mustJSON(wire.CommandsRequest{DeviceID: idA, Result: &wire.CommandResult{CommandID: "0190f3c2-0000-7000-8000-000000000000", Status: "acknowledged"}}),
					status: 404, code: "unknown_command"},
				{name: "fail/result-for-command-not-yet-delivered", cert: certA, path: wire.PathCommands,
					body:   mustJSON(wire.CommandsRequest{DeviceID: idA, Result: &wire.CommandResult{CommandID: infoID, Status: "acknowledged"}}),
					status: 404, code: "unknown_command"},
				{name: "fail/result-for-another-devices-command", cert: certB, path: wire.PathCommands,
					body:   mustJSON(wire.CommandsRequest{DeviceID: idB, Result: &wire.CommandResult{CommandID: infoID, Status: "acknowledged"}}),
					status: 404, code: "unknown_command"},
				{name: "fail/body-names-another-device", cert: certB, path: wire.PathCommands,
					body: mustJSON(wire.CommandsRequest{DeviceID: idA}), status: 403, code: "device_mismatch"},
				{name: "fail/wait-names-another-device", cert: certB, path: wire.PathWait,
					body: mustJSON(wire.WaitRequest{DeviceID: idA, TimeoutSeconds: 1}), status: 403, code: "device_mismatch"},
				{name: "fail/result-status-unknown", cert: certA, path: wire.PathCommands,
					body:   mustJSON(wire.CommandsRequest{DeviceID: idA, Result: &wire.CommandResult{CommandID: infoID, Status: "done"}}),
					status: 400, code: "invalid_result"},
				{name: "fail/unknown-field", cert: certA, path: wire.PathCommands,
					body: []byte(`{"device_id":"` + idA + `","resultt":{}}`), status: 400, code: "unknown_field"},
				{name: "fail/deeply-nested-result-data", cert: certA, path: wire.PathCommands,
					body:   []byte(`{"device_id":"` + idA + `","result":{"command_id":"x","status":"acknowledged","data":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`),
					status: 400, code: "json_too_deep"},
				{name: "fail/oversized-body", cert: certA, path: wire.PathCommands,
					body:   []byte(`{"device_id":"` + idA + `","result":{"command_id":"x","status":"error","message":"` + strings.Repeat("a", wire.MaxCommandsBody) + `"}}`),
					status: 413, code: "body_too_large"},
				{name: "fail/push-provider-unknown", cert: certA, path: wire.PathCheckin,
					body:   mustJSON(wire.CheckinRequest{DeviceID: idA, Push: &wire.PushRegistration{Provider: "smoke-signals", Token: "x"}}),
					status: 400, code: "invalid_push"},
				{name: "fail/push-wns-channel-not-https", cert: certA, path: wire.PathCheckin,
					body:   mustJSON(wire.CheckinRequest{DeviceID: idA, Push: &wire.PushRegistration{Provider: "wns", Token: "http://169.254.169.254/latest/meta-data"}}),
					status: 400, code: "invalid_push"},
				{name: "fail/ack-item-status-unknown", cert: certA, path: wire.PathAck,
					body:   mustJSON(wire.AckRequest{DeviceID: idA, Version: "0", Items: []wire.ItemStatus{{ID: "x", Status: "maybe"}}}),
					status: 400, code: "invalid_ack"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, code, raw := e.devicePost(tc.cert, tc.path, tc.body)
					if st != tc.status || code != tc.code {
						t.Fatalf("got %d %s (%.200s), want %d %s", st, code, raw, tc.status, tc.code)
					}
				})
			}
			// None of the refusals touched the queue.
			c, err := e.m.Commands.Get(ctx, infoID)
			if err != nil || c.Status != command.StatusPending || c.Deliveries != 0 {
				t.Fatalf("after the refusals the command is %+v, %v; want pending, never delivered", c, err)
			}

			t.Run("ok/lock-outranks-device-info", func(t *testing.T) {
				lock, err := e.m.Commands.Send(ctx, []string{idA}, command.NewCommand{Type: command.Lock, CreatedBy: "test"})
				if err != nil {
					t.Fatal(err)
				}
				got := e.roundTrip(certA, idA, nil)
				if got.Command == nil || got.Command.ID != lock[0].ID {
					t.Fatalf("first command handed out: %+v, want the lock %s", got.Command, lock[0].ID)
				}
				res := &wire.CommandResult{CommandID: lock[0].ID, Status: "acknowledged"}
				got = e.roundTrip(certA, idA, res)
				if got.Duplicate || got.Command == nil || got.Command.ID != infoID {
					t.Fatalf("second round trip: %+v, want the device-info command", got)
				}
				// The same result again (the answer was lost): a duplicate,
				// stored once.
				again := e.roundTrip(certA, idA, res)
				if !again.Duplicate {
					t.Fatalf("repeated result not reported as duplicate: %+v", again)
				}
				c, _ := e.m.Commands.Get(ctx, lock[0].ID)
				if c.Status != command.StatusAcknowledged || c.Deliveries != 1 {
					t.Fatalf("lock after a repeated result: %+v", c)
				}
				// device-info was delivered twice (at least once): the
				// device gets it again until it answers.
				if again.Command == nil || again.Command.ID != infoID {
					t.Fatalf("unanswered command not redelivered: %+v", again)
				}
				got = e.roundTrip(certA, idA, &wire.CommandResult{CommandID: infoID, Status: "error", Message: "busy"})
				if !got.Idle || got.Command != nil {
					t.Fatalf("after the last result: %+v, want idle", got)
				}
				c, _ = e.m.Commands.Get(ctx, infoID)
				if c.Status != command.StatusError || c.Message != "busy" {
					t.Fatalf("device-info after its error result: %+v", c)
				}
			})

			t.Run("ok/wait-answers-pending-at-once-and-times-out-when-idle", func(t *testing.T) {
				start := time.Now()
				st, _, raw := e.devicePost(certB, wire.PathWait, mustJSON(wire.WaitRequest{DeviceID: idB, TimeoutSeconds: 1}))
				var w wire.WaitResponse
				_ = json.Unmarshal(raw, &w)
				if st != 200 || w.Pending || time.Since(start) < time.Second {
					t.Fatalf("idle wait: %d %s after %v, want pending false after 1s", st, raw, time.Since(start))
				}
				if _, err := e.m.Commands.Send(ctx, []string{idB}, command.NewCommand{Type: command.Restart, CreatedBy: "test"}); err != nil {
					t.Fatal(err)
				}
				st, _, raw = e.devicePost(certB, wire.PathWait, mustJSON(wire.WaitRequest{DeviceID: idB, TimeoutSeconds: 30}))
				_ = json.Unmarshal(raw, &w)
				if st != 200 || !w.Pending {
					t.Fatalf("wait with a command due: %d %s, want pending", st, raw)
				}
			})
		})
	}
}
