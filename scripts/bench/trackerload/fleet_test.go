//go:build linux

package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/seeder/tracker"
)

// TestFleetSmall is scripts/bench/fleet in small: 200 agents in 20 sites
// and 4 swarms announce with gateway locality over real HTTP to two
// trackers, each agent once a second; no announce may fail, and every
// (swarm, site) must have exactly one gateway.
func TestFleetSmall(t *testing.T) {
	var urls []string
	for range 2 {
		tr := tracker.New(tracker.Config{TrustIPParam: true, MaxPeersPerAddress: -1, MaxSwarmsPerAddress: -1})
		srv := httptest.NewServer(tr)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL+"/announce")
	}
	res, err := runLoad(options{
		urls: strings.Join(urls, ","), route: "swarm", tenant: "acme", locality: "gateway",
		agents: 200, swarms: 4, sites: 20, regions: 2, numWant: 50, seeders: 0.5,
		concurrency: 2, loops: 1, depth: 1, ipParam: true, checkGateways: true,
		interval: time.Second, duration: 2 * time.Second, warmup: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Announces == 0 || res.Errors != 0 || res.Failures != 0 {
		t.Fatalf("%d announces, %d errors, %d refusals (first: %s)", res.Announces, res.Errors, res.Failures, res.FirstError)
	}
	g := res.Gateways
	if g.Agents != 200 || g.SiteSwarms != 20 || g.Violations != 0 || g.Disagreements != 0 || g.Errors != 0 {
		t.Fatalf("gateway check: %+v", *g)
	}
}
