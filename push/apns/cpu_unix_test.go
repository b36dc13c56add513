//go:build unix

package apns_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used; the
// benchmark reports CPU per notification, which a busy shared machine
// distorts far less than wall-clock throughput.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
