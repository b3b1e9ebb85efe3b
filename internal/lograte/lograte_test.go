package lograte

import (
	"testing"
	"time"
)

// A flood gets Burst lines at once, PerSecond after, and the next line
// logged counts the rest.
func TestLimiterBoundsAFlood(t *testing.T) {
	var l Limiter
	now := time.Now()
	logged := 0
	for range 1000 {
		if ok, _ := l.Allow(now); ok {
			logged++
		}
	}
	ok, dropped := l.Allow(now.Add(time.Second))
	if logged != Burst || !ok || dropped != 1000-Burst {
		t.Errorf("logged %d of 1000, then %v with %d left out", logged, ok, dropped)
	}
	if ok, _ := (*Limiter)(nil).Allow(now); !ok {
		t.Error("a nil Limiter refused a line")
	}
}
