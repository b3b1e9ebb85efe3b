package failover

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestBackoff(t *testing.T) {
	p := Policy{Base: time.Second, Max: 10 * time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {60, 10 * time.Second}} {
		if got := p.Backoff(c.n); got != c.want {
			t.Errorf("Backoff(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := (Policy{}).Backoff(1); got != DefaultPolicy.Base {
		t.Errorf("zero policy: %v", got)
	}
}

func TestJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		l := New([]string{"a"}, Policy{Base: 4 * time.Second, Max: time.Minute})
		l.SetRand(func() float64 { return r })
		until := l.Failed(0, t0, Error, "500")
		if d := until.Sub(t0); d < 2*time.Second || d > 4*time.Second {
			t.Errorf("rand %v: back-off %v outside [2s, 4s]", r, d)
		}
	}
}

func TestPickSkipsFailedUntilBackoffEnds(t *testing.T) {
	l := New([]string{"origin", "s3", "mirror"}, Policy{Base: 10 * time.Second, Max: time.Minute})
	l.SetRand(func() float64 { return 1 }) // whole back-off
	steps := []struct {
		at     time.Duration
		fail   int // -1: none
		reason Reason
		pick   int
		order  []int
	}{
		{0, -1, "", 0, []int{0, 1, 2}},
		{0, 0, Error, 1, []int{1, 2, 0}},
		{5 * time.Second, 1, Timeout, 2, []int{2, 0, 1}},
		{11 * time.Second, -1, "", 0, []int{0, 2, 1}},   // origin's 10 s are over
		{11 * time.Second, 0, Stale, 2, []int{2, 1, 0}}, // second failure: 20 s
		{16 * time.Second, -1, "", 1, []int{1, 2, 0}},
		{31 * time.Second, -1, "", 0, []int{0, 1, 2}},
	}
	for n, s := range steps {
		now := t0.Add(s.at)
		if s.fail >= 0 {
			l.Failed(s.fail, now, s.reason, "x")
		}
		if got, _ := l.Pick(now); got != s.pick {
			t.Errorf("step %d: pick %d, want %d", n, got, s.pick)
		}
		if got := l.Order(now); !slices.Equal(got, s.order) {
			t.Errorf("step %d: order %v, want %v", n, got, s.order)
		}
	}
	st := l.Statuses(t0.Add(12 * time.Second))
	if st[0].Name != "origin" || st[0].Healthy || st[0].Reason != Stale || st[0].Failures != 2 {
		t.Errorf("origin status %+v", st[0])
	}
	l.Succeeded(0, t0.Add(40*time.Second))
	st = l.Statuses(t0.Add(40 * time.Second))
	if !st[0].Healthy || st[0].Reason != "" || st[0].Failures != 0 || !st[0].InUse {
		t.Errorf("after success %+v", st[0])
	}
}

func TestAllDownTriesSoonestFirst(t *testing.T) {
	l := New([]string{"a", "b"}, Policy{Base: 10 * time.Second, Max: time.Minute})
	l.SetRand(func() float64 { return 1 })
	l.Failed(0, t0, Error, "x")
	l.Failed(0, t0, Error, "x") // 20 s
	l.Failed(1, t0, Error, "x") // 10 s
	if _, ok := l.Pick(t0); ok {
		t.Fatal("pick with every source backing off")
	}
	if got := l.Order(t0); !slices.Equal(got, []int{1, 0}) {
		t.Errorf("order %v, want [1 0]", got)
	}
}

func TestTiersBEP12(t *testing.T) {
	reverse := func(n int, swap func(i, j int)) {
		for i := 0; i < n/2; i++ {
			swap(i, n-1-i)
		}
	}
	l := NewTiers([][]string{{"a1", "a2", "a3"}, {"b1", "b2"}}, Policy{Base: time.Second}, reverse)
	names := func() []string {
		var out []string
		for _, i := range l.Order(t0.Add(time.Hour)) {
			out = append(out, l.Name(i))
		}
		return out
	}
	if got, want := names(), []string{"a3", "a2", "a1", "b2", "b1"}; !slices.Equal(got, want) {
		t.Fatalf("shuffled once: %v, want %v", got, want)
	}
	// A responding tracker moves to the front of its own tier only.
	l.Succeeded(0, t0) // a1
	l.Succeeded(3, t0) // b1
	if got, want := names(), []string{"a1", "a3", "a2", "b1", "b2"}; !slices.Equal(got, want) {
		t.Fatalf("after answers: %v, want %v", got, want)
	}
	// The whole first tier down: the second tier is used.
	for _, i := range []int{0, 1, 2} {
		l.Failed(i, t0, Error, "connection refused")
	}
	if i, ok := l.Pick(t0); !ok || l.Name(i) != "b1" {
		t.Fatalf("pick %d %v, want b1", i, ok)
	}
	st := l.Statuses(t0)
	if st[3].Name != "b1" || st[3].Tier != 1 || st[0].Healthy {
		t.Errorf("statuses %+v", st)
	}
}
