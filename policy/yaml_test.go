package policy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"github.com/swarmship/swarmship/policy"
)

// config is the shape an agent config might embed.
type config struct {
	Mode     policy.Mode          `yaml:"mode"`
	Rates    rates                `yaml:"rates"`
	Fetch    policy.Fetch         `yaml:"fetch"`
	Power    policy.PowerRules    `yaml:"power"`
	Identity policy.Identity      `yaml:"identity"`
	Profiles []policy.RateProfile `yaml:"profiles"`
}

type rates struct {
	Default  string        `yaml:"default"`
	Schedule []policy.Rule `yaml:"schedule"`
}

const sample = `
mode: download-only
identity: {tenant: acme, site: ber1, region: eu-central}
profiles:
  - name: business
    down: 2Mbit
    up: 512kbit
    wan_down: 1Mbit
  - name: night
    down: unlimited
    up: 10MB/s
    wan_up: 8000000        # a bare number is bits per second
rates:
  default: night
  schedule:
    - window: Mon-Fri 08:00-18:00
      name: business
fetch:
  windows: ["Mon-Fri 22:00-06:00", "Sat,Sun 00:00-24:00"]
  urgent: true
  deliver_by: 2026-03-30T06:00:00+02:00
power:
  metered_interfaces: ["wwan*"]
  min_battery: 20
`

func TestYAMLConfig(t *testing.T) {
	var c config
	if err := yaml.Unmarshal([]byte(sample), &c); err != nil {
		t.Fatal(err)
	}
	want := []policy.RateProfile{
		{Name: "business", Down: 250_000, Up: 64_000, WANDown: 125_000},
		{Name: "night", Up: 10_000_000, WANUp: 1_000_000},
	}
	if fmt.Sprint(c.Profiles) != fmt.Sprint(want) {
		t.Fatalf("profiles %+v", c.Profiles)
	}
	if c.Mode != policy.ModeDownloadOnly || c.Mode.Upload() {
		t.Fatalf("mode %q", c.Mode)
	}
	if len(c.Fetch.Windows) != 2 || c.Fetch.Windows[1].String() != "Sat,Sun 00:00-24:00" || !c.Fetch.Urgent ||
		!c.Fetch.Deliver.Equal(time.Date(2026, 3, 30, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("fetch %+v", c.Fetch)
	}
	if c.Power.MinBattery != 20 || c.Power.MeteredInterfaces[0] != "wwan*" {
		t.Fatalf("power %+v", c.Power)
	}
	if c.Identity != (policy.Identity{Tenant: "acme", Site: "ber1", Region: "eu-central"}) {
		t.Fatalf("identity %+v", c.Identity)
	}
	s := policy.Schedule{Rules: c.Rates.Schedule}
	if err := policy.CheckProfiles(s, c.Profiles, c.Rates.Default); err != nil {
		t.Fatal(err)
	}

	// Encoding writes the canonical text forms back.
	out, err := yaml.Marshal(struct {
		R policy.Rate   `yaml:"r"`
		W policy.Window `yaml:"w"`
		M policy.Mode   `yaml:"m"`
	}{250_000, c.Fetch.Windows[0], policy.ModeOffline})
	if err != nil || string(out) != "r: 2Mbit/s\nw: Mon-Fri 22:00-06:00\nm: offline\n" {
		t.Fatalf("marshal: %q %v", out, err)
	}
}

func TestYAMLErrors(t *testing.T) {
	tests := []struct{ doc, want string }{
		{"mode: off", `mode "off" is ambiguous`},
		{"profiles: [{name: a, down: 2Mbps}]", `ambiguous unit "Mbps"`},
		{"rates: {schedule: [{window: Mon-Fri 08:00-25:00, name: a}]}", "hour must be 00-24"},
		{"fetch: {windows: [Mnd 08:00-09:00]}", `unknown day "Mnd"`},
	}
	for _, tc := range tests {
		var c config
		err := yaml.Unmarshal([]byte(tc.doc), &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// Switching rate limits at window edges: ask for the profile now, and again
// at the next change.
func Example() {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	business, _ := policy.ParseWindow("Mon-Fri 08:00-18:00")
	s := policy.Schedule{Location: berlin, Rules: []policy.Rule{{Window: business, Name: "business"}}}
	profiles := []policy.RateProfile{{Name: "business", Down: 250_000, Up: 64_000}}

	now := time.Date(2026, 3, 27, 17, 0, 0, 0, berlin) // Friday before the spring-forward weekend
	for range 3 {
		p, _ := policy.ProfileAt(s, profiles, "", now)
		next := s.NextChange(now)
		fmt.Printf("%s: %s (down %s, up %s) until %s\n", now.Format("Mon 15:04 MST"), p.Name, p.Down, p.Up, next.Format("Mon 2006-01-02 15:04 MST"))
		now = next
	}
	// Output:
	// Fri 17:00 CET: business (down 2Mbit/s, up 512kbit/s) until Fri 2026-03-27 18:00 CET
	// Fri 18:00 CET: unlimited (down unlimited, up unlimited) until Mon 2026-03-30 08:00 CEST
	// Mon 08:00 CEST: business (down 2Mbit/s, up 512kbit/s) until Mon 2026-03-30 18:00 CEST
}
