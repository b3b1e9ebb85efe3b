package agent

import (
	"strings"
	"testing"
)

// fuzzFullConfig uses every section of the config, the way a site with
// schedules, power rules and reports would write it.
const fuzzFullConfig = `catalog:
  url: s3://releases/catalogs/acme
  root: /etc/swarmship/root.json
  s3:
    endpoint: https://s3.example.com
    region: eu-central-1
    access_key: AKIA
    secret_key: secret
tracker: https://origin.example.com:7070/announce?tenant=acme
site: ber1
region: eu-central
tenant: acme
token_file: /etc/swarmship/token
peer_tls: {mode: required, ca: /etc/swarmship/ca.pem, cert: /etc/swarmship/peer.pem, key: /etc/swarmship/peer.key}
cache_dir: /var/lib/swarmship
cache_quota: 20GiB
refresh_interval: 30s
timezone: Europe/Berlin
mode: download-only
subscriptions:
  - name: app
    channel: stable
    keep: 2
    windows: ["Mon-Fri 22:00-06:00", "Sat,Sun 00:00-24:00"]
    urgent: true
  - name: media
    version: 2.1.0+build.7
swarm: {listen_host: 10.0.0.5, listen_port: 6881, max_conns: 20, locality: site, order: rarest, lsd: on, lsd_secret_file: /etc/swarmship/lsd.secret}
offload: {startup_grace: 0s, orphan_timeout: 1m, parallel: 8}
status: {addr: "127.0.0.1:7071", hosts: [till-3.local]}
hooks: {post_activate: "systemctl reload app", timeout: 30s}
report: {url: "http://origin:7070/", interval: 1m, timeout: 5s, name: till-3}
rates:
  default: night
  profiles:
    - name: business
      down: 2Mbit
      up: 512kbit
      wan_down: 1Mbit
    - name: night
      down: unlimited
      up: 10MB/s
  schedule:
    - window: Mon-Fri 08:00-18:00
      name: business
power:
  metered_interfaces: ["wwan*"]
  min_battery: 20
  sysfs_root: /sys
`

// fuzzTestbedConfig is what scripts/testbed writes for each agent.
const fuzzTestbedConfig = `catalog:
  url: http://10.200.0.1:7070/
  root: /tmp/keys/root.json
tracker: http://10.200.0.1:7070/announce
site: branch-1
region: eu
tenant: testbed
cache_dir: /tmp/agents/b1a1
refresh_interval: 1s
status: {addr: "127.0.0.1:7071"}
swarm: {listen_host: "10.200.1.11", listen_port: 6881, dscp: CS1}
offload: {startup_grace: 1s}
rates: {profiles: [{name: wancap, wan_down: 10mbit, wan_up: 5mbit}], default: wancap}
subscriptions:
  - name: testbed
    channel: stable
`

// FuzzParseConfig checks that ParseConfig never panics on any file and
// that every config it accepts is valid as returned (defaults applied):
// an agent never runs on a config that Validate would refuse.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{goodConfig, fuzzFullConfig, fuzzTestbedConfig} {
		if _, err := ParseConfig("agent.yaml", []byte(s)); err != nil {
			f.Fatalf("seed config: %v", err)
		}
	}
	for _, s := range []string{
		goodConfig,
		fuzzFullConfig,
		fuzzTestbedConfig,
		"",
		"---\n",
		"~\n",
		"[]\n",
		"catalog: [\n",
		"catalog:\n\turl: x\n",                   // a tab
		goodConfig + "---\ncatalog: {url: /x}\n", // a second document
		goodConfig + "bogus: 1\n",                // unknown field
		goodConfig + "cache_dir: /elsewhere\n",   // duplicate key
		goodConfig + "swarm: {listen_port: 70000}\n",               // not a port
		goodConfig + "swarm: {locality: planet}\n",                 // bad locality
		goodConfig + "offload: {parallel: 0}\n",                    // replaced section
		goodConfig + "timezone: ../../etc/passwd\n",                // zone path
		goodConfig + "cache_quota: 1e300TiB\n",                     // absurd quota
		goodConfig + "refresh_interval: -1s\n",                     // negative
		goodConfig + "mode: offline\n",                             // offline over http
		goodConfig + "report: {url: 'http://o/', interval: 1ms}\n", // too frequent
		goodConfig + "rates: {default: nope}\n",                    // unknown profile
		goodConfig + "rates: {schedule: [{window: 'Xyz 25:00-26:00', name: a}]}\n",
		goodConfig + "power: {min_battery: 101}\n",
		goodConfig + "token: abc\ntoken_file: /t\n",
		strings.Replace(goodConfig, "http://origin:7070/", "ftp://origin/", 1),
		strings.Replace(goodConfig, "http://origin:7070/", "C:\\\\catalog", 1),
		strings.Replace(goodConfig, "name: media", "name: ../media", 1),
		strings.Replace(goodConfig, "keep: 3", "keep: -1", 1),
		strings.Replace(goodConfig, "keep: 3", "keep: 99999999999999999999", 1),
		strings.Replace(goodConfig, "startup_grace: 2s", "startup_grace: 9999999999h", 1),
		// anchors and aliases
		"a: &a [x, x, x]\nb: &b [*a, *a, *a]\ncatalog: {url: *b}\n",
		"catalog: &c {url: /c, root: /r}\nsubscriptions: [{name: *c}]\n",
		"catalog: !!binary aGVsbG8=\n",
		"? [complex, key]\n: value\n",
		"subscriptions: [{name: a}, {name: a}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("agent.yaml", b)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseConfig returned a config with error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v\n%s", err, b)
		}
		// Applying defaults again changes nothing that Validate refuses.
		if err := c.Finish(); err != nil {
			t.Fatalf("accepted config fails Finish: %v\n%s", err, b)
		}
		// What the agent derives from the config must not fail either.
		_ = c.Location()
		if c.QuotaBytes() < 0 {
			t.Fatalf("accepted cache_quota %d", c.CacheQuota)
		}
	})
}
