package policy

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Conditions are the device's current network and power state, gathered
// by the agent (ParsePowerSupply reads the power part).
type Conditions struct {
	// Metered is true when the platform reports the uplink as metered
	// (e.g. NetworkManager's GENERAL.METERED); MeteredBy says who and for
	// which device ("NetworkManager: wwan0"), for the reason.
	Metered   bool
	MeteredBy string
	// Interfaces are the network interfaces carrying traffic now, e.g. the
	// default route's; they are matched against PowerRules.MeteredInterfaces.
	Interfaces []string
	// OnBattery is true when the device runs from its battery.
	OnBattery bool
	// BatteryPercent is the charge, 0-100, or -1 when unknown.
	BatteryPercent int
}

// PowerRules say which conditions stop uploads and hold back downloads.
type PowerRules struct {
	// MeteredInterfaces are interface names or path.Match patterns
	// ("wwan*", "ppp0") that count as metered.
	MeteredInterfaces []string `yaml:"metered_interfaces"`
	// MinBattery is the battery percentage below which, on battery, upload
	// stops and downloads wait; 0 disables the rule.
	MinBattery int `yaml:"min_battery"`
}

// Validate checks the interface patterns and the battery threshold; errors
// name the field (internal/fielderr).
func (r PowerRules) Validate() error {
	for i, p := range r.MeteredInterfaces {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fielderr.New(fielderr.Index("metered_interfaces", i), "metered interface pattern %q is not valid", p)
		}
	}
	if r.MinBattery < 0 || r.MinBattery > 100 {
		return fielderr.New("min_battery", "min battery %d%% is outside 0-100", r.MinBattery)
	}
	return nil
}

// Throttle applies the metered and battery rules. On a metered link
// (c.Metered, or an interface in c.Interfaces matching r.MeteredInterfaces)
// and on battery below r.MinBattery, both upload and download stop; the
// caller lets urgent downloads through anyway (MayDownload does). An
// unknown battery level (-1) never counts as low. reason names every
// condition that applies, e.g. "metered connection (wwan0); on battery at
// 15% (below 20%)", and is empty when both are allowed.
func Throttle(c Conditions, r PowerRules) (uploadAllowed, downloadAllowed bool, reason string) {
	var why []string
	switch {
	case c.Metered && c.MeteredBy != "":
		why = append(why, "metered connection ("+c.MeteredBy+")")
	case c.Metered:
		why = append(why, "metered connection")
	default:
		for _, iface := range c.Interfaces {
			if matchesAny(r.MeteredInterfaces, iface) {
				why = append(why, "metered connection ("+iface+")")
				break
			}
		}
	}
	if r.MinBattery > 0 && c.OnBattery && c.BatteryPercent >= 0 && c.BatteryPercent < r.MinBattery {
		why = append(why, fmt.Sprintf("on battery at %d%% (below %d%%)", c.BatteryPercent, r.MinBattery))
	}
	if len(why) > 0 {
		return false, false, strings.Join(why, "; ")
	}
	return true, true, ""
}

func matchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ParsePowerSupply reads the state of /sys/class/power_supply from the
// contents of its files, which the agent reads. Keys are
// "<supply>/<attribute>" such as "BAT0/capacity", "BAT0/status",
// "AC/online", "AC/type" (a full path works too: only the last two
// elements count); a supply's "uevent" file (POWER_SUPPLY_CAPACITY=80 …) may
// stand in for its separate attribute files. Values may end in a newline.
//
// Batteries are supplies of type "Battery" (or, without a type, with a
// capacity); those of scope "Device" (mice, keyboards) and those with
// present=0 are ignored. Other supplies (Mains, USB …) count by "online".
// The device is on battery when it has a battery, no external supply is
// online, and either a battery is "Discharging" or an external supply is
// known to be offline. The percentage combines all batteries by energy
// (or charge) when every battery reports it, else averages "capacity";
// it is -1 when unknown or when there is no battery.
func ParsePowerSupply(files map[string]string) (onBattery bool, batteryPercent int) {
	supplies := map[string]map[string]string{}
	attrs := func(name string) map[string]string {
		if supplies[name] == nil {
			supplies[name] = map[string]string{}
		}
		return supplies[name]
	}
	// uevent first, so that separate attribute files override it.
	for key, val := range files {
		name, attr, ok := supplyKey(key)
		if !ok || attr != "uevent" {
			continue
		}
		a := attrs(name)
		for line := range strings.Lines(val) {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if k, found := strings.CutPrefix(k, "POWER_SUPPLY_"); ok && found {
				a[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		}
	}
	for key, val := range files {
		if name, attr, ok := supplyKey(key); ok && attr != "uevent" {
			attrs(name)[attr] = strings.TrimSpace(val)
		}
	}

	var batteries []map[string]string
	external, externalOnline := false, false
	for _, a := range supplies {
		typ := strings.ToLower(a["type"])
		_, hasCapacity := a["capacity"]
		switch {
		case typ == "battery" || typ == "" && hasCapacity:
			if strings.EqualFold(a["scope"], "device") || a["present"] == "0" {
				continue
			}
			batteries = append(batteries, a)
		case a["online"] != "":
			external = true
			if n, err := strconv.Atoi(a["online"]); err == nil && n > 0 {
				externalOnline = true
			}
		}
	}
	if len(batteries) == 0 {
		return false, -1
	}
	discharging := false
	for _, b := range batteries {
		discharging = discharging || strings.EqualFold(b["status"], "discharging")
	}
	onBattery = !externalOnline && (discharging || external)
	return onBattery, batteryLevel(batteries)
}

// supplyKey splits ".../BAT0/capacity" into "BAT0" and "capacity".
func supplyKey(key string) (name, attr string, ok bool) {
	key = strings.TrimSuffix(key, "/")
	i := strings.LastIndexByte(key, '/')
	if i <= 0 {
		return "", "", false
	}
	name, attr = key[:i], key[i+1:]
	name = name[strings.LastIndexByte(name, '/')+1:]
	return name, strings.ToLower(attr), name != "" && attr != ""
}

func batteryLevel(batteries []map[string]string) int {
	for _, pair := range [][2]string{{"energy_now", "energy_full"}, {"charge_now", "charge_full"}} {
		var now, full int64
		all := true
		for _, b := range batteries {
			n, err1 := strconv.ParseInt(b[pair[0]], 10, 64)
			f, err2 := strconv.ParseInt(b[pair[1]], 10, 64)
			if err1 != nil || err2 != nil || n < 0 || f <= 0 {
				all = false
				break
			}
			now, full = now+n, full+f
		}
		if all {
			return clampPercent((now*100 + full/2) / full)
		}
	}
	sum, n := 0, 0
	for _, b := range batteries {
		if c, err := strconv.Atoi(b["capacity"]); err == nil {
			sum, n = sum+clampPercent(int64(c)), n+1
		}
	}
	if n == 0 {
		return -1
	}
	return (sum + n/2) / n
}

func clampPercent(v int64) int {
	return int(min(max(v, 0), 100))
}
