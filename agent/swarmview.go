package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/failover"
	"github.com/swarmship/swarmship/internal/report"
)

// swarmWatcher keeps the tracker's list of a swarm's agents fresh while a
// download runs. The offloader divides the origin's work over that list:
// with locality keeping sites apart, an agent is connected only to its own
// site (or, as the site's gateway, to other gateways), so its connections
// alone would give every site its own copy from the origin.
type swarmWatcher struct {
	// urls[i] is tracker i's …/swarm?info_hash=…&<identity>, "" for a
	// tracker that is not a swarmship tracker; trackers has their health.
	urls         []string
	trackers     *trackerList
	client       *http.Client
	log          *slog.Logger
	site, region string // our own; see downloaders

	// self and connected make each request a report: our peer ID and the
	// agents we hold connections with. The tracker then answers from our
	// point of view (trusted members, gateways), which fake announcers
	// cannot enter (see seeder/tracker/trust.go). connected nil: no report.
	self      [20]byte
	connected func() [][20]byte

	// bridge, if set, runs after every successful fetch (see bridgeSites).
	bridge func(members map[[20]byte]report.SwarmMember, personal bool)

	mu       sync.Mutex
	members  map[[20]byte]report.SwarmMember
	personal bool // members came with the tracker's trust marks
	fetched  time.Time
}

// newSwarmWatcher watches through one tracker (see newTrackersWatcher).
func newSwarmWatcher(announceURL, site, region string, infoHash [20]byte, client *http.Client, log *slog.Logger) *swarmWatcher {
	one := newTrackerList([][]string{{announceURL}}, failover.DefaultPolicy)
	return newTrackersWatcher(one, func(u string) string { return u }, site, region, infoHash, client, log)
}

// newTrackersWatcher asks trackers (announce URLs made by announce) in
// their BEP 12 order. It returns nil when no tracker is a swarmship
// tracker (its path must end in /announce).
func newTrackersWatcher(trackers *trackerList, announce func(string) string, site, region string, infoHash [20]byte, client *http.Client, log *slog.Logger) *swarmWatcher {
	w := &swarmWatcher{trackers: trackers, client: client, log: log, site: site, region: region}
	found := false
	for _, tu := range trackers.urls {
		u, err := url.Parse(announce(tu))
		if err != nil || !strings.HasSuffix(u.Path, "/announce") {
			w.urls = append(w.urls, "")
			continue
		}
		u.Path = strings.TrimSuffix(u.Path, "announce") + report.SwarmPath
		q := u.Query()
		q.Del("locality")
		q.Set("info_hash", string(infoHash[:]))
		u.RawQuery = q.Encode()
		w.urls = append(w.urls, u.String())
		found = true
	}
	if !found {
		return nil
	}
	return w
}

// run polls until ctx ends: often while a rollout is starting (agents
// arrive within seconds and an early, smaller list sends pieces to the
// origin twice), then at a calmer pace.
func (w *swarmWatcher) run(ctx context.Context) {
	start := time.Now()
	var failing bool
	for {
		err := w.fetch(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			// Not fatal: the offloader falls back to its own connections.
			w.log.Warn("tracker swarm view unavailable", "err", err)
			failing = true
		case err == nil && failing:
			w.log.Info("tracker swarm view available again")
			failing = false
		}
		every := 10 * time.Second
		switch age := time.Since(start); {
		case age < 6*time.Second && w.connected != nil:
			// Trust spreads one report per poll (seeder/tracker/trust.go):
			// agents reach each other in the first second, and each must
			// have reported that before the offload divides the work at
			// StartupGrace (3 s), or sites shard alone and the origin
			// sends pieces twice.
			every = time.Second
		case age < 30*time.Second:
			every = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// fetch asks the trackers in their order until one answers; each
// tracker's failure or answer updates its health (shown in status).
func (w *swarmWatcher) fetch(ctx context.Context) error {
	var first error
	for _, i := range w.trackers.health.Order(time.Now()) {
		if w.urls[i] == "" {
			continue
		}
		err := w.fetchFrom(ctx, w.urls[i])
		if err == nil {
			w.trackers.health.Succeeded(i, time.Now())
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		w.trackers.failed(i, time.Now(), err)
		if first == nil {
			first = err
		}
	}
	return first
}

func (w *swarmWatcher) fetchFrom(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if w.connected != nil {
		var ids strings.Builder
		for _, id := range w.connected() {
			ids.WriteString(hex.EncodeToString(id[:]))
		}
		u += "&" + url.Values{"peer_id": {string(w.self[:])}, "connected": {ids.String()}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("swarm view: %s", resp.Status)
	}
	var view report.SwarmView
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&view); err != nil {
		// A refusal is a bencoded failure reason, which is not JSON.
		return fmt.Errorf("swarm view: %w", err)
	}
	members := make(map[[20]byte]report.SwarmMember, len(view.Agents))
	for _, m := range view.Agents {
		// From our point of view, an agent of another site we do not
		// trust is of no use, except as a candidate gateway of a site we
		// have not reached yet. Untrusted agents of our own site stay for
		// the site bridge; nothing else counts them (downloaders).
		if view.Personal && !m.Trusted && !m.Gateway && (m.Site != w.site || m.Region != w.region) {
			continue
		}
		var id [20]byte
		if b, err := hex.DecodeString(m.PeerID); err == nil && len(b) == 20 {
			copy(id[:], b)
			members[id] = m
		}
	}
	w.mu.Lock()
	w.members, w.personal, w.fetched = members, view.Personal, time.Now()
	w.mu.Unlock()
	if w.bridge != nil {
		w.bridge(members, view.Personal)
	}
	return nil
}

// siteDownloaders counts the listed agents of our own site that still
// download (us included); 0 when the list is missing or stale.
func (w *swarmWatcher) siteDownloaders(maxAge time.Duration) int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetched.IsZero() || time.Since(w.fetched) > maxAge {
		return 0
	}
	n := 0
	for _, m := range w.members {
		if m.Left > 0 && m.Site == w.site && m.Region == w.region && (m.Trusted || !w.personal) {
			n++
		}
	}
	return n
}

// siteOf is the site key (siteKey) of a listed agent, whatever the list's
// age: a site does not change while an agent runs.
func (w *swarmWatcher) siteOf(id [20]byte) (string, bool) {
	if w == nil {
		return "", false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.members[id]
	if !ok {
		return "", false
	}
	return siteKey(m.Site, m.Region), true
}

// homeSite is our own site's key; "" without a watcher.
func (w *swarmWatcher) homeSite() string {
	if w == nil {
		return ""
	}
	return siteKey(w.site, w.region)
}

// otherSites reports whether the fresh list names an agent of another
// site: then the site's WAN downlink carries peer traffic too.
func (w *swarmWatcher) otherSites(maxAge time.Duration) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetched.IsZero() || time.Since(w.fetched) > maxAge {
		return false
	}
	for _, m := range w.members {
		if (m.Site != w.site || m.Region != w.region) && (m.Trusted || !w.personal) {
			return true
		}
	}
	return false
}

// gatewayGrace is how long a listed agent of our own site may stay
// unconnected before we take it for gone: connections take a moment to form
// after an agent first announces.
const gatewayGrace = 10 * time.Second

// untrustedGrace is gatewayGrace for an older agent of our site that the
// tracker's personal view does not mark trusted (seeder/tracker/trust.go).
const untrustedGrace = 500 * time.Millisecond

// siteBridge keeps this agent's site connected to the other sites when the
// agent is its site's effective gateway: the oldest agent of the site that
// is still there. That is the tracker's gateway unless it died, in which
// case the tracker keeps listing it (and keeps every other agent of the
// site away from other sites) until it expires, minutes later.
type siteBridge struct {
	self         [20]byte
	site, region string
	t            *torrent.Torrent
	// lastSeen is when each agent of our site was last connected to us or
	// first listed.
	lastSeen map[[20]byte]time.Time
	round    int // updates so far; moves the window over open sites' candidates
}

// openPerRound is how many candidates of an open site (seeder/tracker/trust.go)
// the bridge dials per update.
const openPerRound = 4

// update runs with each fresh member list.
func (b *siteBridge) update(members map[[20]byte]report.SwarmMember, personal bool) {
	now := time.Now()
	connected := map[[20]byte]bool{}
	for _, pc := range b.t.PeerConns() {
		connected[[20]byte(pc.PeerID)] = true
	}
	var local []report.SwarmMember
	ids := map[string][20]byte{}
	for id, m := range members {
		if m.Site != b.site || m.Region != b.region {
			continue
		}
		local = append(local, m)
		ids[m.PeerID] = id
		if _, ok := b.lastSeen[id]; !ok || connected[id] {
			b.lastSeen[id] = now
		}
	}
	for id := range b.lastSeen {
		if _, ok := members[id]; !ok {
			delete(b.lastSeen, id)
		}
	}
	slices.SortFunc(local, func(x, y report.SwarmMember) int {
		if c := cmp.Compare(x.Joined, y.Joined); c != 0 {
			return c
		}
		return strings.Compare(x.PeerID, y.PeerID)
	})
	// The effective gateway: the oldest local agent that is us or still
	// seems to be there. In a personal view an older agent we do not trust
	// gets a shorter grace: a real one connects to us within a second and
	// becomes trusted, a fake never does. Waiting that long keeps a site's
	// younger agents from all dialing other sites at the start.
	for _, m := range local {
		id := ids[m.PeerID]
		if id == b.self {
			break
		}
		grace := gatewayGrace
		if personal && !m.Trusted {
			grace = untrustedGrace
		}
		if now.Sub(b.lastSeen[id]) < grace {
			// Someone older is the gateway. Connections this agent
			// made to other sites while it took itself for the gateway
			// (in the first second, before it reached the older one)
			// pull pieces over the WAN a second time: drop them, once
			// the gateway is connected to us (else they may be all we
			// have).
			if connected[id] {
				b.closeExtra(members, connected, false)
			}
			return
		}
	}
	b.closeExtra(members, connected, true)
	var peers []torrent.PeerInfo
	add := func(id [20]byte, m report.SwarmMember) {
		if ap, err := netip.ParseAddrPort(m.Addr); err == nil {
			peers = append(peers, torrent.PeerInfo{Id: id, Addr: net.TCPAddrFromAddrPort(ap), Source: torrent.PeerSourceTracker})
		}
	}
	// A site we reach through nobody yet is open: all its agents are
	// candidates, fakes included, and every failed dial costs a slot of
	// the client's dial rate (btclient). So a few per round, newest
	// first (fakes that came early to win the old election go last), in a
	// window that moves each round until one answers.
	open := map[[2]string][][20]byte{}
	for id, m := range members {
		if !m.Gateway || connected[id] || (m.Site == b.site && m.Region == b.region) {
			continue
		}
		if m.Trusted {
			add(id, m)
			continue
		}
		k := [2]string{m.Site, m.Region}
		open[k] = append(open[k], id)
	}
	for _, ids := range open {
		slices.SortFunc(ids, func(x, y [20]byte) int {
			if c := cmp.Compare(members[y].Joined, members[x].Joined); c != 0 {
				return c
			}
			return bytes.Compare(x[:], y[:])
		})
		n := min(len(ids), openPerRound)
		for i := range n {
			id := ids[(b.round*openPerRound+i)%len(ids)]
			add(id, members[id])
		}
	}
	b.round++
	if len(peers) > 0 {
		b.t.AddPeers(peers)
	}
}

// closeExtra closes this agent's connections that extraSiteConns picks.
func (b *siteBridge) closeExtra(members map[[20]byte]report.SwarmMember, connected map[[20]byte]bool, gateway bool) {
	extra := extraSiteConns(members, connected, b.site, b.region, gateway)
	if len(extra) == 0 {
		return
	}
	for _, pc := range b.t.PeerConns() {
		if extra[[20]byte(pc.PeerID)] {
			pc.Close()
		}
	}
}

// extraSiteConns picks the connections to other sites that carry pieces
// over the WAN a second time. Only sites with an elected gateway count
// (one member marked gateway, and trusted); an open site's candidates
// stay, one of them may be the path that reaches it. A gateway keeps its
// link to such a site's gateway and drops the site's other agents once
// that link exists (it dialed all of them while the site was open); a
// non-gateway drops its connections to such a site's other agents: its
// own site's gateway carries the traffic. Links to gateways stay, so that
// two agents that disagree for a moment on who their site's gateway is do
// not drop and redial each other.
func extraSiteConns(members map[[20]byte]report.SwarmMember, connected map[[20]byte]bool, site, region string, gateway bool) map[[20]byte]bool {
	type key [2]string
	gateways := map[key]int{}
	elected := map[key]bool{}
	reached := map[key]bool{}
	for id, m := range members {
		k := key{m.Site, m.Region}
		if !m.Gateway || (m.Site == site && m.Region == region) {
			continue
		}
		gateways[k]++
		if m.Trusted {
			elected[k] = true
			reached[k] = reached[k] || connected[id]
		}
	}
	var out map[[20]byte]bool
	for id, m := range members {
		k := key{m.Site, m.Region}
		if !connected[id] || gateways[k] != 1 || !elected[k] {
			continue
		}
		if m.Gateway || (gateway && !reached[k]) {
			continue
		}
		if out == nil {
			out = map[[20]byte]bool{}
		}
		out[id] = true
	}
	return out
}

// downloaders returns the listed agents of other sites that still
// download, if the list is fresh (younger than maxAge). Agents of our own
// site are left out: the tracker gives us all of them, so one we are not
// connected to is gone or not yet reachable, and the offloader judges
// connected ones by their progress.
func (w *swarmWatcher) downloaders(maxAge time.Duration) (map[[20]byte]bool, bool) {
	if w == nil {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetched.IsZero() || time.Since(w.fetched) > maxAge {
		return nil, false
	}
	out := make(map[[20]byte]bool, len(w.members))
	for id, m := range w.members {
		// Only trusted members hold offload shards: a shard owned by a
		// fake would never be fetched by anyone.
		if m.Left > 0 && (m.Site != w.site || m.Region != w.region) && (m.Trusted || !w.personal) {
			out[id] = true
		}
	}
	return out, true
}

// tentativeMembers returns, from a fresh list, the downloading agents
// that downloaders leaves out but that are most likely real members at
// the start of a rollout: agents of our own site (trusted, if the view is
// personal), which we may simply not be connected to yet, and the agents
// of open sites, which the tracker lists as candidate gateways because no
// agent we trust has connected to that site yet (seeder/tracker/trust.go).
// Real sites are open only until their gateway connects to ours and the
// reports spread; fakes stay open, and dead agents stay listed until the
// tracker expires them: callers use these only for a bounded time.
func (w *swarmWatcher) tentativeMembers(maxAge time.Duration) map[[20]byte]bool {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetched.IsZero() || time.Since(w.fetched) > maxAge {
		return nil
	}
	var out map[[20]byte]bool
	for id, m := range w.members {
		if m.Left == 0 || id == w.self {
			continue
		}
		ours := m.Site == w.site && m.Region == w.region
		if (ours && (m.Trusted || !w.personal)) || (!ours && w.personal && m.Gateway && !m.Trusted) {
			if out == nil {
				out = map[[20]byte]bool{}
			}
			out[id] = true
		}
	}
	return out
}

// reportConnections lists the agents t holds connections with, those that
// sent us the most payload first, at most maxReport of them: the report a
// swarm view request carries.
func reportConnections(t *torrent.Torrent) [][20]byte {
	type conn struct {
		id   [20]byte
		read int64
	}
	var cs []conn
	seen := map[[20]byte]bool{}
	for _, pc := range t.PeerConns() {
		id := [20]byte(pc.PeerID)
		if seen[id] || !strings.HasPrefix(string(id[:]), btclient.AgentPeerIDPrefix) {
			continue
		}
		seen[id] = true
		st := pc.Stats()
		cs = append(cs, conn{id, st.BytesReadUsefulData.Int64()})
	}
	slices.SortFunc(cs, func(a, b conn) int { return cmp.Compare(b.read, a.read) })
	out := make([][20]byte, 0, min(len(cs), maxReport))
	for _, c := range cs[:min(len(cs), maxReport)] {
		out = append(out, c.id)
	}
	return out
}

// maxReport matches the tracker's limit on one report.
const maxReport = 16
