package policy

import (
	"strings"
	"testing"
	"time"
)

const (
	mon = 1 << time.Monday
	tue = 1 << time.Tuesday
	wed = 1 << time.Wednesday
	thu = 1 << time.Thursday
	fri = 1 << time.Friday
	sat = 1 << time.Saturday
	sun = 1 << time.Sunday
)

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in   string
		want Window
		str  string // canonical String()
	}{
		{"Mon-Fri 08:00-18:00", Window{mon | tue | wed | thu | fri, 8 * 60, 18 * 60}, "Mon-Fri 08:00-18:00"},
		{"Sat,Sun 00:00-24:00", Window{sat | sun, 0, 1440}, "Sat,Sun 00:00-24:00"},
		{"daily 22:00-06:00", Window{EveryDay, 22 * 60, 6 * 60}, "daily 22:00-06:00"},
		{"DAILY 22:00-06:00", Window{EveryDay, 22 * 60, 6 * 60}, "daily 22:00-06:00"},
		{"08:00-18:00", Window{EveryDay, 8 * 60, 18 * 60}, "daily 08:00-18:00"},
		{"  Mon - Fri   8:00 - 18:30 ", Window{mon | tue | wed | thu | fri, 8 * 60, 18*60 + 30}, "Mon-Fri 08:00-18:30"},
		{"Sat, Sun 10:00-12:00", Window{sat | sun, 600, 720}, "Sat,Sun 10:00-12:00"},
		{"monday,Wednesday,FRI 01:00-02:00", Window{mon | wed | fri, 60, 120}, "Mon,Wed,Fri 01:00-02:00"},
		{"Fri-Mon 20:00-23:59", Window{fri | sat | sun | mon, 1200, 1439}, "Mon,Fri-Sun 20:00-23:59"},
		{"Sun-Sun 22:00-02:00", Window{sun, 1320, 120}, "Sun 22:00-02:00"},
		{"Tue-Mon 00:00-01:00", Window{EveryDay, 0, 60}, "daily 00:00-01:00"},
		{"Mon-Wed,Fri 09:00-17:00", Window{mon | tue | wed | fri, 540, 1020}, "Mon-Wed,Fri 09:00-17:00"},
		{"Mon,Tue,Thu-Sun 09:00-17:00", Window{mon | tue | thu | fri | sat | sun, 540, 1020}, "Mon,Tue,Thu-Sun 09:00-17:00"},
		{"tues,thur,thurs 09:00-17:00", Window{tue | thu, 540, 1020}, "Tue,Thu 09:00-17:00"},
		{"Sat 22:00-00:00", Window{sat, 1320, 1440}, "Sat 22:00-24:00"}, // 00:00 as an end is midnight
		{"Sun 23:59-00:01", Window{sun, 1439, 1}, "Sun 23:59-00:01"},
		{"Mon 00:00-24:00", Window{mon, 0, 1440}, "Mon 00:00-24:00"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseWindow(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.str {
				t.Fatalf("String() = %q, want %q", got.String(), tc.str)
			}
			again, err := ParseWindow(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
			if got.Wraps() != (got.End < got.Start) {
				t.Fatal("Wraps")
			}
		})
	}
}

func TestParseWindowErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"Mon-Fri", "no time range"},
		{"Mon-Fri business", "no time range"},
		{"Mnd 08:00-18:00", `unknown day "Mnd"`},
		{"Mon-Frx 08:00-18:00", `unknown day "Frx"`},
		{"Mon,,Fri 08:00-18:00", "empty item"},
		{"Mon, 08:00-18:00", "empty item"},
		{"daily,Mon 08:00-18:00", `unknown day "daily"`},
		{"Mon 08:00", `bad time range "08:00"`},
		{"Mon 08:00-12:00-18:00", "bad time range"},
		{"Mon 8-18", `bad time "8": want HH:MM`},
		{"Mon 08.00-18:00", `bad time "08.00": want HH:MM`},
		{"Mon 0800-1800", "want HH:MM"},
		{"Mon 08:0-18:00", `bad time "08:0"`},
		{"Mon 123:00-18:00", `bad time "123:00"`},
		{"Mon 0x:00-18:00", `bad time "0x:00"`},
		{"Mon 25:00-18:00", "hour must be 00-24"},
		{"Mon 08:60-18:00", "minute must be 00-59"},
		{"Mon 08:00-24:30", "the latest time is 24:00"},
		{"Mon 24:00-06:00", "24:00 is only valid as an end"},
		{"Mon 08:00-08:00", "start and end are both 08:00: use 00:00-24:00 for a whole day"},
		{"Mon 00:00-00:00", "start and end are both 00:00"},
		{"Mon 08:00-", `bad time ""`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseWindow(tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `window "`+tc.in+`": `) {
				t.Fatalf("error %q, want it to name the window and contain %q", err, tc.want)
			}
		})
	}
}

func TestWindowValidate(t *testing.T) {
	tests := []struct {
		w    Window
		want string // "" for valid
	}{
		{Window{mon, 0, 1440}, ""},
		{Window{mon, 1439, 1}, ""},
		{Window{0, 0, 60}, "no days"},
		{Window{1 << 7, 0, 60}, "no days"}, // a bit that is no weekday
		{Window{mon, -1, 60}, "start -1"},
		{Window{mon, 1440, 60}, "start 1440"},
		{Window{mon, 0, 0}, "both 00:00"},
		{Window{mon, 60, 0}, "end 0"},
		{Window{mon, 0, 1441}, "end 1441"},
		{Window{mon, 60, 60}, "both 01:00"},
	}
	for _, tc := range tests {
		err := tc.w.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.w, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.w, err, tc.want)
		}
		if tc.want != "" && tc.w.Contains(utc("2026-03-30 00:30"), nil) { // a Monday
			t.Errorf("%+v: an invalid window contains an instant", tc.w)
		}
	}
	if got := (Weekdays(0)).String(); got != "(no days)" {
		t.Errorf("empty Weekdays = %q", got)
	}
}

func TestWindowText(t *testing.T) {
	var w Window
	if err := w.UnmarshalText([]byte("Sat,Sun 00:00-24:00")); err != nil {
		t.Fatal(err)
	}
	b, err := w.MarshalText()
	if err != nil || string(b) != "Sat,Sun 00:00-24:00" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	before := w
	if err := w.UnmarshalText([]byte("Sat 25:00-26:00")); err == nil {
		t.Fatal("bad window accepted")
	}
	if w != before {
		t.Fatal("failed UnmarshalText changed the value")
	}
}

// TestWindowContains checks plain and midnight-wrapping windows in UTC
// (2026-03-30 is a Monday).
func TestWindowContains(t *testing.T) {
	tests := []struct {
		window string
		at     string
		want   bool
	}{
		{"Mon-Fri 08:00-18:00", "2026-03-30 08:00", true},
		{"Mon-Fri 08:00-18:00", "2026-03-30 07:59:59", false},
		{"Mon-Fri 08:00-18:00", "2026-03-30 17:59:59", true},
		{"Mon-Fri 08:00-18:00", "2026-03-30 18:00", false},
		{"Mon-Fri 08:00-18:00", "2026-04-03 12:00", true},  // Friday
		{"Mon-Fri 08:00-18:00", "2026-04-04 12:00", false}, // Saturday
		{"Mon-Fri 08:00-18:00", "2026-03-29 12:00", false}, // Sunday
		// Wrapping past midnight: belongs to the day it starts on.
		{"Fri 22:00-06:00", "2026-04-03 21:59", false},
		{"Fri 22:00-06:00", "2026-04-03 22:00", true},
		{"Fri 22:00-06:00", "2026-04-04 05:59", true}, // Saturday morning
		{"Fri 22:00-06:00", "2026-04-04 06:00", false},
		{"Fri 22:00-06:00", "2026-04-04 23:00", false},     // Saturday evening: not listed
		{"Fri 22:00-06:00", "2026-04-03 03:00", false},     // Friday morning: Thursday not listed
		{"Mon-Fri 22:00-06:00", "2026-03-30 03:00", false}, // Monday morning: Sunday not listed
		{"Mon-Fri 22:00-06:00", "2026-04-04 03:00", true},  // Saturday morning: Friday listed
		// Sunday→Monday across the week boundary.
		{"Sun 22:00-02:00", "2026-03-29 23:00", true},
		{"Sun 22:00-02:00", "2026-03-30 00:00", true},
		{"Sun 22:00-02:00", "2026-03-30 01:59", true},
		{"Sun 22:00-02:00", "2026-03-30 02:00", false},
		{"Sun 22:00-02:00", "2026-03-30 23:00", false}, // Monday evening
		{"Sun 22:00-02:00", "2026-03-29 01:00", false}, // Sunday morning: Saturday not listed
		{"Sat-Sun 22:00-02:00", "2026-03-29 01:00", true},
		// Whole days and day ends.
		{"Sat,Sun 00:00-24:00", "2026-03-28 00:00", true},
		{"Sat,Sun 00:00-24:00", "2026-03-29 23:59:59", true},
		{"Sat,Sun 00:00-24:00", "2026-03-30 00:00", false},
		{"Sat 22:00-24:00", "2026-03-28 23:59", true},
		{"Sat 22:00-24:00", "2026-03-29 00:00", false},
		{"daily 00:00-24:00", "2026-07-15 13:37", true},
		{"Sun 23:59-00:01", "2026-03-29 23:59:30", true},
		{"Sun 23:59-00:01", "2026-03-30 00:00:59", true},
		{"Sun 23:59-00:01", "2026-03-30 00:01", false},
	}
	for _, tc := range tests {
		w := mustWindow(t, tc.window)
		if got := w.Contains(utc(tc.at), nil); got != tc.want {
			t.Errorf("%s contains %s UTC = %v, want %v", tc.window, tc.at, got, tc.want)
		}
		if got := w.Contains(utc(tc.at), time.UTC); got != tc.want {
			t.Errorf("%s contains %s UTC (time.UTC) = %v, want %v", tc.window, tc.at, got, tc.want)
		}
	}
}

// TestWindowContainsDST checks windows on the wall clock across DST changes.
func TestWindowContainsDST(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	ny := loadLoc(t, "America/New_York")
	tests := []struct {
		name   string
		loc    *time.Location
		window string
		at     string // UTC
		want   bool
	}{
		// Europe/Berlin, spring forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
		{"berlin spring: gap hour never opens, before", berlin, "Sun 02:00-03:00", "2026-03-29 00:59", false},
		{"berlin spring: gap hour never opens, after", berlin, "Sun 02:00-03:00", "2026-03-29 01:00", false},
		{"berlin spring: window into the gap opens at 01:00 CET", berlin, "Sun 01:00-04:00", "2026-03-29 00:00", true},
		{"berlin spring: window across gap, just before jump", berlin, "Sun 01:00-04:00", "2026-03-29 00:59", true},
		{"berlin spring: window across gap, after jump", berlin, "Sun 01:00-04:00", "2026-03-29 01:59", true},
		{"berlin spring: window across gap closes at 04:00 CEST", berlin, "Sun 01:00-04:00", "2026-03-29 02:00", false},
		{"berlin spring: opens inside gap -> opens at the jump", berlin, "Sun 02:30-05:00", "2026-03-29 01:00", true},
		{"berlin spring: opens inside gap, before the jump", berlin, "Sun 02:30-05:00", "2026-03-29 00:59", false},
		{"berlin spring: business hours use CEST", berlin, "Mon-Fri 08:00-18:00", "2026-03-30 06:00", true},
		{"berlin spring: business hours use CEST, before", berlin, "Mon-Fri 08:00-18:00", "2026-03-30 05:59", false},
		{"berlin spring: business hours on Friday in CET", berlin, "Mon-Fri 08:00-18:00", "2026-03-27 07:00", true},
		{"berlin spring: business hours on Friday in CET, before", berlin, "Mon-Fri 08:00-18:00", "2026-03-27 06:59", false},
		{"berlin spring: night starts 22:00 CET", berlin, "daily 22:00-06:00", "2026-03-28 21:00", true},
		{"berlin spring: night before start", berlin, "daily 22:00-06:00", "2026-03-28 20:59", false},
		{"berlin spring: night ends 06:00 CEST", berlin, "daily 22:00-06:00", "2026-03-29 03:59", true},
		{"berlin spring: night ended", berlin, "daily 22:00-06:00", "2026-03-29 04:00", false},
		// Europe/Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC).
		{"berlin fall: repeated hour, first pass", berlin, "Sun 02:00-03:00", "2026-10-25 00:00", true},
		{"berlin fall: repeated hour, before", berlin, "Sun 02:00-03:00", "2026-10-24 23:59", false},
		{"berlin fall: repeated hour, end of first pass", berlin, "Sun 02:00-03:00", "2026-10-25 00:59", true},
		{"berlin fall: repeated hour, second pass", berlin, "Sun 02:00-03:00", "2026-10-25 01:00", true},
		{"berlin fall: repeated hour, end of second pass", berlin, "Sun 02:00-03:00", "2026-10-25 01:59", true},
		{"berlin fall: closes at 03:00 CET", berlin, "Sun 02:00-03:00", "2026-10-25 02:00", false},
		{"berlin fall: night starts 22:00 CEST", berlin, "daily 22:00-06:00", "2026-10-24 20:00", true},
		{"berlin fall: night ends 06:00 CET", berlin, "daily 22:00-06:00", "2026-10-25 04:59", true},
		{"berlin fall: night ended", berlin, "daily 22:00-06:00", "2026-10-25 05:00", false},
		// America/New_York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
		{"ny spring: gap hour never opens, before", ny, "Sun 02:00-03:00", "2026-03-08 06:59", false},
		{"ny spring: gap hour never opens, after", ny, "Sun 02:00-03:00", "2026-03-08 07:00", false},
		{"ny spring: 01:00 EST", ny, "Sun 01:00-03:00", "2026-03-08 06:00", true},
		{"ny spring: 01:00-03:00 is one hour long", ny, "Sun 01:00-03:00", "2026-03-08 07:00", false},
		{"ny spring: business hours Monday in EDT", ny, "Mon-Fri 09:00-17:00", "2026-03-09 13:00", true},
		{"ny spring: business hours Monday in EDT, before", ny, "Mon-Fri 09:00-17:00", "2026-03-09 12:59", false},
		{"ny spring: Sunday night wraps into Monday", ny, "Sun 22:00-06:00", "2026-03-09 09:59", true},
		{"ny spring: Sunday night ended", ny, "Sun 22:00-06:00", "2026-03-09 10:00", false},
		{"ny spring: night across the jump", ny, "Sat 22:00-06:00", "2026-03-08 07:30", true},
		{"ny spring: night ends 06:00 EDT", ny, "Sat 22:00-06:00", "2026-03-08 10:00", false},
		// America/New_York, fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
		{"ny fall: repeated 01:00, first pass", ny, "Sun 01:00-02:00", "2026-11-01 05:00", true},
		{"ny fall: repeated 01:00, before", ny, "Sun 01:00-02:00", "2026-11-01 04:59", false},
		{"ny fall: repeated 01:00, second pass", ny, "Sun 01:00-02:00", "2026-11-01 06:59", true},
		{"ny fall: closes at 02:00 EST", ny, "Sun 01:00-02:00", "2026-11-01 07:00", false},
		{"ny fall: 02:00-03:00 is one hour (EST)", ny, "Sun 02:00-03:00", "2026-11-01 06:59", false},
		{"ny fall: 02:00-03:00 opens 02:00 EST", ny, "Sun 02:00-03:00", "2026-11-01 07:00", true},
		{"ny fall: Saturday night lasts into Sunday EST", ny, "Sat 23:00-06:00", "2026-11-01 10:59", true},
		{"ny fall: Saturday night ended", ny, "Sat 23:00-06:00", "2026-11-01 11:00", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWindow(t, tc.window)
			if got := w.Contains(utc(tc.at), tc.loc); got != tc.want {
				t.Fatalf("%s contains %s UTC (%s) = %v, want %v", tc.window, tc.at,
					utc(tc.at).In(tc.loc).Format("Mon 15:04 MST"), got, tc.want)
			}
		})
	}
}

// TestWindowDSTDuration measures how long windows are open on DST days, minute by minute.
func TestWindowDSTDuration(t *testing.T) {
	berlin := loadLoc(t, "Europe/Berlin")
	ny := loadLoc(t, "America/New_York")
	tests := []struct {
		loc    *time.Location
		window string
		day    string // UTC midnight the scan starts from (scans 48h)
		want   time.Duration
	}{
		{berlin, "Sun 02:00-03:00", "2026-03-28 12:00", 0},
		{berlin, "Sun 01:00-04:00", "2026-03-28 12:00", 2 * time.Hour},
		{berlin, "Sun 02:00-03:00", "2026-10-24 12:00", 2 * time.Hour},
		{berlin, "Sat 22:00-06:00", "2026-03-28 12:00", 7 * time.Hour},
		{berlin, "Sat 22:00-06:00", "2026-10-24 12:00", 9 * time.Hour},
		{berlin, "Sun 00:00-24:00", "2026-03-28 12:00", 23 * time.Hour},
		{berlin, "Sun 00:00-24:00", "2026-10-24 12:00", 25 * time.Hour},
		{ny, "Sun 02:00-03:00", "2026-03-07 12:00", 0},
		{ny, "Sun 01:00-02:00", "2026-10-31 12:00", 2 * time.Hour},
		{ny, "Sun 00:00-24:00", "2026-03-07 12:00", 23 * time.Hour},
		{ny, "Sun 00:00-24:00", "2026-10-31 12:00", 25 * time.Hour},
	}
	for _, tc := range tests {
		w := mustWindow(t, tc.window)
		var open time.Duration
		start := utc(tc.day)
		for x := start; x.Before(start.Add(48 * time.Hour)); x = x.Add(time.Minute) {
			if w.Contains(x, tc.loc) {
				open += time.Minute
			}
		}
		if open != tc.want {
			t.Errorf("%s in %s from %s: open %v, want %v", tc.window, tc.loc, tc.day, open, tc.want)
		}
	}
}
