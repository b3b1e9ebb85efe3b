//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// gatewayCheck is the result of -check-gateways: every (swarm, site) with
// live agents must have exactly one gateway, and every tracker URL must
// name the same ones (several origins sharing one store).
type gatewayCheck struct {
	Swarms        int    `json:"swarms"`
	SiteSwarms    int    `json:"site_swarms"` // (swarm, site) pairs with agents
	Agents        int    `json:"agents"`      // agents listed, summed over swarms (first URL)
	Violations    int    `json:"violations"`  // pairs without exactly one gateway
	Disagreements int    `json:"disagreements"`
	Errors        int    `json:"errors"`
	First         string `json:"first_problem,omitempty"`
}

func (g *gatewayCheck) problem(counter *int, format string, args ...any) {
	*counter++
	if g.First == "" {
		g.First = fmt.Sprintf(format, args...)
	}
}

// swarmView is the part of the tracker's swarm view (internal/report) the
// check reads.
type swarmView struct {
	Agents []struct {
		PeerID  string `json:"peer_id"`
		Site    string `json:"site"`
		Region  string `json:"region"`
		Gateway bool   `json:"gateway"`
	} `json:"agents"`
	Truncated bool `json:"truncated"`
}

// checkGateways reads every swarm's view from every target; with
// bySwarm (-route swarm) only from the one target that swarm's agents
// announce to.
func checkGateways(all []*target, hashes [][20]byte, tenant, token string, bySwarm bool) *gatewayCheck {
	g := &gatewayCheck{Swarms: len(hashes)}
	client := &http.Client{Timeout: 10 * time.Second}
	for s, h := range hashes {
		targets := all
		if bySwarm {
			targets = all[s%len(all) : s%len(all)+1]
		}
		// A store shared through copies may lag its writers briefly:
		// retry a swarm whose views disagree before counting it.
		var views [][]string
		var ok bool
		for try := 0; try < 3 && !ok; try++ {
			if try > 0 {
				time.Sleep(time.Second)
			}
			views, ok = nil, true
			for ti, t := range targets {
				gws, n, err := gatewaysOf(client, t.url, h, tenant, token, g, ti == 0 && try == 0)
				if err != nil {
					g.problem(&g.Errors, "%s: %v", t.url, err)
					ok = true // an error is counted, not retried
					views = nil
					break
				}
				if ti == 0 && try == 0 {
					g.Agents += n
				}
				views = append(views, gws)
				if ti > 0 && !slices.Equal(views[0], gws) {
					ok = false
				}
			}
		}
		if !ok {
			g.problem(&g.Disagreements, "swarm %x: %s and %s name different gateways", h[:6], targets[0].url, targets[len(targets)-1].url)
		}
	}
	return g
}

// gatewaysOf reads one swarm's view at one tracker and returns its gateways
// as sorted "site/region peer" strings and the number of agents; with
// count it also checks and counts the one-gateway rule.
func gatewaysOf(client *http.Client, announceURL string, h [20]byte, tenant, token string, g *gatewayCheck, count bool) ([]string, int, error) {
	q := url.Values{"info_hash": {string(h[:])}, "tenant": {tenant}}
	if token != "" {
		q.Set("token", token)
	}
	u := strings.TrimSuffix(announceURL, "announce") + "swarm?" + q.Encode()
	resp, err := client.Get(u)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("swarm view: HTTP %d", resp.StatusCode)
	}
	var v swarmView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("swarm view: %w", err)
	}
	if v.Truncated {
		return nil, 0, fmt.Errorf("swarm view of %x truncated", h[:6])
	}
	perSite := map[string]int{}
	var gws []string
	for _, a := range v.Agents {
		k := a.Site + "/" + a.Region
		perSite[k] += 0
		if a.Gateway {
			perSite[k]++
			gws = append(gws, k+" "+a.PeerID)
		}
	}
	if count {
		g.SiteSwarms += len(perSite)
		for k, n := range perSite {
			if n != 1 {
				g.problem(&g.Violations, "swarm %x site %s: %d gateways", h[:6], k, n)
			}
		}
	}
	slices.Sort(gws)
	return gws, len(v.Agents), nil
}
