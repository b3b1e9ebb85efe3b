//go:build unix

package tracker

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system) this process has used. Benchmarks
// report it per op because wall time on a shared machine counts other
// tenants' load.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
