package tracker

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/swarmship/swarmship/internal/report"
)

// maxSwarmView bounds a SwarmView answer; agents use the list to divide the
// origin's work, and beyond this many downloaders each one's share is a
// handful of pieces anyway.
const maxSwarmView = 10000

// serveSwarm answers a SwarmView request. It takes the identity and token
// parameters of an announce and the same authorization.
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
	allowed, ok := t.admit(w, r, &a)
	if !ok {
		return
	}
	view := t.swarmView(a.infoHash, a.id.Tenant, allowed)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(view)
}

// swarmView lists the live agents of one tenant's swarm.
func (t *Tracker) swarmView(infoHash [20]byte, tenant string, allowed *regionSet) report.SwarmView {
	view := report.SwarmView{Interval: t.interval, Agents: []report.SwarmMember{}}
	cutoff := t.cutoff()
	s := t.scratch.Get().(*scratch)
	defer t.scratch.Put(s)
	sh := t.shard(infoHash)
	sh.mu.RLock()
	var peers []entry
	if sw := sh.byHash[infoHash][tenant]; sw != nil {
		peers = sw.peers
	}
	electGateways(s, peers, cutoff, allowed)
	for i := range peers {
		p := &peers[i]
		if p.seen < cutoff || p.role != roleAgent || !allowed.allows(p.region) {
			continue
		}
		if len(view.Agents) == maxSwarmView {
			view.Truncated = true
			break
		}
		g, ok := s.gw[siteKey{p.site, p.region}]
		view.Agents = append(view.Agents, report.SwarmMember{
			PeerID:  hex.EncodeToString(p.id[:]),
			Addr:    p.addr.String(),
			Joined:  p.joined / 1e6,
			Site:    p.site.Value(),
			Region:  p.region.Value(),
			Left:    p.left,
			Gateway: ok && g == i,
		})
	}
	sh.mu.RUnlock()
	slices.SortFunc(view.Agents, func(x, y report.SwarmMember) int { return bytes.Compare([]byte(x.PeerID), []byte(y.PeerID)) })
	return view
}
