// Package cputime reads this process's CPU time, for benchmarks that
// report CPU per operation beside ns/op: on a shared machine the wall
// clock counts the time other processes hold the cores, CPU time does not.
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Process is this process's user+system CPU time so far (0 if unknown).
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report adds "cpu-µs/op" to b: the CPU time since start over n operations.
func Report(b *testing.B, start time.Duration, n int) {
	if n > 0 {
		b.ReportMetric(float64(Process()-start)/1e3/float64(n), "cpu-µs/op")
	}
}
