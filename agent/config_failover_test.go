package agent

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const failoverConfig = `catalog:
  urls:
    - http://origin-a:7070/
    - http://origin-b:7070/
    - s3://releases/catalog
  root: /etc/swarmship/root.json
trackers:
  - [http://origin-a:7070/announce, http://origin-b:7070/announce]
  - [http://backup:7070/announce]
cache_dir: /var/lib/swarmship
subscriptions:
  - name: app
offload:
  sources: [http://origin-a:7070/, s3://releases/catalog]
failover:
  timeout: 5s
  backoff_base: 2s
  backoff_max: 1m
`

func TestParseConfigFailoverLists(t *testing.T) {
	c, err := ParseConfig("agent.yaml", []byte(failoverConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Catalog.Mirrors(); len(got) != 3 || got[2] != "s3://releases/catalog" {
		t.Errorf("mirrors %v", got)
	}
	want := [][]string{{"http://origin-a:7070/announce", "http://origin-b:7070/announce"}, {"http://backup:7070/announce"}}
	if got := c.TrackerTiers(); !reflect.DeepEqual(got, want) {
		t.Errorf("tiers %v", got)
	}
	if len(c.Offload.Sources) != 2 || c.Failover.Timeout != 5*time.Second || c.Failover.BackoffMax != time.Minute {
		t.Errorf("offload %v, failover %+v", c.Offload.Sources, c.Failover)
	}
	// The single keys keep working as one-element lists, with defaults.
	g, err := ParseConfig("agent.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if m := g.Catalog.Mirrors(); len(m) != 1 || m[0] != "http://origin:7070/" {
		t.Errorf("single url: %v", m)
	}
	if tt := g.TrackerTiers(); len(tt) != 1 || tt[0][0] != "http://origin:7070/announce" {
		t.Errorf("single tracker: %v", tt)
	}
	if g.Failover.Timeout != 10*time.Second || g.Failover.BackoffBase != 5*time.Second || g.Failover.BackoffMax != 5*time.Minute {
		t.Errorf("failover defaults %+v", g.Failover)
	}
}

func TestParseConfigFailoverErrors(t *testing.T) {
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"url and urls", "  urls:\n", "  url: http://x/\n  urls:\n", "catalog.urls: give url or urls"},
		{"mirror twice", "    - s3://releases/catalog\n", "    - http://origin-a:7070/\n", "catalog.urls[2]: http://origin-a:7070/ is listed twice"},
		{"bad mirror", "    - s3://releases/catalog\n", "    - gopher://x/\n", "catalog.urls[2]: unknown scheme"},
		{"tracker and trackers", "cache_dir:", "tracker: http://x/announce\ncache_dir:", "trackers: give tracker or trackers"},
		{"empty tier", "  - [http://backup:7070/announce]\n", "  - []\n", "trackers[1]: is an empty tier"},
		{"bad tracker", "http://backup:7070/announce", "udp://backup:7070", "trackers[1][0]:"},
		{"bad source", "sources: [http://origin-a:7070/,", "sources: [ftp://x/,", "offload.sources[0]: unknown scheme"},
		{"timeout", "timeout: 5s", "timeout: 1ms", "failover.timeout: must be at least 100ms"},
		{"backoff", "backoff_max: 1m", "backoff_max: 1s", "failover.backoff_max: must be at least backoff_base"},
		{"unknown key", "  timeout: 5s\n", "  timout: 5s\n", "timout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(failoverConfig, c.old) {
				t.Fatalf("test: %q not in the config", c.old)
			}
			_, err := ParseConfig("agent.yaml", []byte(strings.Replace(failoverConfig, c.old, c.new, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
