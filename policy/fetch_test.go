package policy

import "testing"

func TestMayDownload(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	nights := []Window{mustWindow(t, "Mon-Fri 22:00-06:00")}
	power := PowerRules{MeteredInterfaces: []string{"wwan*"}, MinBattery: 20}
	ok := Conditions{BatteryPercent: -1}
	metered := Conditions{Interfaces: []string{"wwan0"}, BatteryPercent: -1}
	low := Conditions{OnBattery: true, BatteryPercent: 10}
	tests := []struct {
		name   string
		f      Fetch
		now    string // UTC
		c      Conditions
		want   bool
		reason string
	}{
		{"no window, no conditions", Fetch{}, "2026-03-25 11:00", ok, true, ""},
		{"outside window", Fetch{Windows: nights, Location: berlin}, "2026-03-25 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET)"},
		{"inside window", Fetch{Windows: nights, Location: berlin}, "2026-03-25 22:00", ok, true, ""},
		{"inside the wrapped part (Saturday 03:00)", Fetch{Windows: nights, Location: berlin}, "2026-03-28 02:00", ok, true, ""},
		{"weekend waits for Monday night, across DST", Fetch{Windows: nights, Location: berlin}, "2026-03-28 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 (opens at 2026-03-30 22:00 CEST)"},
		{"two windows", Fetch{Windows: append(nights, mustWindow(t, "Sat,Sun 00:00-24:00")), Location: berlin}, "2026-03-27 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 or Sat,Sun 00:00-24:00 (opens at 2026-03-27 22:00 CET)"},
		{"nil location is UTC", Fetch{Windows: nights}, "2026-03-25 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 UTC)"},
		{"urgent does not override the window", Fetch{Windows: nights, Location: berlin, Urgent: true}, "2026-03-25 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET)"},
		{"deadline after the window opens: wait", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-26 05:00")}, "2026-03-25 11:00", ok, false,
			"waiting for window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET)"},
		{"deadline before the window opens: go", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-25 17:00")}, "2026-03-25 11:00", ok, true,
			"outside window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET) to meet the deliver-by time 2026-03-25 18:00 CET"},
		{"deadline exactly at opening: go", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-25 21:00")}, "2026-03-25 11:00", ok, true,
			"outside window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET) to meet the deliver-by time 2026-03-25 22:00 CET"},
		{"deadline passed: go", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-20 00:00")}, "2026-03-25 11:00", ok, true,
			"outside window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET) to meet the deliver-by time 2026-03-20 01:00 CET"},
		{"deadline but metered: wait", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-25 17:00")}, "2026-03-25 11:00", metered, false,
			"waiting: metered connection (wwan0)"},
		{"window that never opens", Fetch{Windows: []Window{{}}, Location: berlin}, "2026-03-25 11:00", ok, false,
			"waiting for window (no days) 00:00-00:00 (does not open in the next 15 days)"},
		{"window that never opens, deadline", Fetch{Windows: []Window{{}}, Location: berlin, Deliver: utc("2026-03-26 00:00")}, "2026-03-25 11:00", ok, true,
			"outside window (no days) 00:00-00:00 (does not open in the next 15 days) to meet the deliver-by time 2026-03-26 01:00 CET"},
		{"metered waits", Fetch{}, "2026-03-25 11:00", metered, false, "waiting: metered connection (wwan0)"},
		{"metered urgent goes", Fetch{Urgent: true}, "2026-03-25 11:00", metered, true, "urgent despite metered connection (wwan0)"},
		{"low battery waits", Fetch{Windows: nights, Location: berlin}, "2026-03-25 22:00", low, false, "waiting: on battery at 10% (below 20%)"},
		{"low battery urgent goes", Fetch{Windows: nights, Location: berlin, Urgent: true}, "2026-03-25 22:00", low, true, "urgent despite on battery at 10% (below 20%)"},
		{"deadline and urgent", Fetch{Windows: nights, Location: berlin, Deliver: utc("2026-03-25 17:00"), Urgent: true}, "2026-03-25 11:00", metered, true,
			"outside window Mon-Fri 22:00-06:00 (opens at 2026-03-25 22:00 CET) to meet the deliver-by time 2026-03-25 18:00 CET; urgent despite metered connection (wwan0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := MayDownload(tc.f, utc(tc.now), tc.c, power)
			if got != tc.want || reason != tc.reason {
				t.Fatalf("MayDownload = %v, %q\n                 want %v, %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

// TestMayDownloadOpensAtWindowEdge: the "opens at" time is when the answer flips.
func TestMayDownloadOpensAtWindowEdge(t *testing.T) {
	ny := loadLoc(t, "America/New_York")
	f := Fetch{Windows: []Window{mustWindow(t, "Sun 01:00-02:00")}, Location: ny}
	// Fall back 2026-11-01: the window opens at 01:00 EDT and lasts two hours.
	before := utc("2026-11-01 04:59")
	if ok, reason := MayDownload(f, before, Conditions{}, PowerRules{}); ok || reason != "waiting for window Sun 01:00-02:00 (opens at 2026-11-01 01:00 EDT)" {
		t.Fatalf("%v %q", ok, reason)
	}
	for _, at := range []string{"2026-11-01 05:00", "2026-11-01 06:30", "2026-11-01 06:59"} {
		if ok, reason := MayDownload(f, utc(at), Conditions{}, PowerRules{}); !ok {
			t.Fatalf("%s: %q", at, reason)
		}
	}
	if ok, reason := MayDownload(f, utc("2026-11-01 07:00"), Conditions{}, PowerRules{}); ok || reason != "waiting for window Sun 01:00-02:00 (opens at 2026-11-08 01:00 EST)" {
		t.Fatalf("%v %q", ok, reason)
	}
}
