//go:build !unix

package apns_test

import "time"

func cpuTime() time.Duration { return 0 }
