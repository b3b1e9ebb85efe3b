package tracker

import (
	"encoding/hex"
	"fmt"
)

// Gateway election and swarm views that fakes cannot take over.
//
// The old rule, "a site's gateway is its longest-announcing agent", let
// 2,000 fake announcers that came first (no token needed, or one valid site
// token) become every site's gateway and own the offload's shards: the
// rollout ran from the origin alone (2.00 copies, 0 bytes from peers). Any
// rule built only on what announcers say about themselves or about each
// other falls the same way, since fakes can say anything about each other.
//
// What fakes cannot produce is a real agent saying it is connected to them:
// an agent reports (with its swarm view request) the peers it holds
// BitTorrent connections with for the release, which needs a completed
// handshake on the infohash with that peer ID. The tracker then answers
// each agent R from R's own point of view: R trusts itself, the agents R
// reports, the agents they report, and so on (trust). Fakes may report each
// other as much as they like; none of that is reachable from R unless a real
// agent reports a connection to a fake, and a fake that holds real
// connections is a peer that serves the handshake and is judged by its
// bytes like any other (the offload drops members that do not progress).
//
// For R, a site's gateway is its oldest agent that R trusts. A site with no
// agent R trusts yet (at the start, before the first cross-site connection)
// is open: every agent of it is a candidate, so R's gateway reaches the real
// ones among them, and once connected the site's real component becomes
// trusted and its gateway is elected as before. The swarm view marks the
// members R trusts; agents give offload shards only to those (and to peers
// they are connected to and see progress from), so fakes own no shard.
// Requesters that send no report (foreign clients, older agents) get the old
// rule. The caps (limits.go) keep the fakes a small part of any answer
// while real agents find each other.

// maxReport bounds the peers one report lists.
const maxReport = 16

// openSite marks, in scratch.gw, a site with live agents none of which the
// requester trusts: all of them are candidate gateways.
const openSite = -1

// parseReport decodes the connected= parameter: concatenated hex peer IDs.
func parseReport(s string) ([][20]byte, error) {
	if len(s)%40 != 0 || len(s) > maxReport*40 {
		return nil, fmt.Errorf("connected: want up to %d hex peer IDs", maxReport)
	}
	out := make([][20]byte, len(s)/40)
	for i := range out {
		if _, err := hex.Decode(out[i][:], []byte(s[i*40:(i+1)*40])); err != nil {
			return nil, fmt.Errorf("connected: %w", err)
		}
	}
	return out, nil
}

// trustFrom fills s.trusted for sw.peers: the live agents reachable from
// peer self over reports (self included). It visits at most maxSwarmView
// agents.
func trustFrom(s *scratch, sw *swarm, self int, cutoff int64) {
	if cap(s.trusted) < len(sw.peers) {
		s.trusted = make([]bool, len(sw.peers))
	}
	s.trusted = s.trusted[:len(sw.peers)]
	clear(s.trusted)
	s.queue = append(s.queue[:0], self)
	s.trusted[self] = true
	for n := 0; n < len(s.queue) && n < maxSwarmView; n++ {
		for _, id := range sw.reports[sw.peers[s.queue[n]].id] {
			j, ok := sw.index[id]
			if !ok || s.trusted[j] {
				continue
			}
			if p := &sw.peers[j]; p.seen < cutoff || p.role != roleAgent {
				continue
			}
			s.trusted[j] = true
			s.queue = append(s.queue, j)
		}
	}
}

// personal sets up s.trusted for the requester with peer ID id, and
// reports whether it applies: the requester is stored and has reported.
func personal(s *scratch, sw *swarm, id [20]byte, cutoff int64) bool {
	if sw == nil {
		return false
	}
	i, ok := sw.index[id]
	if !ok {
		return false
	}
	if _, reported := sw.reports[id]; !reported {
		return false
	}
	trustFrom(s, sw, i, cutoff)
	return true
}

// gateway reports whether peer i is (one of) site k's gateway(s) in s.gw.
func (s *scratch) gateway(k siteKey, i int) bool {
	g, ok := s.gw[k]
	return ok && (g == i || g == openSite)
}

// storeReport records what reporter says it is connected to, if the
// stored peer with its ID is its own (same address, credential, identity).
// It returns false when no such peer is stored: nothing is kept.
func (t *Tracker) storeReport(sh *shard, infoHash [20]byte, tenant string, reporter *entry, ids [][20]byte, cutoff int64) (bool, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sw := sh.byHash[infoHash][tenant]
	if sw == nil {
		return false, nil
	}
	i, ok := sw.index[reporter.id]
	if !ok || sw.peers[i].seen < cutoff {
		return false, nil // unknown or expired: nothing to bind to
	}
	if !sameOwner(&sw.peers[i], reporter) {
		return false, errPeerIDBound
	}
	if sw.peers[i].role != roleAgent {
		return false, nil
	}
	if sw.reports == nil {
		sw.reports = make(map[[20]byte][][20]byte)
	}
	sw.reports[reporter.id] = append(sw.reports[reporter.id][:0], ids...)
	return true, nil
}
