package dht

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// A roster is the list of agents downloading a torrent, kept on the DHT
// for the origin offload when no tracker answers: each such agent
// announces itself under the torrent's roster target and looks that
// target up every RosterEvery, so every downloader sees about the same
// set of addresses and divides the origin's pieces over it (agent's
// offload). Roster answers are not handed to OnPeer: a roster spans sites
// the locality may keep apart, it names members, not peers to dial.
//
// Announces cannot be withdrawn: an agent that finished stays listed
// until its announce expires (storedPeerTTL). The agent drops members it
// sees complete; the offload's stall fallback covers the rest.

// RosterEvery is how often a roster is announced and looked up again;
// rosterEarly in its first rosterStart: a rollout's agents arrive within
// seconds, and a short roster sends pieces to the origin twice.
const (
	RosterEvery = 10 * time.Second
	rosterEarly = 2 * time.Second
	rosterStart = 30 * time.Second
)

// RosterScope is where a torrent's roster lives for agents of scope (the
// widest scope the release may be shared in): a target apart from the
// scope's peer target, so roster announces never become dial candidates.
func RosterScope(scope Scope) Scope { return "roster\x00" + scope }

type roster struct {
	scope   Scope
	self    netip.AddrPort // our own announce, once seen
	members []netip.AddrPort
	at      time.Time // last lookup that answered
	added   time.Time
	next    time.Time
}

// AddRoster announces this node (it must have a Port) in ih's roster
// within scope and keeps the roster fresh until RemoveRoster.
func (n *Node) AddRoster(ih [20]byte, scope Scope) {
	if n.cfg.Port <= 0 {
		return
	}
	n.mu.Lock()
	if r := n.rosters[ih]; r == nil || r.scope != scope {
		n.rosters[ih] = &roster{scope: scope, added: n.cfg.Now(), self: n.boundSelf()}
	}
	n.mu.Unlock()
	n.poke()
}

// RemoveRoster stops announcing in ih's roster.
func (n *Node) RemoveRoster(ih [20]byte) {
	n.mu.Lock()
	delete(n.rosters, ih)
	n.mu.Unlock()
}

// Roster returns ih's roster: this node's own address as others see it
// and the other members, sorted; ok is false until a lookup has answered
// and seen this node's own announce, or when the last answer is older
// than maxAge.
func (n *Node) Roster(ih [20]byte, maxAge time.Duration) (self netip.AddrPort, members []netip.AddrPort, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.rosters[ih]
	if r == nil || !r.self.IsValid() || r.at.IsZero() || n.cfg.Now().Sub(r.at) > maxAge {
		return self, nil, false
	}
	return r.self, slices.Clone(r.members), true
}

// runRosters refreshes the rosters that are due, one lookup at a time.
func (n *Node) runRosters(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		n.mu.Lock()
		var due [][20]byte
		now := n.cfg.Now()
		for ih, r := range n.rosters {
			if !r.next.After(now) {
				due = append(due, ih)
				every := RosterEvery
				if now.Sub(r.added) < rosterStart || !r.self.IsValid() {
					every = rosterEarly
				}
				r.next = now.Add(every)
			}
		}
		n.mu.Unlock()
		for _, ih := range due {
			n.refreshRoster(ctx, ih)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// boundSelf is this node's announce address when its socket is bound to
// one address (the agent's listen_host): announces carry the datagram's
// source address. Invalid when bound to all addresses: then the node
// learns it from its own announce coming back.
func (n *Node) boundSelf() netip.AddrPort {
	a := n.Addr().Addr().Unmap()
	if a.IsUnspecified() || n.cfg.Port <= 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(n.cfg.Port))
}

func (n *Node) refreshRoster(ctx context.Context, ih [20]byte) {
	n.mu.Lock()
	r := n.rosters[ih]
	if r == nil {
		n.mu.Unlock()
		return
	}
	scope := r.scope
	n.mu.Unlock()
	peers, self, err := n.lookup(ctx, n.cfg.Key.Target(RosterScope(scope), ih))
	if err != nil {
		n.log.Debug("dht: roster lookup", "err", err)
		return
	}
	slices.SortFunc(peers, func(a, b netip.AddrPort) int { return a.Compare(b) })
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.rosters[ih]; r != nil && r.scope == scope {
		r.members, r.at = peers, n.cfg.Now()
		if self.IsValid() {
			r.self = self
		}
	}
}
