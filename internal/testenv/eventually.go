package testenv

import (
	"testing"
	"time"
)

// Poll calls cond every interval until it returns true or timeout has
// passed, and reports whether it returned true. cond runs at least once,
// and once more after the deadline, so a slow last interval cannot cause
// a false timeout.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(interval)
	}
}

// Eventually is Poll for a condition the test needs: check returns nil
// once it holds, or why not; if it still does not hold after timeout, the
// test fails with check's last error.
func Eventually(t testing.TB, timeout, interval time.Duration, check func() error) {
	t.Helper()
	var err error
	if !Poll(timeout, interval, func() bool { err = check(); return err == nil }) {
		t.Fatalf("not within %v: %v", timeout, err)
	}
}
