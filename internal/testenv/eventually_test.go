package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) {
		t.Fatal("Poll gave up on a condition that turned true")
	}
	if n != 3 {
		t.Errorf("cond ran %d times, want 3 (it stops at the first true)", n)
	}
	start := time.Now()
	if Poll(30*time.Millisecond, 5*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its timeout", d)
	}
}

// recorder is a testing.TB that records a Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	r := &recorder{TB: t}
	Eventually(r, 20*time.Millisecond, time.Millisecond, func() error { return errors.New("still waiting") })
	if want := "not within 20ms: still waiting"; r.failed != want {
		t.Errorf("failure %q, want %q", r.failed, want)
	}
	r = &recorder{TB: t}
	n := 0
	Eventually(r, time.Second, time.Millisecond, func() error {
		if n++; n < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if r.failed != "" {
		t.Errorf("failed although the check passed: %s", r.failed)
	}
}
