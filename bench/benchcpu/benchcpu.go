// Package benchcpu measures CPU time for benchmarks, which report CPU per
// operation beside throughput: a busy shared machine distorts CPU time far
// less than wall-clock rates, and CPU spent outside the benchmark's
// process is the database server's.
package benchcpu

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Machine is the CPU time every process of the machine has used: all of
// /proc/stat's columns but idle and iowait. It is 0 where /proc/stat
// cannot be read.
func Machine() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		busy += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(busy) * 10 * time.Millisecond
}
