package sqlstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/command/commandtest"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

var tripT0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// queued creates n enrolled devices with k lock commands each (in
// delivery order), and delivers each device's first.
func queued(t *testing.T, db *sqlstore.DB, n, k int) (devices []string, cmds [][]*command.Command) {
	t.Helper()
	ctx := context.Background()
	devices, err := db.CreateDevicesForTest(ctx, usertest.CreateUser(t, db, "trips").ID, n, tripT0)
	if err != nil {
		t.Fatal(err)
	}
	cmds = make([][]*command.Command, n)
	for i, d := range devices {
		for range k {
			cmds[i] = append(cmds[i], commandtest.New(d, command.Lock, 0, tripT0))
		}
		commandtest.Enqueue(t, db, cmds[i]...)
		if c, err := db.Next(ctx, d, tripT0); err != nil || c.ID != cmds[i][0].ID {
			t.Fatalf("Next of device %d = %v, %v; want its first command", i, c, err)
		}
	}
	return devices, cmds
}

func ack(id string) *command.Result {
	return &command.Result{CommandID: id, Status: command.StatusAcknowledged}
}

// TestRoundTripGroups runs groups of PostgreSQL's round-trip queue
// directly, as if their requests had arrived together: each request gets
// what its lone call would have given, and what the group cannot decide
// is left to the lone call, without failing the others.
func TestRoundTripGroups(t *testing.T) {
	needPostgres(t)
	t1 := tripT0.Add(time.Second)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, db *sqlstore.DB)
	}{
		{"fail/UnknownCommandIsLeftAloneOthersApplied", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 2, 2)
			outs := db.RunTripGroupForTest([]sqlstore.TripForTest{
				{DeviceID: devs[0], Result: ack(cmds[1][0].ID), Now: t1}, // device 1's command, reported by device 0
				{DeviceID: devs[1], Result: ack(cmds[1][0].ID), Now: t1},
			})
			if !outs[0].Alone || outs[0].Done != nil || outs[0].Next != nil {
				t.Fatalf("a foreign command's result: %+v, want left alone with nothing delivered", outs[0])
			}
			if outs[1].Alone || outs[1].Done.Status != command.StatusAcknowledged || outs[1].Next.ID != cmds[1][1].ID {
				t.Fatalf("the other device's round trip: %+v, want its ack applied and its second command", outs[1])
			}
			// The lone call decides the refused one; device 0's queue is untouched.
			if _, _, next, err := db.CompleteAndNext(context.Background(), devs[0], *ack(cmds[1][0].ID), t1); !errors.Is(err, command.ErrUnknownCommand) || next != nil {
				t.Fatalf("CompleteAndNext of a foreign command = %v, %v; want ErrUnknownCommand, nothing", next, err)
			}
			wantUntouched(t, db, cmds[0])
		}},
		{"fail/DuplicateResultIsLeftAlone", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 1, 3)
			first := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0], Result: ack(cmds[0][0].ID), Now: t1}})
			if first[0].Alone || first[0].Next.ID != cmds[0][1].ID {
				t.Fatalf("first result: %+v", first[0])
			}
			again := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0], Result: ack(cmds[0][0].ID), Now: t1}})
			if !again[0].Alone {
				t.Fatalf("a repeated result: %+v, want left alone", again[0])
			}
			_, dup, _, err := db.CompleteAndNext(context.Background(), devs[0], *ack(cmds[0][0].ID), t1)
			if err != nil || !dup {
				t.Fatalf("the lone call of a repeated result: duplicate %v, %v; want a duplicate", dup, err)
			}
		}},
		{"fail/RepeatedNotNowIsLeftAlone", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 1, 2)
			notNow := &command.Result{CommandID: cmds[0][0].ID, Status: command.StatusNotNow}
			if o := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0], Result: notNow, Now: t1}}); o[0].Alone {
				t.Fatalf("first NotNow: %+v", o[0])
			}
			again := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0], Result: notNow, Now: t1.Add(time.Second)}})
			if !again[0].Alone {
				t.Fatalf("a NotNow for a command already held back: %+v, want left alone", again[0])
			}
			c, err := db.Command(context.Background(), cmds[0][0].ID)
			if err != nil || !c.NotBefore.Equal(t1.Add(command.NotNowDelay)) {
				t.Fatalf("the held-back command: %+v, %v; want NotBefore from the first NotNow", c, err)
			}
		}},
		{"fail/SameDeviceTwiceSecondIsLeftAlone", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 1, 3)
			outs := db.RunTripGroupForTest([]sqlstore.TripForTest{
				{DeviceID: devs[0], Result: ack(cmds[0][0].ID), Now: t1},
				{DeviceID: devs[0], Now: t1},
			})
			if outs[0].Alone || outs[0].Next.ID != cmds[0][1].ID || !outs[1].Alone {
				t.Fatalf("outcomes %+v, %+v; want the first applied, the second left alone", outs[0], outs[1])
			}
		}},
		{"fail/StatementErrorLeavesEveryoneAlone", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 2, 2)
			// PostgreSQL refuses a NUL in text: the statement fails.
			bad := &command.Result{CommandID: cmds[0][0].ID, Status: command.StatusError, Message: "bad\x00byte"}
			outs := db.RunTripGroupForTest([]sqlstore.TripForTest{
				{DeviceID: devs[0], Result: bad, Now: t1},
				{DeviceID: devs[1], Result: ack(cmds[1][0].ID), Now: t1},
			})
			for i, o := range outs {
				if !o.Alone {
					t.Fatalf("request %d of a failed statement: %+v, want left alone", i, o)
				}
			}
			// Nothing of the failed statement was stored; the lone call succeeds.
			done, _, next, err := db.CompleteAndNext(context.Background(), devs[1], *ack(cmds[1][0].ID), t1)
			if err != nil || done.Status != command.StatusAcknowledged || next.ID != cmds[1][1].ID || next.Deliveries != 1 {
				t.Fatalf("lone call after the failed group: %+v, %+v, %v", done, next, err)
			}
		}},
		{"ok/EachDeviceGetsItsNext", func(t *testing.T, db *sqlstore.DB) {
			const n = 8
			devs, cmds := queued(t, db, n, 3)
			trips := make([]sqlstore.TripForTest, n)
			for i, d := range devs {
				trips[i] = sqlstore.TripForTest{DeviceID: d, Result: ack(cmds[i][0].ID), Now: t1}
			}
			for i, o := range db.RunTripGroupForTest(trips) {
				switch {
				case o.Alone || o.Err != nil:
					t.Fatalf("device %d: %+v", i, o)
				case o.Done.ID != cmds[i][0].ID || o.Done.Status != command.StatusAcknowledged || o.Done.CompletedAt == nil || !o.Done.CompletedAt.Equal(t1):
					t.Fatalf("device %d: done %+v, want its first command acknowledged at t1", i, o.Done)
				case o.Next.ID != cmds[i][1].ID || o.Next.Status != command.StatusSent || o.Next.Deliveries != 1 || !o.Next.SentAt.Equal(t1):
					t.Fatalf("device %d: next %+v, want its second command sent once at t1", i, o.Next)
				}
				stored, err := db.Command(context.Background(), o.Next.ID)
				if err != nil || stored.Status != command.StatusSent || stored.Deliveries != 1 {
					t.Fatalf("device %d: stored next %+v, %v", i, stored, err)
				}
			}
		}},
		{"ok/NotNowIsKeptAndNotRedeliveredInItsGroup", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 1, 2)
			outs := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0],
				Result: &command.Result{CommandID: cmds[0][0].ID, Status: command.StatusNotNow}, Now: t1}})
			o := outs[0]
			if o.Alone || o.Done.Status != command.StatusNotNow || o.Done.NotBefore == nil || !o.Done.NotBefore.Equal(t1.Add(command.NotNowDelay)) ||
				o.Done.CompletedAt != nil || o.Next.ID != cmds[0][1].ID {
				t.Fatalf("NotNow: %+v, done %+v; want kept until t1+NotNowDelay and the second command next", o, o.Done)
			}
		}},
		{"ok/DeliveryAloneAndIdle", func(t *testing.T, db *sqlstore.DB) {
			devs, cmds := queued(t, db, 2, 1)
			if _, _, _, err := db.CompleteAndNext(context.Background(), devs[1], *ack(cmds[1][0].ID), t1); err != nil {
				t.Fatal(err)
			}
			outs := db.RunTripGroupForTest([]sqlstore.TripForTest{{DeviceID: devs[0], Now: t1}, {DeviceID: devs[1], Now: t1}})
			// Device 0's only command was delivered and not answered: it is delivered again.
			if outs[0].Alone || outs[0].Next == nil || outs[0].Next.ID != cmds[0][0].ID || outs[0].Next.Deliveries != 2 {
				t.Fatalf("redelivery: %+v", outs[0])
			}
			if outs[1].Alone || outs[1].Next != nil || outs[1].Done != nil {
				t.Fatalf("a device with nothing due: %+v, want nothing", outs[1])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, sqltest.Open(t, "postgres")) })
	}
}

// TestConcurrentRoundTripsDeliverEachCommandOnce has many devices drain
// their queues at once through CompleteAndNext (grouped on PostgreSQL):
// every command is delivered once, in order, to its own device, and ends
// acknowledged.
func TestConcurrentRoundTripsDeliverEachCommandOnce(t *testing.T) {
	const devices, perDevice = 24, 6
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			devs, cmds := queued(t, db, devices, perDevice)
			var wg sync.WaitGroup
			errs := make(chan error, devices)
			for i, d := range devs {
				wg.Go(func() {
					cur := cmds[i][0]
					for k := 1; ; k++ {
						_, _, next, err := db.CompleteAndNext(context.Background(), d, *ack(cur.ID), tripT0.Add(time.Duration(k)*time.Millisecond))
						switch {
						case err != nil:
							errs <- fmt.Errorf("device %d: %w", i, err)
							return
						case k == perDevice && next != nil:
							errs <- fmt.Errorf("device %d: %s delivered after its last command", i, next.ID)
							return
						case k == perDevice:
							return
						case next == nil || next.ID != cmds[i][k].ID || next.Deliveries != 1:
							errs <- fmt.Errorf("device %d: got %+v as command %d, want %s delivered once", i, next, k, cmds[i][k].ID)
							return
						}
						cur = next
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for i := range devs {
				for _, c := range cmds[i] {
					if got, err := db.Command(context.Background(), c.ID); err != nil || got.Status != command.StatusAcknowledged || got.Deliveries != 1 {
						t.Fatalf("command %s of device %d: %+v, %v; want acknowledged after one delivery", c.ID, i, got, err)
					}
				}
			}
		})
	}
}

// wantUntouched checks that a device's commands are as queued left them:
// the first delivered once, the others pending.
func wantUntouched(t *testing.T, db *sqlstore.DB, cmds []*command.Command) {
	t.Helper()
	for i, c := range cmds {
		got, err := db.Command(context.Background(), c.ID)
		want, deliveries := command.StatusPending, 0
		if i == 0 {
			want, deliveries = command.StatusSent, 1
		}
		if err != nil || got.Status != want || got.Deliveries != deliveries {
			t.Fatalf("command %d: %+v, %v; want %s after %d deliveries", i, got, err, want, deliveries)
		}
	}
}

// needPostgres skips the test without PostgreSQL (the groups exist only
// there), and fails it in CI, where PostgreSQL must be configured.
func needPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv(sqltest.EnvPostgres) == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(sqltest.EnvPostgres + " must be set in CI: this test needs PostgreSQL")
		}
		t.Skip(sqltest.EnvPostgres + " is not set")
	}
}

// TestCommandPlansLookUpByIndex checks how PostgreSQL runs the queue's
// per-device statements: every read of the commands table is an index
// lookup, whatever the table's statistics say. A plan made on a new
// installation (an empty table) or after statistics that found no open
// command, then kept while the fleet's queue grew, once read the whole
// table or every open command of the fleet for one device's round trip
// (see migration 0018 and resultApplies).
func TestCommandPlansLookUpByIndex(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, db *sqlstore.DB, devs []string)
	}{
		{"fail/NewInstallation", func(*testing.T, *sqlstore.DB, []string) {}},
		{"fail/StatisticsFromBeforeAFleetCommand", func(t *testing.T, db *sqlstore.DB, devs []string) {
			if err := db.FillCommandsForTest(ctx, devs, 20000, command.StatusAcknowledged, tripT0); err != nil {
				t.Fatal(err)
			}
			if err := db.AnalyzeCommandsForTest(ctx); err != nil {
				t.Fatal(err)
			}
			// A fleet-wide command queued after the statistics.
			if err := db.FillCommandsForTest(ctx, devs, 20000, command.StatusPending, tripT0); err != nil {
				t.Fatal(err)
			}
		}},
		{"ok/StatisticsOfAFleetCommand", func(t *testing.T, db *sqlstore.DB, devs []string) {
			if err := db.FillCommandsForTest(ctx, devs, 20000, command.StatusPending, tripT0); err != nil {
				t.Fatal(err)
			}
			if err := db.AnalyzeCommandsForTest(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := sqltest.Open(t, "postgres")
			devs, err := db.CreateDevicesForTest(ctx, usertest.CreateUser(t, db, "plans").ID, 200, tripT0)
			if err != nil {
				t.Fatal(err)
			}
			tc.fill(t, db, devs)
			plans, err := db.CommandPlansForTest(ctx, devs[0], id.New())
			if err != nil {
				t.Fatal(err)
			}
			if len(plans) != 11 {
				t.Fatalf("%d plans, want 11", len(plans))
			}
			for name, plan := range plans {
				var doc []struct{ Plan planNode }
				if err := json.Unmarshal([]byte(plan), &doc); err != nil || len(doc) != 1 {
					t.Fatalf("%s: EXPLAIN gave %q: %v", name, plan, err)
				}
				if bad := doc[0].Plan.readsWithoutLookup("commands"); bad != "" {
					t.Errorf("%s reads the commands table with a %s, want an index lookup; plan:\n%s", name, bad, plan)
				}
			}
		})
	}
}

// lookupCond is an index condition that finds one device's commands or
// one command.
var lookupCond = regexp.MustCompile(`\b(device_)?id = `)

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	IndexCond string     `json:"Index Cond"`
	Plans     []planNode `json:"Plans"`
}

// readsWithoutLookup describes the first node reading table other than by
// an index condition on one device or one command, or is empty.
func (n planNode) readsWithoutLookup(table string) string {
	if n.Relation == table && n.NodeType != "ModifyTable" &&
		(n.NodeType != "Index Scan" && n.NodeType != "Index Only Scan" || !lookupCond.MatchString(n.IndexCond)) {
		return fmt.Sprintf("%s %s (index condition %q)", n.NodeType, n.IndexName, n.IndexCond)
	}
	for _, c := range n.Plans {
		if bad := c.readsWithoutLookup(table); bad != "" {
			return bad
		}
	}
	return ""
}
