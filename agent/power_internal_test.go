package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/policy"
)

// fakeSysfs builds a /sys in a temp dir the way the kernel lays it out:
// class entries are symlinks into the device tree.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func newFakeSysfs(t *testing.T) *fakeSysfs {
	return &fakeSysfs{t: t, root: t.TempDir()}
}

// add writes a device's attributes under devices/ and links it from
// class/<class>/<name>.
func (s *fakeSysfs) add(class, name string, attrs map[string]string) {
	s.t.Helper()
	dev := filepath.Join(s.root, "devices", "platform", class+"-"+name, name)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		s.t.Fatal(err)
	}
	for k, v := range attrs {
		if err := os.WriteFile(filepath.Join(dev, k), []byte(v+"\n"), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	cls := filepath.Join(s.root, "class", class)
	if err := os.MkdirAll(cls, 0o755); err != nil {
		s.t.Fatal(err)
	}
	rel, err := filepath.Rel(cls, dev)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(cls, name)); err != nil {
		s.t.Fatal(err)
	}
}

// fakeNmcli puts an nmcli on a temp dir that prints out and exits with
// code, as NetworkManager's would; it records its arguments.
func fakeNmcli(t *testing.T, out string, code int, stderr string) (bin, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	if err := os.WriteFile(filepath.Join(dir, "out"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" +
		"[ -n \"$FAKE_PROBE\" ] && exit 0\n" +
		"echo \"$@\" >> '" + argsFile + "'\n" +
		"echo \"LC_ALL=$LC_ALL\" >> '" + argsFile + "'\n" +
		"cat '" + filepath.Join(dir, "out") + "'\n" +
		"printf '%s' '" + stderr + "' >&2\n" +
		"exit " + string(rune('0'+code)) + "\n"
	bin = filepath.Join(dir, "nmcli")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// A script executed right after it was written can fail with "text
	// file busy" while another goroutine forks (golang.org/issue/22315):
	// wait until it runs.
	for i := 0; ; i++ {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "FAKE_PROBE=1")
		err := cmd.Run()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || i == 100 {
			t.Fatalf("fake nmcli: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return bin, argsFile
}

// Patterns such as wwan* match the interfaces sysfs lists; those up (or,
// like ppp, "unknown" but up and running) count as metered, down ones do
// not.
func TestPowerMeteredInterfaceGlobs(t *testing.T) {
	fs := newFakeSysfs(t)
	fs.add("net", "eth0", map[string]string{"operstate": "up", "flags": "0x1003"})
	fs.add("net", "wwan0", map[string]string{"operstate": "up", "flags": "0x1003"})
	fs.add("net", "wwan1", map[string]string{"operstate": "down", "flags": "0x1002"})
	fs.add("net", "ppp0", map[string]string{"operstate": "unknown", "flags": "0x10d1"})
	fs.add("net", "ppp1", map[string]string{"operstate": "unknown", "flags": "0x1090"}) // not IFF_UP
	r := &powerReader{root: fs.root, log: slog.New(slog.DiscardHandler)}

	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"wwan*"}, []string{"wwan0"}},
		{[]string{"wwan*", "ppp[0-9]"}, []string{"ppp0", "wwan0"}},
		{[]string{"wwan0"}, []string{"wwan0"}},
		{[]string{"wlan*"}, nil},
		{[]string{"wwan1"}, nil},
	} {
		rules := policy.PowerRules{MeteredInterfaces: tc.patterns}
		c := r.read(rules, time.Now())
		slices.Sort(c.Interfaces)
		if !slices.Equal(c.Interfaces, tc.want) {
			t.Errorf("%v: interfaces %v, want %v", tc.patterns, c.Interfaces, tc.want)
		}
		up, _, why := policy.Throttle(c, rules)
		if up != (len(tc.want) == 0) {
			t.Errorf("%v: upload allowed %v (%s)", tc.patterns, up, why)
		}
		if len(tc.want) > 0 && !strings.Contains(why, "metered connection (") {
			t.Errorf("%v: reason %q names no interface", tc.patterns, why)
		}
	}
}

// Batteries are found through the class symlinks; the level comes from
// energy counters when every battery has them.
func TestPowerBatteryFromSysfs(t *testing.T) {
	fs := newFakeSysfs(t)
	fs.add("power_supply", "AC", map[string]string{"type": "Mains", "online": "0"})
	fs.add("power_supply", "BAT0", map[string]string{"type": "Battery", "status": "Discharging", "present": "1",
		"capacity": "40", "energy_now": "15000000", "energy_full": "100000000"})
	fs.add("power_supply", "hid-mouse", map[string]string{"type": "Battery", "scope": "Device", "capacity": "5", "status": "Discharging"})
	r := &powerReader{root: fs.root, log: slog.New(slog.DiscardHandler)}
	rules := policy.PowerRules{MinBattery: 20}
	c := r.read(rules, time.Now())
	if !c.OnBattery || c.BatteryPercent != 15 {
		t.Fatalf("on battery %v at %d%%, want true at 15%% (energy counters, mouse ignored)", c.OnBattery, c.BatteryPercent)
	}
	if up, down, why := policy.Throttle(c, rules); up || down || !strings.Contains(why, "on battery at 15%") {
		t.Fatalf("throttle: up %v down %v %q", up, down, why)
	}

	// Mains back: not on battery, whatever the level.
	if err := os.WriteFile(filepath.Join(fs.root, "class", "power_supply", "AC", "online"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := r.read(rules, time.Now()); c.OnBattery {
		t.Fatal("on battery with mains online")
	}
	// No battery rule: the supplies are not read at all.
	if c := r.read(policy.PowerRules{}, time.Now()); c.BatteryPercent != -1 {
		t.Fatalf("battery read without a battery rule: %d", c.BatteryPercent)
	}
}

// NetworkManager's metered flag, from nmcli's terse device listing: the
// device holding the default gateway decides; an absent NetworkManager is
// not metered and logged once at debug level.
func TestPowerNetworkManagerMetered(t *testing.T) {
	const wifiOnly = "GENERAL.DEVICE:wlp2s0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:no (guessed)\nIP4.GATEWAY:192.168.1.1\nIP6.GATEWAY:fe80\\:\\:1\n\n" +
		"GENERAL.DEVICE:lo\nGENERAL.STATE:100 (connected (externally))\nGENERAL.METERED:unknown\nIP4.GATEWAY:\nIP6.GATEWAY:\n"
	const wwanPrimary = "GENERAL.DEVICE:wlp2s0\nGENERAL.STATE:30 (disconnected)\nGENERAL.METERED:unknown\nIP4.GATEWAY:\nIP6.GATEWAY:\n\n" +
		"GENERAL.DEVICE:wwan0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:yes\nIP4.GATEWAY:10.64.64.64\nIP6.GATEWAY:\n"
	const hotspot = "GENERAL.DEVICE:wlp2s0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:yes (guessed)\nIP4.GATEWAY:172.20.10.1\nIP6.GATEWAY:\n"
	const wwanBackup = "GENERAL.DEVICE:eth0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:no\nIP4.GATEWAY:192.168.1.1\nIP6.GATEWAY:\n\n" +
		"GENERAL.DEVICE:wwan0\nGENERAL.STATE:100 (connected)\nGENERAL.METERED:yes\nIP4.GATEWAY:\nIP6.GATEWAY:\n"
	for _, tc := range []struct {
		name, out string
		metered   bool
		device    string
	}{
		{"wifi, not metered", wifiOnly, false, ""},
		{"modem carries the default route", wwanPrimary, true, "wwan0"},
		{"phone hotspot, guessed", hotspot, true, "wlp2s0"},
		{"metered modem without the default route", wwanBackup, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, argsFile := fakeNmcli(t, tc.out, 0, "")
			r := &powerReader{root: t.TempDir(), nm: true, nmcli: bin, log: slog.New(slog.DiscardHandler)}
			c := r.read(policy.PowerRules{}, time.Now())
			if c.Metered != tc.metered || (tc.metered && c.MeteredBy != "NetworkManager: "+tc.device) {
				t.Fatalf("metered %v by %q, want %v by %s", c.Metered, c.MeteredBy, tc.metered, tc.device)
			}
			up, _, why := policy.Throttle(c, policy.PowerRules{})
			if up == tc.metered {
				t.Fatalf("upload allowed %v on a connection metered %v (%s)", up, tc.metered, why)
			}
			args, _ := os.ReadFile(argsFile)
			if !strings.Contains(string(args), "GENERAL.METERED") || !strings.Contains(string(args), "LC_ALL=C") {
				t.Fatalf("nmcli called as %q", args)
			}
		})
	}

	// nmcli is asked at most every nmEvery; a later answer replaces it.
	bin, argsFile := fakeNmcli(t, wwanPrimary, 0, "")
	r := &powerReader{root: t.TempDir(), nm: true, nmcli: bin, log: slog.New(slog.DiscardHandler)}
	t0 := time.Now()
	for i := range 5 {
		if !r.read(policy.PowerRules{}, t0.Add(time.Duration(i)*time.Second)).Metered {
			t.Fatal("not metered")
		}
	}
	if args, _ := os.ReadFile(argsFile); strings.Count(string(args), "device show") != 1 {
		t.Fatalf("nmcli ran %d times within %v", strings.Count(string(args), "device show"), nmEvery)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(bin), "out"), []byte(wifiOnly), 0o644); err != nil {
		t.Fatal(err)
	}
	if r.read(policy.PowerRules{}, t0.Add(nmEvery+time.Second)).Metered {
		t.Fatal("still metered after NetworkManager changed its answer")
	}

	// NetworkManager not running, then no nmcli at all (found on $PATH):
	// not metered, one debug line.
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	down, _ := fakeNmcli(t, "", 8, "Error: NetworkManager is not running.")
	r = &powerReader{root: t.TempDir(), nm: true, nmcli: down, log: log}
	for i := range 3 {
		if r.read(policy.PowerRules{}, t0.Add(time.Duration(i)*(nmEvery+time.Second))).Metered {
			t.Fatal("metered without NetworkManager")
		}
	}
	t.Setenv("PATH", t.TempDir())
	r.nmcli = ""
	if r.read(policy.PowerRules{}, t0.Add(10*nmEvery)).Metered {
		t.Fatal("metered without nmcli")
	}
	if n := strings.Count(logs.String(), "NetworkManager not available"); n != 1 || !strings.Contains(logs.String(), "not running") {
		t.Fatalf("absence logged %d times:\n%s", n, logs.String())
	}
	// network_manager: off never asks.
	bin, argsFile = fakeNmcli(t, wwanPrimary, 0, "")
	r = newPowerReader(PowerConfig{SysfsRoot: t.TempDir(), NetworkManager: NetworkManagerOff}, log)
	r.nmcli = bin
	if r.read(policy.PowerRules{}, t0).Metered {
		t.Fatal("metered with network_manager: off")
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Fatal("nmcli ran with network_manager: off")
	}
}
