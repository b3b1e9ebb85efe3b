// Package lograte bounds log lines that clients can cause, such as one per
// refused request: a hostile client must not be able to fill the disk,
// while metrics still count every event.
package lograte

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Burst and PerSecond are the lines a Limiter lets through: Burst at once,
// then PerSecond.
const (
	Burst     = 20
	PerSecond = 2
)

// Limiter decides which events get a log line. The zero value is ready to
// use; a nil *Limiter lets every line through.
type Limiter struct {
	mu      sync.Mutex
	lim     *rate.Limiter // nil until the first event
	dropped int
}

// Allow reports whether the event at now may be logged and, if so, how
// many events were left unlogged since the last line (for that line to
// say so).
func (l *Limiter) Allow(now time.Time) (ok bool, dropped int) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim == nil {
		l.lim = rate.NewLimiter(PerSecond, Burst)
	}
	if !l.lim.AllowN(now, 1) {
		l.dropped++
		return false, 0
	}
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}
