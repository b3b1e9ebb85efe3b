package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/dht"
	"github.com/swarmship/swarmship/internal/lsd"
	"github.com/swarmship/swarmship/internal/relay"
)

// Status is what the local status API and `swarmship status` show.
type Status struct {
	Site          string               `json:"site,omitempty"`
	Region        string               `json:"region,omitempty"`
	Tenant        string               `json:"tenant,omitempty"`
	PeerPort      int                  `json:"peer_port"`
	Certificates  []CertificateStatus  `json:"certificates,omitempty"`
	Catalog       CatalogStatus        `json:"catalog"`
	Policy        PolicyStatus         `json:"policy"`
	Subscriptions []SubscriptionStatus `json:"subscriptions"`
	Releases      []ReleaseStatus      `json:"releases"`
	// Sources are the catalog mirrors, trackers and offload sources with
	// their health and why one is skipped.
	Sources []SourceStatus `json:"sources,omitempty"`
	// Recovered says what was done at start about damaged state: corrupt
	// databases moved aside, releases re-adopted or removed.
	Recovered []Recovery `json:"recovered,omitempty"`
	// LSD counts local service discovery's messages and peers (swarm.lsd).
	LSD *lsd.Stats `json:"lsd,omitempty"`
	// DHT counts the tenant DHT's datagrams, nodes and peers (swarm.dht).
	DHT *dht.Stats `json:"dht,omitempty"`
	// Relay is the relay connection of a relay-mode agent (swarm.relay)
	// and the bytes it carried.
	Relay *relay.ClientStatus `json:"relay,omitempty"`
	// SelfUpdate is the running binary's version and how updating it
	// went (self_update).
	SelfUpdate *SelfUpdateStatus `json:"self_update,omitempty"`
	// Signage is what each screen plays and the screens at risk
	// (signage.schedule).
	Signage *SignageStatus `json:"signage,omitempty"`
}

// CatalogStatus is the health of the catalog feed.
type CatalogStatus struct {
	URL         string    `json:"url"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	Error       string    `json:"error,omitempty"`
	// Watch is the catalog change stream's state (catalog.watch).
	Watch string `json:"watch,omitempty"`
}

// ReleaseStatus is a release record with live figures.
type ReleaseStatus struct {
	ReleaseState
	Peers     int      `json:"peers"`
	PeerAddrs []string `json:"peer_addrs,omitempty"` // remote addresses of connected peers
	// PeerSources counts the connected peers by where they came from:
	// tracker, lsd (the LAN), incoming, pex, ...
	PeerSources map[string]int `json:"peer_sources,omitempty"`
	// Roster is how many downloaders (us included) the release's roster
	// on the DHT lists, while the agent is on it (agent/dht.go dhtRoster).
	Roster int `json:"roster,omitempty"`
	// Deadline is the delivery against a deliver-by time, while downloading.
	Deadline *DeadlineStatus `json:"deadline,omitempty"`
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	recs, _ := a.state.All()
	wan := a.wanStatus()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Site: a.cfg.Site, Region: a.cfg.Region, Tenant: a.cfg.Tenant, PeerPort: a.bt.LocalPort(),
		Certificates:  a.certificateStatus(),
		Catalog:       CatalogStatus{URL: a.store.String(), LastRefresh: a.lastRefresh},
		Subscriptions: append([]SubscriptionStatus(nil), a.subs...),
		Releases:      []ReleaseStatus{},
		Policy:        a.pol.status,
		Recovered:     append([]Recovery(nil), a.recoveries...),
		Sources:       a.Sources(),
		LSD:           a.LSDStats(),
		DHT:           a.DHTStats(),
		Relay:         a.RelayStatus(),
		SelfUpdate:    a.selfUpdateStatus(),
		Signage:       a.signageStatus(),
	}
	st.Policy.WAN = &wan
	if a.catalogErr != nil {
		st.Catalog.Error = a.catalogErr.Error()
	}
	st.Catalog.Watch = a.watch.State()
	for _, r := range recs {
		rs := ReleaseStatus{ReleaseState: *r, Deadline: a.deadlineStatusLocked(r.Key())}
		if d := a.downloads[r.Key()]; d != nil {
			rs.Downloaded, rs.Uploaded = d.bytes()
			rs.Reused = d.reused.Load()
			// Pieces of a media release hold pad bytes that are not
			// payload: never report more than the release's size.
			rs.Completed = min(d.t.BytesCompleted(), max(r.Size, 0))
			for _, pc := range d.t.PeerConns() {
				rs.PeerAddrs = append(rs.PeerAddrs, pc.RemoteAddr.String())
				if rs.PeerSources == nil {
					rs.PeerSources = map[string]int{}
				}
				rs.PeerSources[peerSourceName(pc.Discovery)]++
			}
			rs.Peers = len(rs.PeerAddrs)
			if d.off != nil && d.off.roster != nil {
				if _, members, ok := d.off.roster(); ok {
					rs.Roster = len(members) + 1
				}
			}
			// The state database may be on the full disk too: the live
			// reason wins over what could be saved.
			if fault := d.writeFault(); fault != "" {
				rs.Reason = fault
			}
		}
		st.Releases = append(st.Releases, rs)
	}
	return st
}

// Handler serves /status (JSON) and /metrics (Prometheus).
func (a *Agent) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(agentCollector{a}, reportCollector{a}, sourceCollector{a}, watchCollector{a}, relayCollector{a}, mediaCollector{a})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return hostGuard(a.cfg.Status.Hosts, mux)
}

// hostGuard answers only requests whose Host header names this machine's
// loopback (or one of the configured names). A browser visiting a hostile
// page whose DNS name then rebinds to 127.0.0.1 sends that page's name as
// Host: refusing it keeps the page from reading the API.
func hostGuard(names []string, next http.Handler) http.Handler {
	allowed := map[string]bool{"localhost": true}
	for _, n := range names {
		allowed[strings.ToLower(strings.TrimSuffix(n, "."))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "."))
		ip := net.ParseIP(host)
		if !allowed[host] && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "forbidden: unknown Host (the status API answers to localhost, loopback addresses and status.hosts)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// startStatus serves the status API on the configured loopback address.
func (a *Agent) startStatus() error {
	if a.cfg.Status.Addr == "off" || a.statusSrv != nil {
		return nil
	}
	host, _, err := net.SplitHostPort(a.cfg.Status.Addr)
	if err != nil {
		return fmt.Errorf("status.addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("status.addr %s: the status API listens on loopback only", a.cfg.Status.Addr)
	}
	ln, err := net.Listen("tcp", a.cfg.Status.Addr)
	if err != nil {
		return fmt.Errorf("status API: %w", err)
	}
	a.statusLn = ln
	a.statusSrv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go a.statusSrv.Serve(ln)
	a.log.Info("status API listening", "addr", ln.Addr().String())
	return nil
}

// StatusAddr is where the status API listens, once Run has started it.
func (a *Agent) StatusAddr() string {
	if a.statusLn == nil {
		return ""
	}
	return a.statusLn.Addr().String()
}

var (
	descBytes    = prometheus.NewDesc("swarmship_agent_downloaded_bytes_total", "Payload bytes downloaded, by source (peer, origin, webseed).", []string{"source"}, nil)
	descUpload   = prometheus.NewDesc("swarmship_agent_uploaded_bytes_total", "Payload bytes uploaded to peers.", nil, nil)
	descReused   = prometheus.NewDesc("swarmship_agent_reused_bytes_total", "Payload bytes taken from releases already held instead of downloaded (delta releases).", nil, nil)
	descReleases = prometheus.NewDesc("swarmship_agent_releases", "Releases in the agent's cache, by state.", []string{"state"}, nil)
	descCatErr   = prometheus.NewDesc("swarmship_agent_catalog_errors_total", "Failed catalog refreshes.", nil, nil)
	descCatAge   = prometheus.NewDesc("swarmship_agent_catalog_last_refresh_timestamp_seconds", "Unix time of the last successful catalog refresh.", nil, nil)
	descPeers    = prometheus.NewDesc("swarmship_agent_peers", "Connected peers over all releases.", nil, nil)
	descCache    = prometheus.NewDesc("swarmship_agent_cache_bytes", "Bytes of releases in the cache.", nil, nil)
	descQuota    = prometheus.NewDesc("swarmship_agent_cache_quota_bytes", "Cache quota in bytes (0: none).", nil, nil)
	descEvict    = prometheus.NewDesc("swarmship_agent_gc_evictions_total", "Releases evicted from the cache.", nil, nil)
	descRate     = prometheus.NewDesc("swarmship_agent_rate_limit_bytes_per_second", "Rate limit in force by direction (0: unlimited).", []string{"direction", "profile"}, nil)
	descHashFail = prometheus.NewDesc("swarmship_agent_origin_piece_hash_failures_total", "Pieces fetched from the origin that failed their hash check (each backs off: 5 s, x4, at most 15 min).", nil, nil)
	descUpload0  = prometheus.NewDesc("swarmship_agent_upload_allowed", "1 when the policy (mode, metered, battery) allows uploading.", nil, nil)
)

// agentCollector reads the agent's live state at scrape time.
type agentCollector struct{ a *Agent }

func (c agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBytes, descUpload, descReused, descReleases, descCatErr, descCatAge, descPeers, descCache, descQuota, descEvict, descRate, descUpload0, descHashFail} {
		ch <- d
	}
}

func (c agentCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Status()
	var b Bytes
	var up, reused int64
	peers := 0
	byState := map[Phase]int{PhaseQueued: 0, PhaseDownloading: 0, PhaseVerified: 0, PhaseActive: 0, PhaseFailed: 0}
	for _, r := range st.Releases {
		b.Peer += r.Downloaded.Peer
		b.Origin += r.Downloaded.Origin
		b.WebSeed += r.Downloaded.WebSeed
		up += r.Uploaded
		reused += r.Reused
		peers += r.Peers
		byState[r.Phase]++
	}
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b.Peer), "peer")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b.Origin), "origin")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b.WebSeed), "webseed")
	ch <- prometheus.MustNewConstMetric(descUpload, prometheus.CounterValue, float64(up))
	ch <- prometheus.MustNewConstMetric(descReused, prometheus.CounterValue, float64(reused))
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(descReleases, prometheus.GaugeValue, float64(n), string(s))
	}
	c.a.mu.Lock()
	errs := c.a.refreshErrs
	c.a.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCatErr, prometheus.CounterValue, float64(errs))
	var last float64
	if !st.Catalog.LastRefresh.IsZero() {
		last = float64(st.Catalog.LastRefresh.Unix())
	}
	ch <- prometheus.MustNewConstMetric(descCatAge, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(peers))
	c.a.mu.Lock()
	pol, evictions := c.a.pol.status, c.a.evictions
	downLim, upLim := c.a.down.Limit(), c.a.up.Limit()
	c.a.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCache, prometheus.GaugeValue, float64(pol.CachedBytes))
	ch <- prometheus.MustNewConstMetric(descQuota, prometheus.GaugeValue, float64(pol.QuotaBytes))
	ch <- prometheus.MustNewConstMetric(descEvict, prometheus.CounterValue, float64(evictions))
	ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, limitValue(downLim), "down", pol.Profile)
	ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, limitValue(upLim), "up", pol.Profile)
	allowed := 0.0
	if pol.Upload {
		allowed = 1
	}
	ch <- prometheus.MustNewConstMetric(descUpload0, prometheus.GaugeValue, allowed)
	ch <- prometheus.MustNewConstMetric(descHashFail, prometheus.CounterValue, float64(c.a.originHashFails.Load()))
}

func limitValue(l rate.Limit) float64 {
	if l == rate.Inf || l == btclient.Unmetered {
		return 0
	}
	return float64(l)
}
