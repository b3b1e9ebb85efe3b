package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/swarmship/swarmship/policy"
)

// NetworkManager settings of PowerConfig.NetworkManager.
const (
	NetworkManagerAuto = "auto" // ask NetworkManager when it runs (the default)
	NetworkManagerOff  = "off"  // never ask; only metered_interfaces count
)

// nmEvery is how often NetworkManager is asked: a metered flag changes
// with the connection, rarely, and nmcli costs a process.
const nmEvery = 10 * time.Second

// powerReader reads the device's power and network state: sysfs under
// root for batteries and interfaces, NetworkManager (nmcli) for the OS's
// own metered flag.
type powerReader struct {
	root  string // where /sys lives
	nm    bool   // ask NetworkManager
	nmcli string // the nmcli to run; "" looks it up on $PATH
	log   *slog.Logger

	mu       sync.Mutex
	nmAt     time.Time
	nmAnswer nmState
	nmQuiet  bool // NetworkManager's absence was logged
}

// nmState is NetworkManager's view: whether the connection carrying
// traffic is metered, and by which device.
type nmState struct {
	metered bool
	device  string
}

func newPowerReader(c PowerConfig, log *slog.Logger) *powerReader {
	if log == nil {
		log = slog.Default()
	}
	return &powerReader{root: c.SysfsRoot, nm: c.NetworkManager != NetworkManagerOff, log: log}
}

// read gathers the conditions the rules need: batteries only when a
// battery rule is set, interfaces matching the metered patterns, and
// NetworkManager's metered flag.
func (r *powerReader) read(rules policy.PowerRules, now time.Time) policy.Conditions {
	c := policy.Conditions{BatteryPercent: -1}
	if rules.MinBattery > 0 {
		c.OnBattery, c.BatteryPercent = policy.ParsePowerSupply(r.powerSupplies())
	}
	if len(rules.MeteredInterfaces) > 0 {
		c.Interfaces = r.upInterfaces(rules.MeteredInterfaces)
	}
	if r.nm {
		if st := r.networkManager(now); st.metered {
			c.Metered, c.MeteredBy = true, "NetworkManager: "+st.device
		}
	}
	return c
}

// powerSupplyAttrs are the files of a /sys/class/power_supply entry that
// policy.ParsePowerSupply reads.
var powerSupplyAttrs = []string{"type", "status", "capacity", "online", "present", "scope",
	"energy_now", "energy_full", "charge_now", "charge_full"}

// powerSupplies reads every supply's attributes: the entries of
// /sys/class/power_supply are symlinks into the device tree, followed.
func (r *powerReader) powerSupplies() map[string]string {
	files := map[string]string{}
	dir := filepath.Join(r.root, "class", "power_supply")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		for _, attr := range powerSupplyAttrs {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name(), attr)); err == nil {
				files[e.Name()+"/"+attr] = strings.TrimSpace(string(b))
			}
		}
	}
	return files
}

// upInterfaces lists the interfaces of /sys/class/net whose names match
// a pattern (path.Match: "wwan*", "ppp[0-9]") and that carry traffic:
// operstate "up", or "unknown" (usual for ppp and many modems, which
// report no carrier state) while the interface is up and running.
func (r *powerReader) upInterfaces(patterns []string) []string {
	dir := filepath.Join(r.root, "class", "net")
	entries, _ := os.ReadDir(dir)
	var up []string
	for _, e := range entries {
		name := e.Name()
		if !matchAny(patterns, name) {
			continue
		}
		state, _ := os.ReadFile(filepath.Join(dir, name, "operstate"))
		switch strings.TrimSpace(string(state)) {
		case "up":
			up = append(up, name)
		case "unknown":
			const iffUp, iffRunning = 0x1, 0x40
			b, _ := os.ReadFile(filepath.Join(dir, name, "flags"))
			if f, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 32); err == nil && f&(iffUp|iffRunning) == iffUp|iffRunning {
				up = append(up, name)
			}
		}
	}
	return up
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// networkManager returns NetworkManager's metered flag, asking at most
// every nmEvery. No NetworkManager (no nmcli, or it does not run) is
// normal: not metered, logged once at debug level.
func (r *powerReader) networkManager(now time.Time) nmState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nmAt.IsZero() && now.Sub(r.nmAt) < nmEvery && now.After(r.nmAt) {
		return r.nmAnswer
	}
	r.nmAt = now
	st, err := r.askNetworkManager()
	if err != nil {
		if !r.nmQuiet {
			r.log.Debug("NetworkManager not available; its metered flag is not consulted", "err", err)
			r.nmQuiet = true
		}
		r.nmAnswer = nmState{}
		return r.nmAnswer
	}
	r.nmQuiet = false
	if st != r.nmAnswer {
		r.log.Info("NetworkManager metered flag", "metered", st.metered, "device", st.device)
	}
	r.nmAnswer = st
	return st
}

var errNoNmcli = errors.New("nmcli not found")

func (r *powerReader) askNetworkManager() (nmState, error) {
	bin := r.nmcli
	if bin == "" {
		p, err := exec.LookPath("nmcli")
		if err != nil {
			return nmState{}, errNoNmcli
		}
		bin = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--terse", "--fields", "GENERAL.DEVICE,GENERAL.STATE,GENERAL.METERED,IP4.GATEWAY,IP6.GATEWAY", "device", "show")
	// Untranslated values ("yes (guessed)"), whatever the host's locale.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// "Error: NetworkManager is not running." and the like.
		return nmState{}, errors.New(strings.TrimSpace(err.Error() + ": " + stderr.String()))
	}
	return parseNmcliDevices(out), nil
}

// parseNmcliDevices reads `nmcli -t -f GENERAL.DEVICE,GENERAL.STATE,
// GENERAL.METERED,IP4.GATEWAY,IP6.GATEWAY device show`: one block of
// KEY:value lines per device (colons in values escaped as \:). The
// connection is metered when a connected device that holds a default
// gateway is metered ("yes", or "yes (guessed)": NetworkManager guesses
// from a phone's hotspot or a modem); when no connected device names a
// gateway, any connected metered device counts.
func parseNmcliDevices(out []byte) nmState {
	type dev struct {
		name, state, metered string
		gateway              bool
	}
	var devs []dev
	cur := -1
	for line := range strings.Lines(string(out)) {
		key, val, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(strings.ReplaceAll(val, `\:`, ":"))
		switch {
		case key == "GENERAL.DEVICE":
			devs = append(devs, dev{name: val})
			cur = len(devs) - 1
		case cur < 0:
		case key == "GENERAL.STATE":
			devs[cur].state = val
		case key == "GENERAL.METERED":
			devs[cur].metered = val
		case strings.HasPrefix(key, "IP4.GATEWAY"), strings.HasPrefix(key, "IP6.GATEWAY"):
			devs[cur].gateway = devs[cur].gateway || (val != "" && val != "--")
		}
	}
	connected := func(d dev) bool { return strings.HasPrefix(d.state, "100") } // "100 (connected)"
	metered := func(d dev) bool {
		switch strings.ToLower(d.metered) {
		case "yes", "yes (guessed)", "guess-yes":
			return true
		}
		return false
	}
	anyGateway := false
	for _, d := range devs {
		anyGateway = anyGateway || (connected(d) && d.gateway)
	}
	for _, d := range devs {
		if connected(d) && (d.gateway || !anyGateway) && metered(d) {
			return nmState{metered: true, device: d.name}
		}
	}
	return nmState{}
}
