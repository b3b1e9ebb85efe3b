package policy

import (
	"strings"
	"testing"
)

func TestThrottle(t *testing.T) {
	rules := PowerRules{MeteredInterfaces: []string{"wwan*", "ppp0", "[bad"}, MinBattery: 20}
	tests := []struct {
		name     string
		c        Conditions
		r        PowerRules
		up, down bool
		reason   string
	}{
		{"all clear", Conditions{Interfaces: []string{"eth0"}, BatteryPercent: -1}, rules, true, true, ""},
		{"no rules", Conditions{Interfaces: []string{"wwan0"}, OnBattery: true, BatteryPercent: 1}, PowerRules{}, true, true, ""},
		{"platform says metered", Conditions{Metered: true, BatteryPercent: -1}, rules, false, false, "metered connection"},
		{"platform names who says metered", Conditions{Metered: true, MeteredBy: "NetworkManager: wwan0", BatteryPercent: -1}, rules, false, false, "metered connection (NetworkManager: wwan0)"},
		{"platform says metered, interface too", Conditions{Metered: true, Interfaces: []string{"wwan0"}}, rules, false, false, "metered connection"},
		{"metered by glob", Conditions{Interfaces: []string{"eth0", "wwan1"}, BatteryPercent: -1}, rules, false, false, "metered connection (wwan1)"},
		{"metered by name", Conditions{Interfaces: []string{"ppp0"}, BatteryPercent: -1}, rules, false, false, "metered connection (ppp0)"},
		{"first metered interface named", Conditions{Interfaces: []string{"ppp0", "wwan0"}}, rules, false, false, "metered connection (ppp0)"},
		{"not matched: ppp1", Conditions{Interfaces: []string{"ppp1"}, BatteryPercent: -1}, rules, true, true, ""},
		{"bad pattern matches nothing", Conditions{Interfaces: []string{"[bad"}, BatteryPercent: -1}, rules, true, true, ""},
		{"on battery above threshold", Conditions{OnBattery: true, BatteryPercent: 20}, rules, true, true, ""},
		{"on battery below threshold", Conditions{OnBattery: true, BatteryPercent: 19}, rules, false, false, "on battery at 19% (below 20%)"},
		{"on battery at 0%", Conditions{OnBattery: true, BatteryPercent: 0}, rules, false, false, "on battery at 0% (below 20%)"},
		{"on battery, level unknown", Conditions{OnBattery: true, BatteryPercent: -1}, rules, true, true, ""},
		{"charging below threshold", Conditions{OnBattery: false, BatteryPercent: 5}, rules, true, true, ""},
		{"threshold 0 disables", Conditions{OnBattery: true, BatteryPercent: 1}, PowerRules{}, true, true, ""},
		{"threshold 100: any discharge", Conditions{OnBattery: true, BatteryPercent: 99}, PowerRules{MinBattery: 100}, false, false, "on battery at 99% (below 100%)"},
		{"both", Conditions{Interfaces: []string{"wwan0"}, OnBattery: true, BatteryPercent: 15}, rules, false, false, "metered connection (wwan0); on battery at 15% (below 20%)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, down, reason := Throttle(tc.c, tc.r)
			if up != tc.up || down != tc.down || reason != tc.reason {
				t.Fatalf("Throttle = %v, %v, %q; want %v, %v, %q", up, down, reason, tc.up, tc.down, tc.reason)
			}
		})
	}
}

func TestPowerRulesValidate(t *testing.T) {
	tests := []struct {
		r    PowerRules
		want string
	}{
		{PowerRules{}, ""},
		{PowerRules{MeteredInterfaces: []string{"wwan*", "ppp[0-9]"}, MinBattery: 100}, ""},
		{PowerRules{MeteredInterfaces: []string{"[bad"}}, `metered interface pattern "[bad" is not valid`},
		{PowerRules{MeteredInterfaces: []string{""}}, `metered interface pattern "" is not valid`},
		{PowerRules{MinBattery: -1}, "min battery -1% is outside 0-100"},
		{PowerRules{MinBattery: 101}, "min battery 101% is outside 0-100"},
	}
	for _, tc := range tests {
		err := tc.r.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
}

func TestParsePowerSupply(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		battery bool
		percent int
	}{
		{"no supplies (server)", nil, false, -1},
		{"mains only (desktop)", map[string]string{"AC/type": "Mains\n", "AC/online": "1\n"}, false, -1},
		{"laptop on AC, charging", map[string]string{
			"AC/type": "Mains\n", "AC/online": "1\n",
			"BAT0/type": "Battery\n", "BAT0/status": "Charging\n", "BAT0/capacity": "55\n",
		}, false, 55},
		{"laptop on battery", map[string]string{
			"AC/type": "Mains\n", "AC/online": "0\n",
			"BAT0/type": "Battery\n", "BAT0/status": "Discharging\n", "BAT0/capacity": "40\n",
		}, true, 40},
		{"AC offline, battery 'Not charging'", map[string]string{
			"ADP1/type": "Mains", "ADP1/online": "0",
			"BAT0/type": "Battery", "BAT0/status": "Not charging", "BAT0/capacity": "80",
		}, true, 80},
		{"AC online, battery says discharging: AC wins", map[string]string{
			"AC/type": "Mains", "AC/online": "1",
			"BAT0/type": "Battery", "BAT0/status": "Discharging", "BAT0/capacity": "70",
		}, false, 70},
		{"USB-C supply online", map[string]string{
			"ucsi-source-psy-USBC000:001/type": "USB", "ucsi-source-psy-USBC000:001/online": "2",
			"AC/type": "Mains", "AC/online": "0",
			"BAT0/type": "Battery", "BAT0/status": "Charging", "BAT0/capacity": "30",
		}, false, 30},
		{"no mains info, discharging", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Discharging", "BAT0/capacity": "12"}, true, 12},
		{"no mains info, full", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Full", "BAT0/capacity": "100"}, false, 100},
		{"untyped battery (capacity)", map[string]string{"BAT0/status": "discharging", "BAT0/capacity": "33"}, true, 33},
		{"mouse battery ignored", map[string]string{
			"hidpp_battery_0/type": "Battery", "hidpp_battery_0/scope": "Device\n",
			"hidpp_battery_0/status": "Discharging", "hidpp_battery_0/capacity": "5",
		}, false, -1},
		{"absent battery ignored", map[string]string{
			"AC/type": "Mains", "AC/online": "0",
			"BAT1/type": "Battery", "BAT1/present": "0", "BAT1/status": "Unknown",
		}, false, -1},
		{"two batteries by energy", map[string]string{
			"AC/type": "Mains", "AC/online": "0",
			"BAT0/type": "Battery", "BAT0/status": "Discharging", "BAT0/energy_now": "20000000", "BAT0/energy_full": "40000000", "BAT0/capacity": "50",
			"BAT1/type": "Battery", "BAT1/status": "Unknown", "BAT1/energy_now": "10000000", "BAT1/energy_full": "10000000", "BAT1/capacity": "100",
		}, true, 60},
		{"two batteries by charge", map[string]string{
			"BAT0/type": "Battery", "BAT0/charge_now": "1000", "BAT0/charge_full": "3000",
			"BAT1/type": "Battery", "BAT1/charge_now": "0", "BAT1/charge_full": "3000",
		}, false, 17},
		{"mixed reporting averages capacity", map[string]string{
			"BAT0/type": "Battery", "BAT0/energy_now": "1", "BAT0/energy_full": "2", "BAT0/capacity": "50",
			"BAT1/type": "Battery", "BAT1/capacity": "71",
		}, false, 61},
		{"energy_full zero falls back", map[string]string{"BAT0/type": "Battery", "BAT0/energy_now": "5", "BAT0/energy_full": "0", "BAT0/capacity": "44"}, false, 44},
		{"garbage capacity is unknown", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Discharging", "BAT0/capacity": "lots"}, true, -1},
		{"capacity clamped", map[string]string{"BAT0/type": "Battery", "BAT0/capacity": "120"}, false, 100},
		{"full paths", map[string]string{
			"/sys/class/power_supply/AC/type": "Mains\n", "/sys/class/power_supply/AC/online": "0\n",
			"/sys/class/power_supply/BAT0/type": "Battery\n", "/sys/class/power_supply/BAT0/capacity": "9\n",
		}, true, 9},
		{"uevent only", map[string]string{
			"AC/uevent":   "POWER_SUPPLY_NAME=AC\nPOWER_SUPPLY_TYPE=Mains\nPOWER_SUPPLY_ONLINE=0\n",
			"BAT0/uevent": "DEVTYPE=power_supply\nPOWER_SUPPLY_NAME=BAT0\nPOWER_SUPPLY_TYPE=Battery\nPOWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_CAPACITY=27\nnonsense\n",
		}, true, 27},
		{"attribute file overrides uevent", map[string]string{
			"BAT0/uevent":   "POWER_SUPPLY_TYPE=Battery\nPOWER_SUPPLY_CAPACITY=27\n",
			"BAT0/capacity": "26\n",
		}, false, 26},
		{"keys without a supply ignored", map[string]string{"capacity": "50", "/capacity": "50", "BAT0/": "x"}, false, -1},
		{"mains with garbage online is offline", map[string]string{
			"AC/type": "Mains", "AC/online": "yes",
			"BAT0/type": "Battery", "BAT0/status": "Unknown", "BAT0/capacity": "50",
		}, true, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			battery, percent := ParsePowerSupply(tc.files)
			if battery != tc.battery || percent != tc.percent {
				t.Fatalf("ParsePowerSupply = %v, %d; want %v, %d", battery, percent, tc.battery, tc.percent)
			}
		})
	}
}
