package policy

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestScheduleOverlap: the first matching rule wins.
func TestScheduleOverlap(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		at    string // UTC; 2026-04-01 is a Wednesday
		want  string // "" for no rule
	}{
		{"exception first wins", []string{"Mon-Fri 08:00-18:00=business", "daily 00:00-24:00=night"}, "2026-04-01 10:00", "business"},
		{"exception first, outside it", []string{"Mon-Fri 08:00-18:00=business", "daily 00:00-24:00=night"}, "2026-04-01 19:00", "night"},
		{"exception first, weekend", []string{"Mon-Fri 08:00-18:00=business", "daily 00:00-24:00=night"}, "2026-04-04 10:00", "night"},
		{"general first shadows the rest", []string{"daily 00:00-24:00=night", "Mon-Fri 08:00-18:00=business"}, "2026-04-01 10:00", "night"},
		{"partial overlap, first", []string{"daily 08:00-12:00=a", "daily 10:00-14:00=b"}, "2026-04-01 11:00", "a"},
		{"partial overlap, reversed", []string{"daily 10:00-14:00=b", "daily 08:00-12:00=a"}, "2026-04-01 11:00", "b"},
		{"partial overlap, only second", []string{"daily 08:00-12:00=a", "daily 10:00-14:00=b"}, "2026-04-01 13:00", "b"},
		{"wrap overlaps morning rule", []string{"daily 22:00-06:00=night", "daily 05:00-09:00=morning"}, "2026-04-01 05:30", "night"},
		{"wrap overlaps morning rule, reversed", []string{"daily 05:00-09:00=morning", "daily 22:00-06:00=night"}, "2026-04-01 05:30", "morning"},
		{"no rule matches", []string{"Mon-Fri 08:00-18:00=business"}, "2026-04-04 10:00", ""},
		{"no rules", nil, "2026-04-04 10:00", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := schedule(t, nil, tc.rules...)
			name, ok := s.At(utc(tc.at))
			if name != tc.want || ok != (tc.want != "") {
				t.Fatalf("At = %q, %v; want %q", name, ok, tc.want)
			}
		})
	}
}

func TestScheduleInvalidRulesSkipped(t *testing.T) {
	s := Schedule{Rules: []Rule{
		{Window: Window{Days: EveryDay, Start: 60, End: 60}, Name: "bad"}, // would cover all day if not skipped
		{Window: mustWindow(t, "daily 08:00-09:00"), Name: "good"},
	}}
	if name, ok := s.At(utc("2026-04-01 03:00")); ok {
		t.Fatalf("invalid rule matched: %q", name)
	}
	if name, _ := s.At(utc("2026-04-01 08:30")); name != "good" {
		t.Fatalf("At = %q", name)
	}
	if got := s.NextChange(utc("2026-04-01 03:00")); !got.Equal(utc("2026-04-01 08:00")) {
		t.Fatalf("NextChange = %v", got)
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "rule 1") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestScheduleValidate(t *testing.T) {
	if err := schedule(t, nil, "Mon-Fri 08:00-18:00=business").Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Schedule{}).Validate(); err != nil {
		t.Fatal(err)
	}
	s := Schedule{Rules: []Rule{{Window: mustWindow(t, "Mon 08:00-09:00")}}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "rule 1 (Mon 08:00-09:00): no name") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestNextChange(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	ny := loadLoc(t, "America/New_York")
	tests := []struct {
		name  string
		loc   *time.Location
		rules []string
		from  string // UTC
		want  string // UTC; "" for the zero Time
	}{
		{"utc business opens", nil, []string{"Mon-Fri 08:00-18:00=b"}, "2026-04-01 07:00", "2026-04-01 08:00"},
		{"utc business closes", nil, []string{"Mon-Fri 08:00-18:00=b"}, "2026-04-01 08:00", "2026-04-01 18:00"},
		{"utc mid-minute", nil, []string{"Mon-Fri 08:00-18:00=b"}, "2026-04-01 07:59:30", "2026-04-01 08:00"},
		{"utc exactly at edge goes to next edge", nil, []string{"Mon-Fri 08:00-18:00=b"}, "2026-04-01 18:00", "2026-04-02 08:00"},
		{"utc over the weekend", nil, []string{"Mon-Fri 08:00-18:00=b"}, "2026-04-03 18:00", "2026-04-06 08:00"},
		{"wrap closes next morning", nil, []string{"Fri 22:00-06:00=n"}, "2026-04-03 23:00", "2026-04-04 06:00"},
		{"sunday wrap into monday", nil, []string{"Sun 22:00-02:00=n"}, "2026-04-05 21:00", "2026-04-05 22:00"},
		{"sunday wrap closes monday", nil, []string{"Sun 22:00-02:00=n"}, "2026-04-05 22:00", "2026-04-06 02:00"},
		{"sunday wrap reopens next sunday", nil, []string{"Sun 22:00-02:00=n"}, "2026-04-06 02:00", "2026-04-12 22:00"},
		{"same-name handover is no change", nil, []string{"daily 08:00-12:00=a", "daily 12:00-18:00=a"}, "2026-04-01 09:00", "2026-04-01 18:00"},
		{"different-name handover", nil, []string{"daily 08:00-12:00=a", "daily 12:00-18:00=b"}, "2026-04-01 09:00", "2026-04-01 12:00"},
		{"day and night cover everything", nil, []string{"daily 06:00-22:00=day", "daily 22:00-06:00=night"}, "2026-04-01 07:00", "2026-04-01 22:00"},
		{"shadowed rule never shows", nil, []string{"daily 00:00-24:00=all", "daily 08:00-09:00=x"}, "2026-04-01 07:00", ""},
		{"whole week never changes", nil, []string{"daily 00:00-24:00=all"}, "2026-04-01 07:00", ""},
		{"no rules never change", nil, nil, "2026-04-01 07:00", ""},
		{"consecutive days join", nil, []string{"Sat,Sun 00:00-24:00=we"}, "2026-04-04 01:00", "2026-04-06 00:00"},
		{"midnight only changes weekday", nil, []string{"Mon 20:00-24:00=a", "Tue 00:00-04:00=a"}, "2026-03-30 21:00", "2026-03-31 04:00"},

		// Europe/Berlin spring forward 2026-03-29 (01:00 UTC: 02:00 CET -> 03:00 CEST).
		{"berlin: gap window skipped to next week", berlin, []string{"Sun 02:00-03:00=x"}, "2026-03-28 12:00", "2026-04-05 00:00"},
		{"berlin: window opening in the gap opens at the jump", berlin, []string{"Sun 02:30-05:00=x"}, "2026-03-29 00:00", "2026-03-29 01:00"},
		{"berlin: ... and closes at 05:00 CEST", berlin, []string{"Sun 02:30-05:00=x"}, "2026-03-29 01:00", "2026-03-29 03:00"},
		{"berlin: window across the gap closes at 04:00 CEST", berlin, []string{"Sun 01:00-04:00=x"}, "2026-03-29 00:00", "2026-03-29 02:00"},
		{"berlin: night opens 22:00 CET", berlin, []string{"daily 22:00-06:00=n"}, "2026-03-28 12:00", "2026-03-28 21:00"},
		{"berlin: night closes 06:00 CEST", berlin, []string{"daily 22:00-06:00=n"}, "2026-03-28 21:00", "2026-03-29 04:00"},
		{"berlin: business monday after spring forward", berlin, []string{"Mon-Fri 08:00-18:00=b"}, "2026-03-27 17:00", "2026-03-30 06:00"},
		{"berlin: business friday before, CET", berlin, []string{"Mon-Fri 08:00-18:00=b"}, "2026-03-27 06:00", "2026-03-27 07:00"},
		// Europe/Berlin fall back 2026-10-25 (01:00 UTC: 03:00 CEST -> 02:00 CET).
		{"berlin: repeated hour opens 02:00 CEST", berlin, []string{"Sun 02:00-03:00=x"}, "2026-10-24 12:00", "2026-10-25 00:00"},
		{"berlin: repeated hour covers both passes", berlin, []string{"Sun 02:00-03:00=x"}, "2026-10-25 00:00", "2026-10-25 02:00"},
		{"berlin: from the second pass", berlin, []string{"Sun 02:00-03:00=x"}, "2026-10-25 01:30", "2026-10-25 02:00"},
		{"berlin: window ending in the repeated hour closes at 02:30 CEST", berlin, []string{"Sun 01:00-02:30=x"}, "2026-10-24 23:00", "2026-10-25 00:30"},
		{"berlin: ... and reopens for the second 02:00-02:30 (CET)", berlin, []string{"Sun 01:00-02:30=x"}, "2026-10-25 00:30", "2026-10-25 01:00"},
		{"berlin: ... which ends at 02:30 CET", berlin, []string{"Sun 01:00-02:30=x"}, "2026-10-25 01:00", "2026-10-25 01:30"},
		{"berlin: night closes 06:00 CET", berlin, []string{"daily 22:00-06:00=n"}, "2026-10-24 20:00", "2026-10-25 05:00"},
		{"berlin: business after fall back", berlin, []string{"Mon-Fri 08:00-18:00=b"}, "2026-10-24 12:00", "2026-10-26 07:00"},
		// America/New_York spring forward 2026-03-08 (07:00 UTC: 02:00 EST -> 03:00 EDT).
		{"ny: gap window skipped to next week", ny, []string{"Sun 02:00-03:00=x"}, "2026-03-07 12:00", "2026-03-15 06:00"},
		{"ny: night closes 06:00 EDT", ny, []string{"Sat 22:00-06:00=n"}, "2026-03-08 04:00", "2026-03-08 10:00"},
		{"ny: business monday, EDT", ny, []string{"Mon-Fri 09:00-17:00=b"}, "2026-03-06 23:00", "2026-03-09 13:00"},
		// America/New_York fall back 2026-11-01 (06:00 UTC: 02:00 EDT -> 01:00 EST).
		{"ny: repeated hour opens 01:00 EDT", ny, []string{"Sun 01:00-02:00=x"}, "2026-10-31 12:00", "2026-11-01 05:00"},
		{"ny: repeated hour closes 02:00 EST", ny, []string{"Sun 01:00-02:00=x"}, "2026-11-01 05:00", "2026-11-01 07:00"},
		{"ny: two rules swap across the fall back", ny, []string{"Sun 00:00-01:30=a", "Sun 01:30-03:00=b"}, "2026-11-01 05:10", "2026-11-01 05:30"},
		{"ny: ... b until the clock goes back", ny, []string{"Sun 00:00-01:30=a", "Sun 01:30-03:00=b"}, "2026-11-01 05:30", "2026-11-01 06:00"},
		{"ny: ... a again on the second pass", ny, []string{"Sun 00:00-01:30=a", "Sun 01:30-03:00=b"}, "2026-11-01 06:00", "2026-11-01 06:30"},
		{"ny: ... then b until 03:00 EST", ny, []string{"Sun 00:00-01:30=a", "Sun 01:30-03:00=b"}, "2026-11-01 06:30", "2026-11-01 08:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := schedule(t, tc.loc, tc.rules...)
			got := s.NextChange(utc(tc.from))
			if tc.want == "" {
				if !got.IsZero() {
					t.Fatalf("NextChange = %v, want zero", got.UTC())
				}
				return
			}
			if !got.Equal(utc(tc.want)) {
				t.Fatalf("NextChange(%s UTC) = %s UTC (%s), want %s UTC", tc.from, got.UTC().Format("2006-01-02 15:04:05"), got, tc.want)
			}
			if tc.loc != nil && got.Location() != tc.loc {
				t.Fatalf("result in %v, want the schedule's location", got.Location())
			}
			// The answer really changes there and not a moment earlier.
			n0, o0 := s.At(utc(tc.from))
			n1, o1 := s.At(got)
			nb, ob := s.At(got.Add(-time.Nanosecond))
			if n0 == n1 && o0 == o1 {
				t.Fatalf("answer at the change is the same: %q %v", n1, o1)
			}
			if got.Add(-time.Nanosecond).After(utc(tc.from)) && (nb != n0 || ob != o0) {
				t.Fatalf("answer changed earlier")
			}
		})
	}
}

// TestNextChangeMatchesScan compares NextChange with a minute-by-minute scan
// for random schedules and instants, many near DST changes, in zones with
// hour and half-hour DST shifts and odd offsets.
func TestNextChangeMatchesScan(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "America/Havana", "America/Santiago"}
	// DST-ish dates to cluster around (UTC), plus random instants in 2026.
	hot := []string{"2026-03-08 07:00", "2026-03-29 01:00", "2026-10-25 01:00", "2026-11-01 06:00", "2026-04-04 15:00", "2026-10-03 16:00", "2026-03-08 05:00", "2026-11-01 05:00", "2026-04-05 03:00", "2026-09-06 04:00"}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := 60
	if testing.Short() {
		cases = 15
	}
	for _, zone := range zones {
		loc := loadLoc(t, zone)
		for c := 0; c < cases; c++ {
			s := Schedule{Location: loc}
			for range 1 + rng.IntN(3) {
				w := Window{Days: Weekdays(1 + rng.IntN(127)), Start: rng.IntN(48) * 30, End: 30 + rng.IntN(48)*30}
				if rng.IntN(3) == 0 { // around typical DST hours
					w.Start, w.End = 60+rng.IntN(5)*30, 60+rng.IntN(6)*30
				}
				if w.Validate() != nil {
					continue
				}
				s.Rules = append(s.Rules, Rule{Window: w, Name: string(rune('a' + rng.IntN(2)))})
			}
			var from time.Time
			if rng.IntN(2) == 0 {
				from = utc(hot[rng.IntN(len(hot))]).Add(time.Duration(rng.IntN(48*60)-36*60) * time.Minute)
			} else {
				from = utc("2026-01-01 00:00").Add(time.Duration(rng.IntN(365*24*60)) * time.Minute)
			}
			from = from.Add(time.Duration(rng.IntN(60)) * time.Second)

			got := s.NextChange(from)
			want := scanChange(s, from, horizon)
			if !got.Equal(want) {
				t.Fatalf("%s %v from %s: NextChange = %v, scan = %v", zone, s.Rules, from, got, want)
			}
		}
	}
}

func scanChange(s Schedule, from time.Time, limit time.Duration) time.Time {
	n0, o0 := s.At(from)
	for x := from.Truncate(time.Minute).Add(time.Minute); x.Before(from.Add(limit)); x = x.Add(time.Minute) {
		if n, o := s.At(x); n != n0 || o != o0 {
			return x
		}
	}
	return time.Time{}
}

func BenchmarkNextChange(b *testing.B) {
	s := schedule(b, loadLoc(b, "Europe/Berlin"), "Mon-Fri 08:00-18:00=business", "Sat,Sun 10:00-16:00=weekend", "daily 22:00-06:00=night")
	from := utc("2026-03-27 17:30")
	for b.Loop() {
		s.NextChange(from)
	}
}
