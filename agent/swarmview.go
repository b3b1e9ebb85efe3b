package agent

import (
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

	"github.com/swarmship/swarmship/internal/report"
)

// swarmWatcher keeps the tracker's list of a swarm's agents fresh while a
// download runs. The offloader divides the origin's work over that list:
// with locality keeping sites apart, an agent is connected only to its own
// site (or, as the site's gateway, to other gateways), so its connections
// alone would give every site its own copy from the origin.
type swarmWatcher struct {
	url          string // …/swarm?info_hash=…&<identity>
	client       *http.Client
	log          *slog.Logger
	site, region string // our own; see downloaders

	// bridge, if set, runs after every successful fetch (see bridgeSites).
	bridge func(members map[[20]byte]report.SwarmMember)

	mu      sync.Mutex
	members map[[20]byte]report.SwarmMember
	fetched time.Time
}

// newSwarmWatcher returns nil when announceURL is not a swarmship tracker's
// (its path must end in /announce).
func newSwarmWatcher(announceURL, site, region string, infoHash [20]byte, client *http.Client, log *slog.Logger) *swarmWatcher {
	u, err := url.Parse(announceURL)
	if err != nil || !strings.HasSuffix(u.Path, "/announce") {
		return nil
	}
	u.Path = strings.TrimSuffix(u.Path, "announce") + report.SwarmPath
	q := u.Query()
	q.Del("locality")
	q.Set("info_hash", string(infoHash[:]))
	u.RawQuery = q.Encode()
	return &swarmWatcher{url: u.String(), client: client, log: log, site: site, region: region}
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
		if time.Since(start) < 30*time.Second {
			every = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (w *swarmWatcher) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
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
		var id [20]byte
		if b, err := hex.DecodeString(m.PeerID); err == nil && len(b) == 20 {
			copy(id[:], b)
			members[id] = m
		}
	}
	w.mu.Lock()
	w.members, w.fetched = members, time.Now()
	w.mu.Unlock()
	if w.bridge != nil {
		w.bridge(members)
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
		if m.Left > 0 && m.Site == w.site && m.Region == w.region {
			n++
		}
	}
	return n
}

// gatewayGrace is how long a listed agent of our own site may stay
// unconnected before we take it for gone: connections take a moment to form
// after an agent first announces.
const gatewayGrace = 10 * time.Second

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
}

// update runs with each fresh member list.
func (b *siteBridge) update(members map[[20]byte]report.SwarmMember) {
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
	// seems to be there.
	for _, m := range local {
		id := ids[m.PeerID]
		if id == b.self {
			break
		}
		if now.Sub(b.lastSeen[id]) < gatewayGrace {
			return // someone older is the gateway
		}
	}
	var peers []torrent.PeerInfo
	for id, m := range members {
		if !m.Gateway || connected[id] || (m.Site == b.site && m.Region == b.region) {
			continue
		}
		ap, err := netip.ParseAddrPort(m.Addr)
		if err != nil {
			continue
		}
		peers = append(peers, torrent.PeerInfo{Id: id, Addr: net.TCPAddrFromAddrPort(ap), Source: torrent.PeerSourceTracker})
	}
	if len(peers) > 0 {
		b.t.AddPeers(peers)
	}
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
		if m.Left > 0 && (m.Site != w.site || m.Region != w.region) {
			out[id] = true
		}
	}
	return out, true
}
