//go:build !linux

package agent

// freeBytes cannot read free space here; the probe's test write decides.
func freeBytes(string) (int64, bool) { return 0, false }
