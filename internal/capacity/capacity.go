// Package capacity is the model a release engineer runs before a rollout
// (swarmship plan): from the sites, their WAN links, the origin's uplink and
// the release size it predicts the origin's egress, each site's WAN bytes,
// the completion time (a fluid lower bound and an expected time), the load
// on the tracker and the catalog, and the origin store's memory. Pure:
// numbers in, numbers out; docs/capacity.md gives the formulas and where
// each constant was measured.
package capacity

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Calibration constants; docs/capacity.md says where each was measured.
const (
	// DefaultEfficiency is the fraction of the fluid lower bound the
	// swarm achieves: 3 x 4 agents, 256 MiB, branch testbed.
	DefaultEfficiency = 0.72
	// OriginCopies is the origin's payload egress per swarm, in copies of
	// the release: offload shards each piece to one agent (testbed: 1.016).
	OriginCopies = 1.0
	// WireOverhead is what TCP/IP headers and the protocol add on a link
	// to the payload bytes (testbed: interface counters against /metrics).
	WireOverhead = 1.04
	// PeerEntryBytes is the origin store's memory per peer entry (one
	// agent in one swarm) and ReportBytes per stored agent report.
	PeerEntryBytes = 100
	ReportBytes    = 6500
	// DefaultStartup is the time before the swarm runs at its rate: agents
	// wait offload.startup_grace (3 s) for peers before fetching from the
	// origin while their connections form. It matters for small releases.
	DefaultStartup = 3 * time.Second
	// CatalogFetchesPerChange is how many requests one agent makes when
	// the catalog changed: timestamp, snapshot, targets, manifest, torrent.
	CatalogFetchesPerChange = 5
)

// Defaults of the agents and the origin, as their configs set them.
const (
	DefaultAnnounceInterval = 60 * time.Second // tracker interval
	DefaultRefreshInterval  = time.Minute      // agent refresh_interval
	DefaultReportInterval   = 30 * time.Second // agent report.interval
)

// Site is one branch, store or office: agents behind one WAN link.
type Site struct {
	Name   string
	Agents int
	// Down and Up are the WAN link's rates in bytes per second.
	Down, Up float64
}

// Input describes a rollout. Rates are bytes per second.
type Input struct {
	Sites    []Site
	Size     int64   // release payload in bytes
	OriginUp float64 // the origin's uplink
	// Window is how long a download window lasts (0: no window).
	Window time.Duration
	// Releases is how many swarms run at once (default 1).
	Releases int
	// Efficiency is the fraction of the lower bound achieved (default
	// DefaultEfficiency).
	Efficiency float64
	// Startup is added to the expected time (default DefaultStartup).
	Startup time.Duration
	// Intervals of the agents' periodic requests (defaults above).
	AnnounceInterval, RefreshInterval, ReportInterval time.Duration
}

// WithDefaults fills the unset optional fields.
func (in Input) WithDefaults() Input {
	if in.Releases == 0 {
		in.Releases = 1
	}
	if in.Efficiency == 0 {
		in.Efficiency = DefaultEfficiency
	}
	if in.Startup == 0 {
		in.Startup = DefaultStartup
	}
	if in.AnnounceInterval == 0 {
		in.AnnounceInterval = DefaultAnnounceInterval
	}
	if in.RefreshInterval == 0 {
		in.RefreshInterval = DefaultRefreshInterval
	}
	if in.ReportInterval == 0 {
		in.ReportInterval = DefaultReportInterval
	}
	return in
}

// Validate refuses inputs the model cannot answer.
func (in Input) Validate() error {
	if len(in.Sites) == 0 {
		return errors.New("no sites")
	}
	for i, s := range in.Sites {
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("sites[%d]", i)
		}
		if s.Agents < 1 {
			return fmt.Errorf("site %s: agents must be at least 1", name)
		}
		if !(s.Down > 0) || !(s.Up > 0) || math.IsInf(s.Down, 0) || math.IsInf(s.Up, 0) {
			return fmt.Errorf("site %s: WAN down and up must be positive rates", name)
		}
	}
	if in.Size <= 0 {
		return errors.New("release size must be positive")
	}
	if !(in.OriginUp > 0) || math.IsInf(in.OriginUp, 0) {
		return errors.New("origin uplink must be a positive rate")
	}
	if in.Window < 0 || in.Releases < 0 {
		return errors.New("window and releases must not be negative")
	}
	if !(in.Efficiency > 0 && in.Efficiency <= 1) {
		return errors.New("efficiency must be in (0, 1]")
	}
	if in.Startup < 0 || in.AnnounceInterval < 0 || in.RefreshInterval < 0 || in.ReportInterval < 0 {
		return errors.New("startup and intervals must not be negative")
	}
	return nil
}

// SitePlan is the model's answer for one site.
type SitePlan struct {
	Name   string `json:"name"`
	Agents int    `json:"agents"`
	// FromOrigin is the payload its agents fetch from the origin (their
	// shards), FromSites what enters from other sites; WANIn their sum,
	// WANOut what the site sends to other sites. Payload bytes.
	FromOrigin float64 `json:"from_origin_bytes"`
	FromSites  float64 `json:"from_sites_bytes"`
	WANIn      float64 `json:"wan_in_bytes"`
	WANOut     float64 `json:"wan_out_bytes"`
	// Seconds is this site's own bound: its downlink carries WANIn, its
	// uplink WANOut.
	Seconds float64 `json:"seconds"`
}

// Plan is the model's answer for a rollout.
type Plan struct {
	Agents int `json:"agents"`
	// OriginEgress is the payload the origin sends (bytes), OriginWire
	// the same with protocol overhead; HTTPOnlyEgress what it would send
	// if every agent downloaded over HTTP.
	OriginEgress   float64    `json:"origin_egress_bytes"`
	OriginWire     float64    `json:"origin_wire_bytes"`
	HTTPOnlyEgress float64    `json:"http_only_egress_bytes"`
	Sites          []SitePlan `json:"sites"`
	// LowerBound is the fluid lower bound on every agent holding the
	// release (seconds), Terms its named parts; Expected is Startup +
	// LowerBound / Efficiency; HTTPOnly the bound without P2P.
	LowerBound float64            `json:"lower_bound_seconds"`
	Terms      map[string]float64 `json:"lower_bound_terms_seconds"`
	Efficiency float64            `json:"efficiency"`
	Startup    float64            `json:"startup_seconds"`
	Expected   float64            `json:"expected_seconds"`
	HTTPOnly   float64            `json:"http_only_seconds"`
	// Windows is how many download windows the expected time spans
	// (0 without a window); FitsWindow whether it is one.
	Windows    int  `json:"windows,omitempty"`
	FitsWindow bool `json:"fits_window,omitempty"`
	// Request rates, per second: tracker announces in steady state; the
	// swarm-view polls of downloading agents in the first seconds of a
	// rollout (every agent each second) and later; catalog refreshes (and
	// the requests when the catalog changed, spread over one refresh
	// interval); status reports.
	AnnouncesPerSec      float64 `json:"tracker_announces_per_second"`
	SwarmPollsPeakPerSec float64 `json:"swarm_polls_peak_per_second"`
	SwarmPollsPerSec     float64 `json:"swarm_polls_per_second"`
	CatalogPerSec        float64 `json:"catalog_requests_per_second"`
	CatalogChangePerSec  float64 `json:"catalog_requests_per_second_after_change"`
	ReportsPerSec        float64 `json:"reports_per_second"`
	// Store memory in bytes: peer entries and agent reports.
	PeerEntryBytes float64 `json:"store_peer_entry_bytes"`
	ReportBytes    float64 `json:"store_report_bytes"`
	StoreBytes     float64 `json:"store_bytes"`
}

// Swarm-view polling of a downloading agent (agent/swarmview.go): every
// second at first, every 10 s later.
const (
	swarmPollPeak   = time.Second
	swarmPollSteady = 10 * time.Second
)

// Model computes the plan for in (defaults applied, then validated).
func Model(in Input) (Plan, error) {
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return Plan{}, err
	}
	F := float64(in.Size)
	B := len(in.Sites)
	var p Plan
	var sumUp, worstDown float64
	worstDownAgents := 0.0
	for _, s := range in.Sites {
		p.Agents += s.Agents
		sumUp += s.Up
		worstDown = math.Max(worstDown, F/s.Down)
		worstDownAgents = math.Max(worstDownAgents, float64(s.Agents)*F/s.Down)
	}
	N := float64(p.Agents)
	E := OriginCopies
	p.OriginEgress = E * F
	p.OriginWire = p.OriginEgress * WireOverhead
	p.HTTPOnlyEgress = N * F

	// Shards are even per site (agent/shardplan.go): a site fetches 1/B of
	// the origin's copy, whatever its number of agents, and sends it to
	// each other site once (through its gateway); everything else enters
	// from the other sites.
	p.Terms = map[string]float64{
		"origin uplink (E*F/u_origin)":       E * F / in.OriginUp,
		"slowest downlink (F/d_site)":        worstDown,
		"all uplinks (B*F/(u_origin+sum u))": float64(B) * F / (in.OriginUp + sumUpIfShared(B, sumUp)),
	}
	var siteWorst float64
	for _, s := range in.Sites {
		share := 1 / float64(B)
		sp := SitePlan{Name: s.Name, Agents: s.Agents}
		sp.FromOrigin = E * F * share
		sp.FromSites = math.Max(0, F-sp.FromOrigin)
		sp.WANIn = sp.FromOrigin + sp.FromSites
		sp.WANOut = float64(B-1) * sp.FromOrigin
		sp.Seconds = math.Max(sp.WANIn/s.Down, sp.WANOut/s.Up)
		siteWorst = math.Max(siteWorst, sp.Seconds)
		p.Sites = append(p.Sites, sp)
	}
	if B > 1 {
		p.Terms["copies over uplinks ((B-E)*F/sum u)"] = math.Max(0, float64(B)-E) * F / sumUp
		p.Terms["busiest site (shard out over its uplink)"] = siteWorst
	}
	for _, v := range p.Terms {
		p.LowerBound = math.Max(p.LowerBound, v)
	}
	p.Efficiency = in.Efficiency
	p.Startup = in.Startup.Seconds()
	p.Expected = p.Startup + p.LowerBound/in.Efficiency
	p.HTTPOnly = math.Max(N*F/in.OriginUp, worstDownAgents)
	if in.Window > 0 {
		p.Windows = int(math.Ceil(p.Expected / in.Window.Seconds()))
		p.FitsWindow = p.Windows <= 1
	}

	swarms := N * float64(in.Releases)
	p.AnnouncesPerSec = swarms / in.AnnounceInterval.Seconds()
	p.SwarmPollsPeakPerSec = swarms / swarmPollPeak.Seconds()
	p.SwarmPollsPerSec = swarms / swarmPollSteady.Seconds()
	p.CatalogPerSec = N / in.RefreshInterval.Seconds()
	p.CatalogChangePerSec = N * CatalogFetchesPerChange / in.RefreshInterval.Seconds()
	if in.ReportInterval > 0 {
		p.ReportsPerSec = N / in.ReportInterval.Seconds()
	}
	p.PeerEntryBytes = swarms * PeerEntryBytes
	p.ReportBytes = N * ReportBytes
	p.StoreBytes = p.PeerEntryBytes + p.ReportBytes
	return p, nil
}

// sumUpIfShared is what branch uplinks add to the origin's: nothing with
// one site, whose agents only share inside it.
func sumUpIfShared(sites int, sumUp float64) float64 {
	if sites < 2 {
		return 0
	}
	return sumUp
}
