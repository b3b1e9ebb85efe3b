package seeder

import (
	"strings"
	"testing"
	"time"
)

const goodOriginConfig = `catalog: /srv/catalog
root: /etc/swarmship/root.json
listen: ":7070"
cache_dir: /var/lib/swarmship-origin
token_public_key: /etc/swarmship/token.pub
tracker:
  interval: 30s
  max_peers_per_address: 128
reports:
  history: 16
`

func TestParseOriginConfigGood(t *testing.T) {
	c, err := ParseConfig("origin.yaml", []byte(goodOriginConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Catalog != "/srv/catalog" || c.Root != "/etc/swarmship/root.json" || c.Tracker.Interval != 30*time.Second ||
		c.Tracker.MaxPeersPerAddress != 128 || c.Reports.History != 16 {
		t.Errorf("parsed %+v", c)
	}
	if c.Seed == nil || !*c.Seed || c.RefreshInterval != 30*time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestOriginConfigErrorsNameFileLineAndPath: every section of origin.yaml
// reports an invalid value as origin.yaml:line: full.field.path: why, and
// unknown fields are refused with their line.
func TestOriginConfigErrorsNameFileLineAndPath(t *testing.T) {
	// goodOriginConfig has 10 lines; appended sections start at line 11.
	tests := []struct {
		name   string
		edit   func(string) string
		prefix string // the error starts with it
		why    string // and contains it
	}{
		{"unknown top-level field", func(s string) string { return s + "lisen: :80\n" },
			"origin.yaml:11: ", "field lisen not found"},
		{"unknown tracker field", func(s string) string { return strings.Replace(s, "  interval: 30s", "  intervl: 30s", 1) },
			"origin.yaml:7: ", "field intervl not found"},
		{"listen", func(s string) string { return strings.Replace(s, `listen: ":7070"`, "listen: everywhere", 1) },
			"origin.yaml:3: listen: ", "host:port"},
		{"peer_port", func(s string) string { return s + "peer_port: 70000\n" },
			"origin.yaml:11: peer_port: ", "not a port"},
		{"refresh_interval type", func(s string) string { return s + "refresh_interval: often\n" },
			"origin.yaml:11: ", "often"},
		{"refresh_interval", func(s string) string { return s + "refresh_interval: 1ms\n" },
			"origin.yaml:11: refresh_interval: ", "at least 1s"},
		{"announce_url", func(s string) string { return s + "announce_url: udp://origin:6969/announce\n" },
			"origin.yaml:11: announce_url: ", "http(s)"},
		{"private_catalog", func(s string) string {
			return strings.Replace(s, "token_public_key: /etc/swarmship/token.pub\n", "private_catalog: true\n", 1)
		}, "origin.yaml:5: private_catalog: ", "needs token_public_key"},
		{"revocation_list", func(s string) string {
			return strings.Replace(s, "token_public_key: /etc/swarmship/token.pub\n", "revocation_list: /etc/revoked\n", 1)
		}, "origin.yaml:5: revocation_list: ", "needs token_public_key"},
		{"tracker.interval", func(s string) string { return strings.Replace(s, "interval: 30s", "interval: 10ms", 1) },
			"origin.yaml:7: tracker.interval: ", "at least 1s"},
		{"tracker.peer_ttl", func(s string) string { return strings.Replace(s, "interval: 30s", "interval: 30s\n  peer_ttl: 10s", 1) },
			"origin.yaml:8: tracker.peer_ttl: ", "shorter than the announce interval"},
		{"tracker.max_peers", func(s string) string { return strings.Replace(s, "interval: 30s", "max_peers: -1", 1) },
			"origin.yaml:7: tracker.max_peers: ", "negative"},
		{"tracker.max_total_peers type", func(s string) string {
			return strings.Replace(s, "max_peers_per_address: 128", "max_peers_per_address: many", 1)
		},
			"origin.yaml:8: ", "many"},
		{"reports.churn_ratio", func(s string) string { return s + "  churn_ratio: 3\n" },
			"origin.yaml:11: reports.churn_ratio: ", "at most 1"},
		{"reports.capacity_drop", func(s string) string { return s + "  capacity_drop: 1.5\n" },
			"origin.yaml:11: reports.capacity_drop: ", "at most 1"},
		{"reports.forget type", func(s string) string { return s + "  forget: never\n" },
			"origin.yaml:11: ", "never"},
		{"peer_tls.mode", func(s string) string { return s + "peer_tls:\n  mode: sometimes\n" },
			"origin.yaml:12: peer_tls.mode: ", "want off or required"},
		{"peer_tls.cert", func(s string) string { return s + "peer_tls:\n  mode: required\n  ca: /ca.pem\n  key: /k.pem\n" },
			"origin.yaml:11: peer_tls.cert: ", "required"},
		{"rendezvous.listen port", func(s string) string { return s + "rendezvous:\n  listen: \"198.51.100.1:0\"\n" },
			"origin.yaml:12: rendezvous.listen: ", "fixed port"},
		{"rendezvous.listen unspecified", func(s string) string { return s + "rendezvous:\n  listen: \"0.0.0.0:6890\"\n" },
			"origin.yaml:12: rendezvous.listen: ", "set advertise"},
		{"rendezvous.advertise alone", func(s string) string { return s + "rendezvous:\n  advertise: \"198.51.100.1:6890\"\n" },
			"origin.yaml:12: rendezvous.advertise: ", "needs listen"},
		{"tls.cert", func(s string) string { return s + "tls:\n  key: /o.key\n" },
			"origin.yaml:11: tls.cert: ", "go together"},
		{"tls.client_auth", func(s string) string {
			return s + "tls:\n  cert: /o.pem\n  key: /o.key\n  client_ca: /ca.pem\n  client_auth: maybe\n"
		},
			"origin.yaml:15: tls.client_auth: ", "want optional or required"},
		{"tls.client_ca", func(s string) string { return s + "tls:\n  client_ca: /ca.pem\n" },
			"origin.yaml:12: tls.client_ca: ", "needs cert and key"},
		{"empty", func(string) string { return "" }, "origin.yaml: ", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("origin.yaml", []byte(tt.edit(goodOriginConfig)), nil)
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q\nwant prefix %q and %q", err, tt.prefix, tt.why)
			}
		})
	}
}

// FuzzParseConfig: origin.yaml parsing never panics, and what it accepts
// validates again after defaults are applied a second time.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodOriginConfig))
	f.Add([]byte(goodOriginConfig + "tls: {cert: a, key: b, client_ca: c, client_auth: required}\n"))
	f.Add([]byte("tracker:\n  interval: 1s\n  peer_ttl: 1s\n  max_total_peers: -1\n"))
	f.Add([]byte("reports: {churn_ratio: 1, forget: 1h}\npeer_tls: {mode: required, ca: a, cert: b, key: c}\n"))
	f.Add([]byte("seed: [1]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("origin.yaml", b, nil)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseConfig returned a config with error %v", err)
			}
			return
		}
		if err := c.Finish(); err != nil {
			t.Fatalf("accepted config fails Finish: %v\n%s", err, b)
		}
	})
}

func TestRendezvousConfigAdvertised(t *testing.T) {
	c, err := ParseConfig("origin.yaml", []byte(goodOriginConfig+"rendezvous:\n  listen: \":6890\"\n  advertise: \"[::ffff:198.51.100.1]:6890\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The 4-byte form: the library matches hole-punch messages by it.
	if ap, err := c.Rendezvous.advertised(); err != nil || ap.String() != "198.51.100.1:6890" || !ap.Addr().Is4() {
		t.Errorf("advertised %v, %v", ap, err)
	}
	if c, err := ParseConfig("origin.yaml", []byte(goodOriginConfig), nil); err != nil || c.Rendezvous.On() {
		t.Errorf("rendezvous on by default (%v)", err)
	}
}
