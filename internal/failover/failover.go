// Package failover keeps a health-tracked, ordered list of sources that
// serve the same thing (catalog mirrors, trackers, offload origins) and
// says which to try first. A source that fails is skipped for a back-off
// period that grows exponentially, with jitter so that a fleet does not
// come back to a mirror in one wave; one that answers is healthy again.
//
// It does no I/O and reads no clock: callers pass the time in.
package failover

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Reason says why a source is skipped.
type Reason string

const (
	// Error: the source answered with an error or bytes that do not verify.
	Error Reason = "error"
	// Timeout: the source did not answer in time.
	Timeout Reason = "timeout"
	// Stale: the source serves validly signed data older than what the
	// caller already holds (a mirror that stopped syncing, or a replay).
	Stale Reason = "stale"
)

// Policy is the back-off rule. The zero value uses the defaults.
type Policy struct {
	// Base is the back-off after the first failure (default 5 s); each
	// further failure doubles it, up to Max (default 5 min).
	Base time.Duration
	Max  time.Duration
}

// DefaultPolicy is what a zero Policy means.
var DefaultPolicy = Policy{Base: 5 * time.Second, Max: 5 * time.Minute}

func (p Policy) withDefaults() Policy {
	if p.Base <= 0 {
		p.Base = DefaultPolicy.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultPolicy.Max
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	return p
}

// Backoff is the back-off after the n-th failure in a row (n >= 1) before
// jitter: Base doubled n-1 times, at most Max.
func (p Policy) Backoff(n int) time.Duration {
	p = p.withDefaults()
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Status is one source's health, as status pages show it.
type Status struct {
	Name    string `json:"name"`
	Tier    int    `json:"tier"`
	Healthy bool   `json:"healthy"`
	// Reason and Detail say why the source is skipped (or last failed);
	// Until is when it will be tried again.
	Reason   Reason    `json:"reason,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Until    time.Time `json:"until,omitzero"`
	Failures int       `json:"failures,omitempty"` // in a row
	LastOK   time.Time `json:"last_ok,omitzero"`
	// InUse marks the source that served the last successful request.
	InUse bool `json:"in_use,omitempty"`
}

type source struct {
	name     string
	tier     int
	reason   Reason
	detail   string
	until    time.Time
	failures int
	lastOK   time.Time
}

// List is an ordered set of sources in tiers. Sources are preferred by
// tier, then by their place in the tier. It is safe for concurrent use.
type List struct {
	pol  Policy
	rand func() float64 // in [0, 1), for jitter

	mu    sync.Mutex
	srcs  []source
	order []int // indices into srcs, preferred first
	inUse int   // -1: none yet
}

// New returns a list of one source per name, in that order (catalog
// mirrors, offload origins: the configured order is the preference).
func New(names []string, pol Policy) *List {
	tiers := make([][]string, len(names))
	for i, n := range names {
		tiers[i] = []string{n}
	}
	return NewTiers(tiers, pol, nil)
}

// NewTiers returns a list of tiers of sources, as BEP 12 orders trackers:
// tiers in order, each tier shuffled once (shuffle nil: rand.Shuffle).
// Index i of the list is the i-th name of the flattened tiers, as given.
func NewTiers(tiers [][]string, pol Policy, shuffle func(n int, swap func(i, j int))) *List {
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	l := &List{pol: pol.withDefaults(), rand: rand.Float64, inUse: -1}
	for t, names := range tiers {
		first := len(l.srcs)
		for _, n := range names {
			l.srcs = append(l.srcs, source{name: n, tier: t})
		}
		idx := make([]int, len(names))
		for i := range idx {
			idx[i] = first + i
		}
		shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		l.order = append(l.order, idx...)
	}
	return l
}

// SetRand replaces the jitter source (tests make it fixed).
func (l *List) SetRand(r func() float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rand = r
}

// Len is the number of sources.
func (l *List) Len() int { return len(l.srcs) }

// Name returns source i's name.
func (l *List) Name(i int) string { return l.srcs[i].name }

// Order returns the sources to try now, best first: the healthy ones in
// preference order, then those backing off, soonest back first, so that a
// caller with no healthy source still tries the likeliest one.
func (l *List) Order(now time.Time) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var healthy, waiting []int
	for _, i := range l.order {
		if l.healthyLocked(i, now) {
			healthy = append(healthy, i)
		} else {
			waiting = append(waiting, i)
		}
	}
	slices.SortStableFunc(waiting, func(a, b int) int { return l.srcs[a].until.Compare(l.srcs[b].until) })
	return append(healthy, waiting...)
}

// Pick returns the first healthy source, or false when all back off.
func (l *List) Pick(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range l.order {
		if l.healthyLocked(i, now) {
			return i, true
		}
	}
	return -1, false
}

// Healthy reports whether source i may be tried now.
func (l *List) Healthy(i int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.healthyLocked(i, now)
}

func (l *List) healthyLocked(i int, now time.Time) bool {
	return !now.Before(l.srcs[i].until)
}

// Succeeded records that source i answered: it is healthy, in use, and
// first in its tier from now on (BEP 12).
func (l *List) Succeeded(i int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.srcs[i]
	s.reason, s.detail, s.until, s.failures, s.lastOK = "", "", time.Time{}, 0, now
	l.inUse = i
	pos := slices.Index(l.order, i)
	start := pos
	for start > 0 && l.srcs[l.order[start-1]].tier == s.tier {
		start--
	}
	copy(l.order[start+1:pos+1], l.order[start:pos])
	l.order[start] = i
}

// Failed records that source i failed for reason (detail says how, for
// status) and starts or extends its back-off; it returns when the source
// will be tried again.
func (l *List) Failed(i int, now time.Time, reason Reason, detail string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.srcs[i]
	s.failures++
	d := l.pol.Backoff(s.failures)
	// Equal jitter: between half and all of the back-off.
	d = d/2 + time.Duration(l.rand()*float64(d/2))
	s.reason, s.detail, s.until = reason, detail, now.Add(d)
	if l.inUse == i {
		l.inUse = -1
	}
	return s.until
}

// Statuses returns every source's health in preference order.
func (l *List) Statuses(now time.Time) []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Status, 0, len(l.srcs))
	for _, i := range l.order {
		s := l.srcs[i]
		st := Status{Name: s.name, Tier: s.tier, Healthy: l.healthyLocked(i, now), Reason: s.reason,
			Detail: s.detail, Failures: s.failures, LastOK: s.lastOK, InUse: i == l.inUse}
		if !st.Healthy {
			st.Until = s.until
		}
		out = append(out, st)
	}
	return out
}

// Describe is a one-line summary of a status for tables and logs.
func (s Status) Describe(now time.Time) string {
	switch {
	case s.Reason == "" && s.InUse:
		return "in use"
	case s.Reason == "":
		return "healthy"
	case s.Healthy:
		return fmt.Sprintf("retrying (last %s: %s)", s.Reason, s.Detail)
	}
	return fmt.Sprintf("%s for %s: %s", s.Reason, s.Until.Sub(now).Round(time.Second), s.Detail)
}
