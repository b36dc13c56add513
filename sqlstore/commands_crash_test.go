package sqlstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/command/commandtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// crashChildDSN, when set, makes TestKill9DuringBulkEnqueueIsAllOrNothing
// the child: it enqueues into the database the variable names.
const crashChildDSN = "CUSTOS_TEST_CRASH_CHILD_DSN"

// Lines the child prints on stdout, for the parent to time its kill and
// to know whether the child saw its commit.
const (
	crashStarted  = "custos-crash-test: enqueue started"
	crashEnqueued = "custos-crash-test: enqueue committed"
)

const (
	crashDevices = 10_000
	crashRuns    = 3
	// crashMaxDelay bounds the random wait between the child's start
	// signal and the kill; an Enqueue of crashDevices takes about as long,
	// so kills land before, during and after the transaction.
	crashMaxDelay = 300 * time.Millisecond
)

// TestKill9DuringBulkEnqueueIsAllOrNothing kills a process with SIGKILL
// while it enqueues one command for each of 10,000 devices in one Enqueue,
// then reopens the database: either every command is stored or none is.
// And if the child saw its commit before it died, all of them are.
func TestKill9DuringBulkEnqueueIsAllOrNothing(t *testing.T) {
	if dsn := os.Getenv(crashChildDSN); dsn != "" {
		crashChild(t, dsn)
		return
	}
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			outcomes := map[string]int{}
			for run := range crashRuns {
				outcomes[crashRun(t, backend, run)]++
			}
			t.Logf("%s: outcomes over %d runs: %v", backend, crashRuns, outcomes)
		})
	}
}

// crashRun prepares a database with crashDevices devices, lets a child
// enqueue into it, kills the child, and checks what is stored. It returns
// what happened, for the log.
func crashRun(t *testing.T, backend string, run int) string {
	t.Helper()
	ctx := context.Background()
	dsn := sqltest.DSN(t, backend)
	db := open(t, dsn, "", nil)
	u := usertest.CreateUser(t, db, "crash")
	if _, err := db.CreateDevicesForTest(ctx, u.ID, crashDevices, commandtest.T0); err != nil {
		t.Fatal(err)
	}
	// SQLite: the child must be the file's only owner.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestKill9DuringBulkEnqueueIsAllOrNothing$", "-test.count=1")
	child.Env = append(os.Environ(), crashChildDSN+"="+dsn)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	committed := false
	waitFor := func(marker string) bool {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return false
				}
				if l == crashEnqueued {
					committed = true
				}
				if l == marker {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	if !waitFor(crashStarted) {
		_ = child.Process.Kill()
		_ = child.Wait()
		t.Fatalf("run %d: the child never started its Enqueue", run)
	}
	time.Sleep(rand.N(crashMaxDelay))
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatalf("kill: %v", err)
	}
	_ = child.Wait() // "signal: killed"
	// Drain what the child printed before it died.
	for l := range lines {
		if l == crashEnqueued {
			committed = true
		}
	}

	again := open(t, dsn, "", nil)
	n, err := again.CountCommandsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case committed && n != crashDevices:
		t.Fatalf("run %d: the child saw its commit, then %d of %d commands are stored", run, n, crashDevices)
	case n != 0 && n != crashDevices:
		t.Fatalf("run %d: %d of %d commands stored after kill -9: not all or nothing", run, n, crashDevices)
	}
	// The database is usable after the crash: the queue serves.
	devices, err := again.ListDevices(ctx, device.Query{Limit: 1})
	if err != nil || len(devices) != 1 {
		t.Fatalf("ListDevices after the crash: %d, %v", len(devices), err)
	}
	if _, err := again.Next(ctx, devices[0].ID, commandtest.T0); n == crashDevices && err != nil || n == 0 && !errors.Is(err, command.ErrIdle) {
		t.Fatalf("Next after the crash with %d commands stored: %v", n, err)
	}
	switch {
	case committed:
		return "committed before the kill"
	case n == crashDevices:
		return "committed, kill raced the acknowledgement"
	}
	return "rolled back"
}

// crashChild is the child process: it enqueues one command for every
// device of the database and waits to be killed.
func crashChild(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*command.Command
	for after := ""; ; {
		page, err := db.ListDevices(ctx, device.Query{After: after, Limit: device.MaxPage})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			cmds = append(cmds, &command.Command{ID: id.New(), DeviceID: d.ID, Type: command.Lock, Priority: command.PriorityAdmin,
				Status: command.StatusPending, CreatedBy: "crash-test", CreatedAt: commandtest.T0,
				ExpiresAt: commandtest.T0.Add(command.DefaultTTL)})
		}
		after = page[len(page)-1].ID
	}
	fmt.Println(crashStarted)
	n, err := db.Enqueue(ctx, cmds)
	if err != nil || n != len(cmds) {
		t.Fatalf("Enqueue = %d, %v", n, err)
	}
	fmt.Println(crashEnqueued)
	// Wait for the kill: a clean exit would prove nothing about crashes.
	time.Sleep(time.Minute)
	t.Fatal("the parent never killed the child")
}
