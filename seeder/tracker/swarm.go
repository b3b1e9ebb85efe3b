package tracker

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"unique"

	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
)

// maxSwarmView bounds a report.SwarmView answer; agents use the list to divide the
// origin's work, and beyond this many downloaders each one's share is a
// handful of pieces anyway.
const maxSwarmView = 10000

// serveSwarm answers a report.SwarmView request. It takes the identity and token
// parameters of an announce and the same authorization, and optionally the
// requester's peer_id (20 raw bytes, as in an announce) with connected= (the
// hex peer IDs of the agents it holds connections with, at most maxReport),
// which the tracker keeps as the requester's report (trust.go). A report is
// taken only from the stored peer's own address, credential and identity.
func (t *Tracker) serveSwarm(w http.ResponseWriter, r *http.Request) {
	var a announce // for refusal log fields
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		t.refuse(w, r, &a, reasonMalformed, errors.New("malformed query"))
		return
	}
	if a.id, err = parseIdentity(q); err != nil {
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	}
	h, _, err := single(q, "info_hash")
	if err != nil || len(h) != 20 {
		t.refuse(w, r, &a, reasonMalformed, fmt.Errorf("swarm view needs one 20-byte info_hash"))
		return
	}
	copy(a.infoHash[:], h)
	switch rel, _, err := single(q, "relay"); {
	case err != nil:
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	case rel == "origin":
		a.relay = true
	case rel == "" || rel == "never":
	default:
		t.refuse(w, r, &a, reasonMalformed, fmt.Errorf("unknown relay %q (want origin or never)", rel))
		return
	}
	var reported [][20]byte
	hasID := q.Has("peer_id")
	if hasID {
		if err := parseHash(q, "peer_id", &a.peerID); err != nil {
			t.refuse(w, r, &a, reasonMalformed, err)
			return
		}
		c, _, err := single(q, "connected")
		if err == nil {
			reported, err = parseReport(c)
		}
		if err != nil {
			t.refuse(w, r, &a, reasonMalformed, err)
			return
		}
	}
	allowed, ok := t.admit(w, r, &a)
	if !ok {
		return
	}
	if hasID {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			t.refuse(w, r, &a, reasonMalformed, errors.New("cannot determine peer address"))
			return
		}
		ip := ap.Addr().Unmap().WithZone("")
		if a.relay {
			ip = relay.HandleFor(a.id.Tenant, a.peerID).Addr() // as its announces are stored
		}
		probe := entry{
			id:     a.peerID,
			addr:   netip.AddrPortFrom(ip, 0),
			tok:    credential(r),
			site:   unique.Make(a.id.Site),
			region: unique.Make(a.id.Region),
			role:   roleCode(a.id.Role),
		}
		// Not stored yet (its first announce is on the way): the view is
		// still personal, with nobody trusted.
		_, err = t.store.report(r.Context(), a.infoHash, a.id.Tenant, &probe, reported, t.cutoff())
		switch {
		case errors.Is(err, state.ErrUnavailable):
			// Shared state away: the report is lost (the next one
			// replaces it) but the view is still served from this
			// origin's copy; an agent without a view would fetch more
			// from the origin (its shard widens).
		case err != nil:
			t.refuse(w, r, &a, reasonPeerID, err)
			return
		}
	}
	_ = t.store.fresh(r.Context(), a.infoHash, a.id.Tenant) // an error keeps the last copy
	var self *[20]byte
	if hasID {
		self = &a.peerID
	}
	view := t.swarmView(a.infoHash, a.id.Tenant, allowed, self)
	if a.relay {
		// A relay-mode agent learns no other agent's address.
		for i := range view.Agents {
			if ap, err := netip.ParseAddrPort(view.Agents[i].Addr); err != nil || !relay.IsHandle(ap) {
				view.Agents[i].Addr = ""
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(view)
}

// swarmView lists the live agents of one tenant's swarm, from the point of
// view of the agent with peer ID self if it is set (trust.go).
func (t *Tracker) swarmView(infoHash [20]byte, tenant string, allowed *regionSet, self *[20]byte) report.SwarmView {
	view := report.SwarmView{Interval: t.interval, Agents: []report.SwarmMember{}}
	cutoff := t.cutoff()
	s := t.scratch.Get().(*scratch)
	defer t.scratch.Put(s)
	sh := t.shard(infoHash)
	sh.mu.RLock()
	var peers []entry
	sw := sh.byHash[infoHash][tenant]
	if sw != nil {
		peers = sw.peers
	}
	var trusted []bool
	if self != nil {
		if !personal(s, sw, *self, cutoff) {
			s.trusted = append(s.trusted[:0], make([]bool, len(peers))...)
		}
		trusted = s.trusted
		view.Personal = true
	}
	electGateways(s, peers, cutoff, allowed, trusted, t.slowSet())
	quarantine := t.quarantine.Load()
	for i := range peers {
		p := &peers[i]
		if p.seen < cutoff || p.role != roleAgent || !allowed.allows(p.region) || quarantine.has(p, tenant) {
			continue
		}
		if len(view.Agents) == maxSwarmView {
			view.Truncated = true
			break
		}
		view.Agents = append(view.Agents, report.SwarmMember{
			PeerID:  hex.EncodeToString(p.id[:]),
			Addr:    p.addr.String(),
			Joined:  p.joined / 1e6,
			Site:    p.site.Value(),
			Region:  p.region.Value(),
			Left:    p.left,
			Gateway: s.gateway(siteKey{p.site, p.region}, i),
			Trusted: trusted != nil && trusted[i],
		})
	}
	sh.mu.RUnlock()
	slices.SortFunc(view.Agents, func(x, y report.SwarmMember) int { return bytes.Compare([]byte(x.PeerID), []byte(y.PeerID)) })
	return view
}
