package policy

import (
	"strings"
	"testing"
	"time"
)

func TestActivationAllowed(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	sunNight := []Window{mustWindow(t, "Sun 02:00-04:00")}
	freeze := []Freeze{{ID: "xmas", From: utc("2026-03-25 00:00"), To: utc("2026-03-27 00:00"), Reason: "sales"}}
	chained := append([]Freeze{{ID: "after", From: utc("2026-03-27 00:00"), To: utc("2026-03-28 00:00")}}, freeze...)
	for _, tc := range []struct {
		name string
		a    Activation
		now  string
		ok   bool
		next time.Time
		why  string
	}{
		{"nothing set", Activation{}, "2026-03-25 11:00", true, time.Time{}, ""},
		{"before activate_at", Activation{At: utc("2026-03-25 12:00")}, "2026-03-25 11:59:59", false, utc("2026-03-25 12:00"), "waiting to activate at"},
		{"at activate_at", Activation{At: utc("2026-03-25 12:00")}, "2026-03-25 12:00", true, time.Time{}, ""},
		{"outside window", Activation{Windows: sunNight, Location: berlin}, "2026-03-25 11:00", false,
			utc("2026-03-29 01:00"), "waiting for activation window Sun 02:00-04:00 (opens at 2026-03-29 03:00 CEST)"},
		{"inside window", Activation{Windows: sunNight, Location: berlin}, "2026-03-22 01:30", true, time.Time{}, ""},
		{"freeze waits for its end", Activation{Freezes: freeze}, "2026-03-25 11:00", false, utc("2026-03-27 00:00"), "waiting for the end of catalog freeze xmas (sales)"},
		{"touching freezes chain", Activation{Freezes: chained}, "2026-03-25 11:00", false, utc("2026-03-28 00:00"), "catalog freeze xmas"},
		{"freeze is over", Activation{Freezes: freeze}, "2026-03-27 00:00", true, time.Time{}, ""},
		{"urgent goes through a freeze", Activation{Freezes: freeze, Urgent: true}, "2026-03-25 11:00", true, time.Time{}, "urgent despite catalog freeze xmas"},
		{"urgent still waits for activate_at", Activation{Freezes: freeze, Urgent: true, At: utc("2026-03-26 00:00")}, "2026-03-25 11:00", false, utc("2026-03-26 00:00"), "waiting to activate at"},
		{"activate_at inside a freeze waits for its end", Activation{Freezes: freeze, At: utc("2026-03-25 12:00")}, "2026-03-25 12:00", false, utc("2026-03-27 00:00"), "catalog freeze"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why, next := ActivationAllowed(tc.a, utc(tc.now))
			if ok != tc.ok || !next.Equal(tc.next) || !strings.Contains(why, tc.why) {
				t.Errorf("ActivationAllowed = %v, %q, %v; want %v, %q, %v", ok, why, next, tc.ok, tc.why, tc.next)
			}
		})
	}
}

// TestActivateAtFakeClock: agents whose passes tick once a second, at any
// phase, all switch at or after activate_at and within 2 s of it.
func TestActivateAtFakeClock(t *testing.T) {
	at := utc("2026-03-25 12:00")
	for phase := time.Duration(0); phase < time.Second; phase += 125 * time.Millisecond {
		now := at.Add(-10*time.Second + phase)
		for {
			ok, _, next := ActivationAllowed(Activation{At: at}, now)
			if ok {
				break
			}
			if !next.Equal(at) {
				t.Fatalf("next = %v, want %v", next, at)
			}
			now = now.Add(time.Second)
		}
		if now.Before(at) || now.Sub(at) > 2*time.Second {
			t.Errorf("phase %v: switched at %v, want within [%v, +2s]", phase, now, at)
		}
	}
}

// TestFreezeThenActivate: an activation that falls inside a freeze happens
// at the freeze's end, not before; an urgent one at once.
func TestFreezeThenActivate(t *testing.T) {
	fr := []Freeze{{ID: "f1", From: utc("2026-03-25 10:00"), To: utc("2026-03-25 14:00")}}
	for _, urgent := range []bool{false, true} {
		now := utc("2026-03-25 09:00")
		a := Activation{At: utc("2026-03-25 11:00"), Freezes: fr, Urgent: urgent}
		for i := 0; i < 100; i++ {
			ok, _, next := ActivationAllowed(a, now)
			if ok {
				break
			}
			now = next // an agent that sleeps until the next change
		}
		want := utc("2026-03-25 14:00")
		if urgent {
			want = utc("2026-03-25 11:00")
		}
		if !now.Equal(want) {
			t.Errorf("urgent=%v: activated at %v, want %v", urgent, now, want)
		}
	}
}

func TestOpenTime(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	nights := []Window{mustWindow(t, "daily 22:00-06:00")}
	for _, tc := range []struct {
		name     string
		w        []Window
		from, to string
		want     time.Duration
	}{
		{"no windows", nil, "2026-03-25 00:00", "2026-03-25 05:00", 5 * time.Hour},
		{"one night (UTC+1)", nights, "2026-03-25 12:00", "2026-03-26 12:00", 8 * time.Hour},
		{"inside a window", nights, "2026-03-25 22:00", "2026-03-25 23:00", time.Hour},
		{"empty span", nights, "2026-03-25 12:00", "2026-03-25 12:00", 0},
		{"DST night is an hour shorter", nights, "2026-03-28 12:00", "2026-03-29 12:00", 7 * time.Hour},
	} {
		if got := OpenTime(tc.w, berlin, utc(tc.from), utc(tc.to)); got != tc.want {
			t.Errorf("%s: OpenTime = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPlanDeadline drives an agent's download with a fake clock: nightly
// windows of 8 h at 10 MB/s give 288 GB a night; a 600 GB release due in
// a day and a half cannot make it inside the windows, so an agent allowed
// to starts early and finishes before the deadline, and one not allowed
// misses it (and says so beforehand).
func TestPlanDeadline(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	nights := []Window{mustWindow(t, "daily 22:00-06:00")}
	const size, rate = 600e9, 10e6
	start := utc("2026-03-25 09:00") // 10:00 local: windows closed
	deliver := utc("2026-03-26 21:00")
	for _, tc := range []struct {
		name   string
		limits DeadlineLimits
		meets  bool
	}{
		{"may start early", DeadlineLimits{MayStartEarly: true}, true},
		{"must keep the windows", DeadlineLimits{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remaining := int64(size)
			flagged := false
			now := start
			for ; remaining > 0 && now.Before(deliver.Add(48*time.Hour)); now = now.Add(time.Minute) {
				d := Deadline{Deliver: deliver, Remaining: remaining, Rate: rate, Windows: nights, Location: berlin}
				p := PlanDeadline(d, tc.limits, now)
				if p.AtRisk && now.Before(deliver) {
					flagged = true
				}
				// As the agent does: the deliver-by rule of MayDownload (go
				// when no window opens before the deadline) is an early
				// start too, so it applies only when the limits allow one.
				f := Fetch{Windows: nights, Location: berlin}
				if tc.limits.MayStartEarly {
					f.Deliver = deliver
				}
				ok, _ := MayDownload(f, now, Conditions{BatteryPercent: -1}, PowerRules{})
				if p.StartEarly {
					ok = true
				}
				if ok {
					remaining -= int64(rate * 60)
				}
			}
			met := remaining <= 0 && !now.After(deliver)
			if met != tc.meets {
				t.Errorf("met deadline = %v (done at %v), want %v", met, now, tc.meets)
			}
			if !flagged {
				t.Error("never flagged at risk before the deadline")
			}
		})
	}
	// Enough window time: not at risk, nothing changes.
	p := PlanDeadline(Deadline{Deliver: deliver, Remaining: 100e9, Rate: rate, Windows: nights, Location: berlin},
		DeadlineLimits{MayStartEarly: true, MaxProfile: "fast"}, start)
	if p.AtRisk || p.StartEarly || p.RaiseProfile {
		t.Errorf("plan = %+v, want nothing", p)
	}
	// Raising the profile is the first step; the profile's limit caps the rate.
	p = PlanDeadline(Deadline{Deliver: deliver, Remaining: 100e9, Rate: rate, Limit: 1e6, Windows: nights, Location: berlin},
		DeadlineLimits{MaxProfile: "fast"}, start)
	if !p.AtRisk || !p.RaiseProfile || p.StartEarly || !strings.Contains(p.Reason, "raising rate profile to fast") {
		t.Errorf("plan = %+v, want at risk, raise profile", p)
	}
	// No rate yet, and no window opens before the deadline: at risk anyway.
	p = PlanDeadline(Deadline{Deliver: utc("2026-03-25 12:00"), Remaining: 1, Windows: nights, Location: berlin},
		DeadlineLimits{MayStartEarly: true}, start)
	if !p.AtRisk || !p.StartEarly || !strings.Contains(p.Reason, "no download window opens before it") {
		t.Errorf("no window before the deadline: plan = %+v", p)
	}
	// No rate measured yet: no projection.
	if p := PlanDeadline(Deadline{Deliver: deliver, Remaining: 1}, DeadlineLimits{MayStartEarly: true}, start); p.AtRisk {
		t.Errorf("no rate: plan = %+v", p)
	}
}

func TestWillMiss(t *testing.T) {
	now := utc("2026-03-25 12:00")
	for _, tc := range []struct {
		name      string
		remaining int64
		rate      float64
		deliver   time.Time
		want      bool
	}{
		{"no deadline", 1, 1, time.Time{}, false},
		{"done", 0, 0, now, false},
		{"fast enough", 3600e6, 2e6, now.Add(time.Hour), false},
		{"too slow", 3600e6, 0.5e6, now.Add(time.Hour), true},
		{"stalled, deadline near", 1, 0, now.Add(time.Hour), true},
		{"stalled, deadline far", 1, 0, now.Add(30 * 24 * time.Hour), false},
		{"passed", 1, 1e9, now.Add(-time.Second), true},
	} {
		if got := WillMiss(tc.remaining, tc.rate, tc.deliver, now, 24*time.Hour); got != tc.want {
			t.Errorf("%s: WillMiss = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFreezeValidate(t *testing.T) {
	if err := (Freeze{From: utc("2026-03-25 12:00"), To: utc("2026-03-25 12:00")}).Validate(); err == nil {
		t.Error("empty freeze accepted")
	}
	if err := (Freeze{From: utc("2026-03-25 12:00"), To: utc("2026-03-25 13:00")}).Validate(); err != nil {
		t.Error(err)
	}
}
