package agent

import (
	"strings"
	"testing"
)

// TestConfigSectionErrorsNameFileLineAndPath: for every section, an
// invalid value is reported as agent.yaml:line: full.field.path: why, with
// the line of the offending field, including errors from validators that
// live with the section's component (peertls, policy, tracing).
func TestConfigSectionErrorsNameFileLineAndPath(t *testing.T) {
	// goodConfig has 15 lines; appended sections start at line 16.
	tests := []struct {
		name   string
		edit   func(string) string
		prefix string // the error starts with it
		why    string // and contains it
	}{
		{"catalog.url", func(s string) string {
			return strings.Replace(s, "http://origin:7070/\n  root", "gopher://x/\n  root", 1)
		},
			"agent.yaml:2: catalog.url: ", "unknown scheme"},
		{"catalog.root", func(s string) string {
			return strings.Replace(s, "  root: /etc/swarmship/root.json\n", "  root: \"\"\n", 1)
		},
			"agent.yaml:3: catalog.root: ", "required"},
		{"subscriptions[0].channel", func(s string) string { return strings.Replace(s, "channel: stable", "channel: a/b", 1) },
			"agent.yaml:10: subscriptions[0].channel: ", ""},
		{"subscriptions[1].version", func(s string) string { return strings.Replace(s, `version: "2.1"`, `version: "../2"`, 1) },
			"agent.yaml:12: subscriptions[1].version: ", ""},
		{"subscriptions[1].keep", func(s string) string { return strings.Replace(s, "keep: 3", "keep: -2", 1) },
			"agent.yaml:13: subscriptions[1].keep: ", "negative"},
		{"subscriptions[1].windows[1]", func(s string) string {
			return strings.Replace(s, "keep: 3", "keep: 3\n    windows: [\"daily 22:00-06:00\", \"sometimes\"]", 1)
		}, "agent.yaml:14: subscriptions[1].windows[1]: ", ""},
		{"offload.parallel", func(s string) string { return s + "  parallel: 99\n" },
			"agent.yaml:16: offload.parallel: ", "between 1 and 64"},
		{"offload.orphan_timeout", func(s string) string { return s + "  orphan_timeout: -1s\n" },
			"agent.yaml:16: offload.orphan_timeout: ", "positive"},
		{"offload.origin_share", func(s string) string { return s + "  origin_share: 1.5\n" },
			"agent.yaml:16: offload.origin_share: ", "fraction"},
		{"offload.site_wan_down", func(s string) string { return s + "  site_wan_down: 50kbit\n" },
			"agent.yaml:16: offload.site_wan_down: ", "at least 64kbit"},
		{"swarm.locality", func(s string) string { return s + "swarm:\n  max_conns: 3\n  locality: planet\n" },
			"agent.yaml:18: swarm.locality: ", "want gateway"},
		{"swarm.max_conns", func(s string) string { return s + "swarm:\n  max_conns: -3\n" },
			"agent.yaml:17: swarm.max_conns: ", "at least 1"},
		{"swarm.order", func(s string) string { return s + "swarm:\n  order: sequential\n" },
			"agent.yaml:17: swarm.order: ", "want verify or rarest"},
		{"swarm.dscp", func(s string) string { return s + "swarm:\n  dscp: AF14\n" },
			"agent.yaml:17: swarm.dscp: ", "0-63"},
		{"peer_tls.mode", func(s string) string { return s + "peer_tls:\n  ca: /ca.pem\n  mode: sometimes\n" },
			"agent.yaml:18: peer_tls.mode: ", "want off or required"},
		{"peer_tls.key", func(s string) string { return s + "peer_tls:\n  mode: required\n  ca: /ca.pem\n  cert: /c.pem\n" },
			"agent.yaml:16: peer_tls.key: ", "required"},
		{"tls.cert", func(s string) string { return s + "tls:\n  ca: /ca.pem\n  cert: /c.pem\n" },
			"agent.yaml:18: tls.cert: ", "go together"},
		{"media.listen", func(s string) string { return s + "media:\n  releases: [app]\n  listen: 8088\n" },
			"agent.yaml:18: media.listen: ", "host:port"},
		{"media.allow[1]", func(s string) string { return s + "media:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.1\n" },
			"agent.yaml:19: media.allow[1]: ", "not a CIDR"},
		{"media.releases[0]", func(s string) string { return s + "media:\n  listen: \":8088\"\n  releases: [signage]\n" },
			"agent.yaml:18: media.releases[0]: ", "not in subscriptions"},
		{"status.addr", func(s string) string { return s + "status:\n  addr: nowhere\n" },
			"agent.yaml:17: status.addr: ", "host:port"},
		{"status.hosts[1]", func(s string) string { return s + "status:\n  hosts:\n    - box.local\n    - \"\"\n" },
			"agent.yaml:19: status.hosts[1]: ", "empty"},
		{"hooks.timeout", func(s string) string { return s + "hooks:\n  post_activate: true\n  timeout: -5s\n" },
			"agent.yaml:18: hooks.timeout: ", "positive"},
		{"hooks.timeout type", func(s string) string { return s + "hooks:\n  timeout: later\n" },
			"agent.yaml:17: ", "later"},
		{"rates.profiles[1].name", func(s string) string {
			return s + "rates:\n  profiles:\n    - {name: day, down: 1Mbit}\n    - {name: day, down: 2Mbit}\n"
		}, "agent.yaml:19: rates.profiles[1].name: ", "defined twice"},
		{"rates.profiles[0].down", func(s string) string { return s + "rates:\n  profiles:\n    - name: day\n      down: fast\n" },
			"agent.yaml:19: rates.profiles[0].down: ", ""},
		{"rates.schedule[0].name", func(s string) string {
			return s + "rates:\n  profiles: [{name: day}]\n  schedule:\n    - window: \"Mon-Fri 08:00-18:00\"\n      name: night\n"
		}, "agent.yaml:20: rates.schedule[0].name: ", "no rate profile named"},
		{"rates.default", func(s string) string { return s + "rates:\n  profiles: [{name: day}]\n  default: night\n" },
			"agent.yaml:18: rates.default: ", "not defined"},
		{"power.min_battery", func(s string) string { return s + "power:\n  metered_interfaces: [wwan0]\n  min_battery: 120\n" },
			"agent.yaml:18: power.min_battery: ", "outside 0-100"},
		{"power.metered_interfaces[1]", func(s string) string { return s + "power:\n  metered_interfaces:\n    - wwan0\n    - \"[bad\"\n" },
			"agent.yaml:19: power.metered_interfaces[1]: ", "not valid"},
		{"power.network_manager", func(s string) string {
			return s + "power:\n  metered_interfaces: [\"wwan*\"]\n  network_manager: sometimes\n"
		},
			"agent.yaml:18: power.network_manager: ", "want auto or off"},
		{"tracing.otlp_endpoint", func(s string) string { return s + "tracing:\n  otlp_endpoint: collector:4318\n" },
			"agent.yaml:17: tracing.otlp_endpoint: ", "not an http(s) URL"},
		{"report.url", func(s string) string { return s + "report:\n  url: ftp://origin/\n" },
			"agent.yaml:17: report.url: ", ""},
		{"report.interval", func(s string) string { return s + "report:\n  url: http://origin/\n  interval: 1ms\n" },
			"agent.yaml:18: report.interval: ", "at least 100ms"},
		{"cache_quota", func(s string) string { return s + "cache_quota: 20 lots\n" },
			"agent.yaml:16: cache_quota: ", "unknown unit"},
		{"mode", func(s string) string { return s + "mode: sideways\n" },
			"agent.yaml:16: mode: ", ""},
		{"timezone", func(s string) string { return s + "timezone: Mars/Olympus\n" },
			"agent.yaml:16: timezone: ", ""},
		{"refresh_interval", func(s string) string { return s + "refresh_interval: 10ms\n" },
			"agent.yaml:16: refresh_interval: ", "at least 1s"},
		{"unknown nested field", func(s string) string { return s + "report:\n  url: http://origin/\n  intervall: 5s\n" },
			"agent.yaml:18: ", "intervall not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(tt.edit(goodConfig)))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q\nwant prefix %q and %q", err, tt.prefix, tt.why)
			}
		})
	}
}

// TestConfigDefaultsBelongToSections: each section fills its own defaults.
func TestConfigDefaultsBelongToSections(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(goodConfig+"cache_quota: 20GiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Swarm.Locality != "gateway" || c.Swarm.MaxConns != 50 || c.Offload.Parallel != 4 ||
		c.Hooks.Timeout.Minutes() != 5 || c.Power.SysfsRoot != "/sys" || c.Report.Interval.Seconds() != 30 ||
		c.Status.Addr != "127.0.0.1:7071" || c.QuotaBytes() != 20<<30 || c.Power.NetworkManager != NetworkManagerAuto {
		t.Errorf("defaults: %+v", c)
	}
	c, err = ParseConfig("agent.yaml", []byte(goodConfig+"power:\n  metered_interfaces: [wwan*, ppp0]\n  network_manager: off\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Power.NetworkManager != NetworkManagerOff || len(c.Power.MeteredInterfaces) != 2 {
		t.Errorf("power: %+v", c.Power)
	}
}
