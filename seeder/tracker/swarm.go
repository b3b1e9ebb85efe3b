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
)

// SwarmPath is where, next to /announce, the tracker lists a swarm's
// agents (see SwarmView).
const SwarmPath = "swarm"

// maxSwarmView bounds a SwarmView answer; agents use the list to divide the
// origin's work, and beyond this many downloaders each one's share is a
// handful of pieces anyway.
const maxSwarmView = 10000

// SwarmView is the answer to GET …/swarm?info_hash=…: the live agents of the
// requester's tenant in one swarm. Agents divide the origin's work by
// rendezvous hashing over this list, which is the same for every agent,
// whereas each agent's own connections show only part of the swarm when
// locality keeps sites apart. A site whose gateway has died (it stays
// listed until it expires) uses the list to let its next-oldest agent dial
// the other sites' gateways at once.
type SwarmView struct {
	Interval  int64         `json:"interval"` // seconds between announces
	Agents    []SwarmMember `json:"agents"`   // sorted by peer ID
	Truncated bool          `json:"truncated,omitempty"`
}

// SwarmMember is one agent in a SwarmView.
type SwarmMember struct {
	PeerID  string `json:"peer_id"` // hex
	Addr    string `json:"addr"`    // host:port it announced
	Site    string `json:"site,omitempty"`
	Region  string `json:"region,omitempty"`
	Left    int64  `json:"left"`              // bytes left at its last announce
	Joined  int64  `json:"joined"`            // its first announce, unix milliseconds
	Gateway bool   `json:"gateway,omitempty"` // its site's gateway (see the package comment)
}

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
func (t *Tracker) swarmView(infoHash [20]byte, tenant string, allowed *regionSet) SwarmView {
	view := SwarmView{Interval: t.interval, Agents: []SwarmMember{}}
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
		view.Agents = append(view.Agents, SwarmMember{
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
	slices.SortFunc(view.Agents, func(x, y SwarmMember) int { return bytes.Compare([]byte(x.PeerID), []byte(y.PeerID)) })
	return view
}
