package capacity

import (
	"math"
	"strings"
	"testing"
	"time"
)

const mbit = 1e6 / 8 // bytes per second in one Mbit/s

func sites(n, agents int, down, up float64) []Site {
	var out []Site
	for i := range n {
		out = append(out, Site{Name: string(rune('a' + i)), Agents: agents, Down: down * mbit, Up: up * mbit})
	}
	return out
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-6*math.Max(1, math.Abs(want)) }

func TestModel(t *testing.T) {
	const mib = 1 << 20
	F := float64(256 * mib)
	tests := []struct {
		name string
		in   Input
		// want: lower bound, expected, HTTP-only seconds; WAN in/out of
		// the first site in bytes.
		lb, expected, http float64
		wanIn, wanOut      float64
		windows            int
	}{
		{
			// The branch testbed (scripts/testbed/run defaults): the
			// uplinks bound it, each site sending its third twice.
			name: "testbed 3x4",
			in:   Input{Sites: sites(3, 4, 50, 20), Size: 256 * mib, OriginUp: 100 * mbit},
			lb:   2 * F / 3 / (20 * mbit), expected: 3 + 2*F/3/(20*mbit)/0.72,
			http:  12 * F / (100 * mbit),
			wanIn: F, wanOut: 2 * F / 3,
		},
		{
			// One site shares only inside: origin or downlink bound.
			name: "one site",
			in:   Input{Sites: sites(1, 10, 50, 20), Size: 256 * mib, OriginUp: 100 * mbit, Efficiency: 0.5},
			lb:   F / (50 * mbit), expected: 3 + 2*F/(50*mbit),
			http:  10 * F / (50 * mbit), // its downlink carries every copy
			wanIn: F, wanOut: 0,
		},
		{
			// A slow origin: its one copy bounds the time.
			name: "slow origin",
			in:   Input{Sites: sites(2, 2, 100, 100), Size: 256 * mib, OriginUp: 10 * mbit, Efficiency: 1},
			lb:   F / (10 * mbit), expected: 3 + F/(10*mbit),
			http:  4 * F / (10 * mbit),
			wanIn: F, wanOut: F / 2,
		},
		{
			// A large site next to a small one: shards are even per
			// site, so each sends half a copy over its uplink (by agents,
			// the large one would send 0.9 of it).
			name: "unequal sites",
			in: Input{Sites: []Site{
				{Name: "big", Agents: 9, Down: 100 * mbit, Up: 10 * mbit},
				{Name: "small", Agents: 1, Down: 100 * mbit, Up: 10 * mbit},
			}, Size: 256 * mib, OriginUp: 1000 * mbit, Efficiency: 1},
			lb: 0.5 * F / (10 * mbit), expected: 3 + 0.5*F/(10*mbit),
			http:  9 * F / (100 * mbit),
			wanIn: F, wanOut: 0.5 * F,
		},
		{
			name: "window too short",
			in: Input{Sites: sites(3, 4, 50, 20), Size: 256 * mib, OriginUp: 100 * mbit, Efficiency: 1, Window: 30 * time.Second,
				Startup: time.Second},
			lb: 2 * F / 3 / (20 * mbit), expected: 1 + 2*F/3/(20*mbit),
			http:  12 * F / (100 * mbit),
			wanIn: F, wanOut: 2 * F / 3,
			windows: 3, // 72.6 s in windows of 30 s
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Model(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !near(p.LowerBound, tt.lb) || !near(p.Expected, tt.expected) || !near(p.HTTPOnly, tt.http) {
				t.Errorf("lower bound %.2fs expected %.2fs HTTP-only %.2fs, want %.2f %.2f %.2f (terms %v)",
					p.LowerBound, p.Expected, p.HTTPOnly, tt.lb, tt.expected, tt.http, p.Terms)
			}
			if s := p.Sites[0]; !near(s.WANIn, tt.wanIn) || !near(s.WANOut, tt.wanOut) {
				t.Errorf("site %s WAN in %.0f out %.0f, want %.0f %.0f", s.Name, s.WANIn, s.WANOut, tt.wanIn, tt.wanOut)
			}
			if p.Windows != tt.windows || p.FitsWindow != (tt.windows == 1) {
				t.Errorf("windows %d fits %v, want %d", p.Windows, p.FitsWindow, tt.windows)
			}
			if !near(p.OriginEgress, F) {
				t.Errorf("origin egress %.0f, want one copy %.0f", p.OriginEgress, F)
			}
			// What leaves the sites is what enters them from other sites.
			var out, fromSites float64
			for _, s := range p.Sites {
				out += s.WANOut
				fromSites += s.FromSites
			}
			if !near(out, fromSites) {
				t.Errorf("sites send %.0f but receive %.0f from each other", out, fromSites)
			}
		})
	}
}

func TestModelLoad(t *testing.T) {
	// 1000 stores of 2 players, 3 releases at once, default intervals.
	in := Input{Sites: sites(1000, 2, 20, 5), Size: 1 << 30, OriginUp: 1000 * mbit, Releases: 3}
	p, err := Model(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"announces/s", p.AnnouncesPerSec, 6000.0 / 60},
		{"swarm polls/s at the start", p.SwarmPollsPeakPerSec, 6000},
		{"swarm polls/s later", p.SwarmPollsPerSec, 600},
		{"catalog requests/s", p.CatalogPerSec, 2000.0 / 60},
		{"catalog requests/s after a change", p.CatalogChangePerSec, 5 * 2000.0 / 60},
		{"reports/s", p.ReportsPerSec, 2000.0 / 30},
		{"peer entries bytes", p.PeerEntryBytes, 6000 * 100},
		{"report bytes", p.ReportBytes, 2000 * 6500},
		{"store bytes", p.StoreBytes, 6000*100 + 2000*6500},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
}

func TestModelRefuses(t *testing.T) {
	ok := Input{Sites: sites(2, 2, 50, 20), Size: 1, OriginUp: 1}
	for _, c := range []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"no sites", func(in *Input) { in.Sites = nil }, "no sites"},
		{"no agents", func(in *Input) { in.Sites[0].Agents = 0 }, "agents"},
		{"no downlink", func(in *Input) { in.Sites[1].Down = 0 }, "positive rates"},
		{"infinite uplink", func(in *Input) { in.Sites[1].Up = math.Inf(1) }, "positive rates"},
		{"NaN uplink", func(in *Input) { in.Sites[1].Up = math.NaN() }, "positive rates"},
		{"empty release", func(in *Input) { in.Size = 0 }, "size"},
		{"no origin", func(in *Input) { in.OriginUp = 0 }, "origin"},
		{"efficiency", func(in *Input) { in.Efficiency = 1.5 }, "efficiency"},
		{"window", func(in *Input) { in.Window = -time.Second }, "window"},
		{"startup", func(in *Input) { in.Startup = -time.Second }, "intervals"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := ok
			in.Sites = append([]Site(nil), ok.Sites...)
			c.edit(&in)
			_, err := Model(in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := Model(ok); err != nil {
		t.Errorf("valid input refused: %v", err)
	}
}
