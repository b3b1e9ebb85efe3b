package policy

import (
	"math"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
	}{
		{"unlimited", Unlimited},
		{" Unlimited ", Unlimited},
		{"none", Unlimited},
		{"0", Unlimited},
		{"0Mbit", Unlimited},
		{"2Mbit", 250_000},
		{"2 Mbit", 250_000},
		{"2Mbit/s", 250_000},
		{"2mbit", 250_000}, // tc spelling
		{"2 Mbits/s", 250_000},
		{"512kbit", 64_000},
		{"512Kbit/s", 64_000},
		{"1.5Mbit", 187_500},
		{"1.1Mbit", 137_500}, // exact: no floating-point rounding
		{"1Gbit", 125_000_000},
		{"1Tbit", 125_000_000_000},
		{"8bit", 1},
		{"1bit", 1}, // rounds up: never becomes unlimited
		{"0.001bit", 1},
		{"12bit", 2},
		{"1Mibit", 131_072},
		{"10MB/s", 10_000_000},
		{"10 MB / s", 10_000_000},
		{"10mB", 10_000_000},
		{"1.5GB", 1_500_000_000},
		{"300B", 300},
		{"300B/s", 300},
		{"64kB", 64_000},
		{"64KB/s", 64_000},
		{"64KiB", 65_536},
		{"4MiB/s", 4 << 20},
		{"1GiB", 1 << 30},
		{"1TiB", 1 << 40},
		{"100 bytes", 100},
		{"1 byte/s", 1},
		{"2 kbytes/s", 2000},
		{"2000000", 250_000}, // a bare number is bits per second
		{"1.", 1},
		{".5kbit", 63},
		{"9223372036854775807B", math.MaxInt64},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRate(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"  ", "empty"},
		{"-1Mbit", "must not be negative"},
		{"fast", "no number"},
		{".", "no number"},
		{"Mbit", "no number"},
		{"2Mbps", `ambiguous unit "Mbps" (bits or bytes?): write e.g. "2Mbit" for bits or "2MB/s" for bytes per second`},
		{"2 bps", "ambiguous unit"},
		{"2KBps", "ambiguous unit"},
		{"2Mb", `ambiguous unit "Mb" (bits or bytes?): write e.g. "2Mbit" for bits or "2MB/s" for bytes`},
		{"2kb/s", `write e.g. "2kbit" for bits or "2KB/s"`},
		{"2b", `write e.g. "2bit" for bits or "2B/s"`},
		{"2Xbit", `unknown unit "Xbit"`},
		{"2XB", `unknown unit "XB"`},
		{"2 furlongs", `unknown unit "furlongs"`},
		{"1e6", `unknown unit "e6"`},
		{"1.2.3Mbit", `unknown unit ".3Mbit"`},
		{"1/2Mbit", `unknown unit "/2Mbit"`},
		{"9223372036854775808B", "too large"},
		{"99999999999Tbit", "too large"},
	}
	for _, tc := range tests {
		_, err := ParseRate(tc.in)
		if err == nil {
			t.Errorf("ParseRate(%q): no error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `rate "`) {
			t.Errorf("ParseRate(%q) = %q, want %q", tc.in, err, tc.want)
		}
	}
}

func TestRateString(t *testing.T) {
	tests := []struct {
		r    Rate
		want string
	}{
		{Unlimited, "unlimited"},
		{250_000, "2Mbit/s"},
		{64_000, "512kbit/s"},
		{187_500, "1500kbit/s"},
		{125_000_000, "1Gbit/s"},
		{125_000_000_000, "1Tbit/s"},
		{1, "1B/s"},
		{125, "1kbit/s"},
		{1024, "1KiB/s"},
		{4 << 20, "4MiB/s"},
		{1 << 30, "1GiB/s"},
		{1 << 40, "1TiB/s"},
		{10_000_000, "80Mbit/s"},
		{1234, "1234B/s"},
		{-5, "-5B/s"},
		{math.MaxInt64, "9223372036854775807B/s"},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("Rate(%d).String() = %q, want %q", int64(tc.r), got, tc.want)
		}
		if tc.r < 0 {
			continue
		}
		back, err := ParseRate(tc.r.String())
		if err != nil || back != tc.r {
			t.Errorf("round trip of %d: %d, %v", int64(tc.r), back, err)
		}
	}
}

func TestRateText(t *testing.T) {
	var r Rate
	if err := r.UnmarshalText([]byte("2Mbit")); err != nil || r != 250_000 {
		t.Fatalf("UnmarshalText = %d, %v", r, err)
	}
	if err := r.UnmarshalText([]byte("2Mbps")); err == nil || r != 250_000 {
		t.Fatalf("bad rate: %d, %v", r, err)
	}
	b, err := r.MarshalText()
	if err != nil || string(b) != "2Mbit/s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
}

func rateConfig(t *testing.T) (Schedule, []RateProfile) {
	berlin := loadLoc(t, "Europe/Berlin")
	s := schedule(t, berlin, "Mon-Fri 08:00-18:00=business", "Sat,Sun 10:00-16:00=weekend")
	profiles := []RateProfile{
		{Name: "business", Down: 250_000, Up: 64_000, WANDown: 125_000},
		{Name: "weekend", Down: 1_000_000},
		{Name: "night"},
	}
	return s, profiles
}

func TestProfileAt(t *testing.T) {
	s, profiles := rateConfig(t)
	tests := []struct {
		at   string // UTC
		def  string
		want string
		err  string
	}{
		{"2026-03-27 07:00", "night", "business", ""}, // Fri 08:00 CET
		{"2026-03-27 06:59", "night", "night", ""},
		{"2026-03-30 06:00", "night", "business", ""}, // Mon 08:00 CEST
		{"2026-03-30 05:59", "", "unlimited", ""},
		{"2026-03-28 09:00", "night", "weekend", ""}, // Sat 10:00 CET
		{"2026-03-29 08:00", "night", "weekend", ""}, // Sun 10:00 CEST
		{"2026-03-29 14:00", "night", "night", ""},   // Sun 16:00 CEST
		{"2026-03-29 14:00", "missing", "", `no rate profile named "missing"`},
	}
	for _, tc := range tests {
		got, err := ProfileAt(s, profiles, tc.def, utc(tc.at))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.at, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.at, err)
		case got.Name != tc.want:
			t.Errorf("%s: profile %q, want %q", tc.at, got.Name, tc.want)
		}
	}
	got, _ := ProfileAt(s, profiles, "", utc("2026-03-30 05:59"))
	if got != UnlimitedProfile || got.Down != Unlimited || got.WANUp != Unlimited {
		t.Errorf("default profile = %+v", got)
	}
	got, _ = ProfileAt(s, profiles, "", utc("2026-03-30 06:00"))
	if got != profiles[0] {
		t.Errorf("business profile = %+v", got)
	}
	// The switch time for the agent's limiter.
	if next := s.NextChange(utc("2026-03-30 06:00")); !next.Equal(utc("2026-03-30 16:00")) {
		t.Errorf("next switch %v", next)
	}
}

func TestCheckProfiles(t *testing.T) {
	s, profiles := rateConfig(t)
	if err := CheckProfiles(s, profiles, "night"); err != nil {
		t.Fatal(err)
	}
	if err := CheckProfiles(s, profiles, ""); err != nil {
		t.Fatal(err)
	}
	if err := CheckProfiles(Schedule{}, nil, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		s        Schedule
		profiles []RateProfile
		def      string
		want     string
	}{
		{"unnamed profile", s, append(profiles[:2:2], RateProfile{}), "", "rate profile 3 has no name"},
		{"duplicate", s, append(profiles[:3:3], RateProfile{Name: "night"}), "", `rate profile "night" is defined twice`},
		{"negative", s, []RateProfile{{Name: "business", WANUp: -1}, {Name: "weekend"}}, "", `rate profile "business": negative rate`},
		{"unknown in schedule", s, profiles[1:], "", `rate schedule rule 1 (Mon-Fri 08:00-18:00): no rate profile named "business"`},
		{"unknown default", s, profiles, "nights", `default rate profile "nights" is not defined`},
		{"bad schedule", Schedule{Rules: []Rule{{Window: Window{}, Name: "night"}}}, profiles, "", "rate schedule: rule 1"},
	}
	for _, tc := range tests {
		err := CheckProfiles(tc.s, tc.profiles, tc.def)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
