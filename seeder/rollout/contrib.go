package rollout

import (
	"encoding/hex"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/report"
)

// Contribution (issue 20): the agents' ledgers folded per peer, from the
// point of view of the peers that dealt with it (a peer's own report is
// not trusted about itself), and the agents' upload capacity and load,
// which the tracker weights its answers and gateway elections by.

// Bounds of the contribution view.
const (
	maxPeerRows = 500
	// maxPeersFolded bounds the distinct peers one aggregation holds.
	maxPeersFolded = 200000
	// contribEvery: the fold runs in Tick at most this often.
	contribEvery = 2 * time.Second
)

// Contribution is GET /api/v1/peers.
type Contribution struct {
	Generated   time.Time       `json:"generated"`
	Freeloaders int             `json:"freeloaders"`
	Misbehaving int             `json:"misbehaving"`
	Peers       []PeerRow       `json:"peers"`  // flagged first, at most maxPeerRows
	Agents      []AgentCapacity `json:"agents"` // live agents that sent a ledger, at most maxAgentRows
	Truncated   bool            `json:"truncated,omitempty"`
}

// PeerRow is one peer as the agents that dealt with it saw it.
type PeerRow struct {
	Tenant string `json:"tenant,omitempty"`
	PeerID string `json:"peer_id"`
	Addr   string `json:"addr"`
	// AgentID, Name and Site are set when the peer ID is a reporting
	// agent's; DownloadOnly when that agent may not upload (download-only
	// mode, or metered) and so cannot be a freeloader.
	AgentID      string `json:"agent_id,omitempty"`
	Name         string `json:"name,omitempty"`
	Site         string `json:"site,omitempty"`
	DownloadOnly bool   `json:"download_only,omitempty"`
	// Received is payload the reporting agents sent it, Sent what it sent
	// them.
	Received  int64 `json:"received"`
	Sent      int64 `json:"sent"`
	BadPieces int64 `json:"bad_pieces"`
	Stalled   int64 `json:"stalled"`
	Refused   int64 `json:"refused"`
	Starved   int64 `json:"starved"`
	Reporters int   `json:"reporters"`
	// StallReporters is how many of them saw it leave requests unanswered.
	StallReporters int    `json:"stall_reporters"`
	Freeloader     bool   `json:"freeloader,omitempty"`
	Misbehaving    bool   `json:"misbehaving,omitempty"`
	Why            string `json:"why,omitempty"`
}

// AgentCapacity is one agent's measured upload capacity and load.
type AgentCapacity struct {
	Tenant   string  `json:"tenant,omitempty"`
	AgentID  string  `json:"agent_id"`
	Name     string  `json:"name,omitempty"`
	Site     string  `json:"site,omitempty"`
	PeerID   string  `json:"peer_id,omitempty"`
	UpRate   float64 `json:"up_rate"`
	Capacity float64 `json:"capacity"` // bytes/s; 0: not measured yet
	Load     float64 `json:"load"`     // up_rate/capacity, 0..1
	// Weight is the tracker's weight for the agent, 1 for an average
	// agent, less for a slow or saturated one.
	Weight float64 `json:"weight"`
}

// contribution is the latest fold, kept by Tick.
type contribution struct {
	at      time.Time
	peers   []PeerRow       // every folded peer, flagged first
	agents  []AgentCapacity // every live agent with a ledger
	weights map[[20]byte]float64
	// byAgent and byTLS map agent IDs and certificate fingerprints (per
	// tenant: "tenant/id") to the agents' current peer IDs.
	byAgent, byTLS map[string][20]byte
}

// foldLocked folds the live agents' ledgers. s.mu is held.
func (s *Reports) foldLocked(now time.Time) *contribution {
	type peerKey struct{ tenant, id string }
	c := &contribution{at: now, weights: map[[20]byte]float64{}, byAgent: map[string][20]byte{}, byTLS: map[string][20]byte{}}
	self := map[peerKey]*agentRecord{}
	folded := map[peerKey]*PeerRow{}
	for _, rec := range s.agents {
		rep := rec.Report
		if now.Sub(rec.Received) > time.Duration(s.cfg.StallIntervals)*s.interval(rec) {
			continue // not live: its figures are old
		}
		if rep.PeerID != "" {
			self[peerKey{rep.Tenant, rep.PeerID}] = rec
			if id, err := hex.DecodeString(rep.PeerID); err == nil && len(id) == 20 {
				var pid [20]byte
				copy(pid[:], id)
				c.byAgent[rep.Tenant+"/"+rep.AgentID] = pid
				if rep.Ledger != nil && rep.Ledger.TLSID != "" {
					c.byTLS[rep.Tenant+"/"+rep.Ledger.TLSID] = pid
				}
			}
		}
		l := rep.Ledger
		if l == nil {
			continue
		}
		capa := l.UpPeak
		if l.UpLimit > 0 && (capa == 0 || l.UpLimit < capa) {
			capa = l.UpLimit
		}
		ac := AgentCapacity{Tenant: rep.Tenant, AgentID: rep.AgentID, Name: rep.Name, Site: rep.Site, PeerID: rep.PeerID, UpRate: l.UpRate, Capacity: capa}
		if capa > 0 {
			ac.Load = min(l.UpRate/capa, 1)
		}
		c.agents = append(c.agents, ac)
		for _, p := range l.Peers {
			k := peerKey{rep.Tenant, p.PeerID}
			if k.id == rep.PeerID {
				continue // about itself
			}
			row := folded[k]
			if row == nil {
				if len(folded) >= maxPeersFolded {
					continue
				}
				row = &PeerRow{Tenant: rep.Tenant, PeerID: p.PeerID}
				folded[k] = row
			}
			row.Addr = p.Addr
			row.Received += p.Up
			row.Sent += p.Down
			row.BadPieces += p.BadPieces
			row.Stalled += p.Stalled
			row.Refused += p.Refused
			row.Starved += p.Starved
			row.Reporters++
			if p.Stalled > 0 {
				row.StallReporters++
			}
		}
	}
	s.weighLocked(c)
	for k, row := range folded {
		if rec := self[k]; rec != nil {
			rep := rec.Report
			row.AgentID, row.Name, row.Site = rep.AgentID, rep.Name, rep.Site
			row.DownloadOnly = rep.Policy.Mode == "download-only" || !rep.Policy.UploadAllowed
		}
		s.flag(row)
		c.peers = append(c.peers, *row)
	}
	slices.SortFunc(c.peers, func(a, b PeerRow) int {
		fa, fb := a.Freeloader || a.Misbehaving, b.Freeloader || b.Misbehaving
		switch {
		case fa != fb:
			if fa {
				return -1
			}
			return 1
		case a.Received+a.Sent != b.Received+b.Sent:
			if a.Received+a.Sent > b.Received+b.Sent {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Tenant+a.PeerID, b.Tenant+b.PeerID)
	})
	slices.SortFunc(c.agents, func(a, b AgentCapacity) int { return strings.Compare(a.Tenant+"/"+a.AgentID, b.Tenant+"/"+b.AgentID) })
	return c
}

// flag marks a freeloader (took much, gave almost nothing while its
// peers wanted what it held) and a misbehaving peer (a bad piece, or
// stalled requests beyond the threshold).
func (s *Reports) flag(row *PeerRow) {
	var why []string
	if row.BadPieces > 0 {
		why = append(why, "bad pieces")
	}
	// Two agents that each found it ignoring their requests are evidence
	// enough; one agent's word needs more stalled requests (a network
	// fault between the two looks the same to it).
	if row.Stalled >= int64(s.cfg.MisbehavingStalled) || row.StallReporters >= 2 {
		why = append(why, "stalled requests")
	}
	// Refused requests are not misbehaviour: an honest peer that chokes
	// rejects what it will not serve (BEP 6). They are shown only.
	row.Misbehaving = len(why) > 0
	if !row.DownloadOnly && row.Received >= s.cfg.FreeloaderMinBytes && row.Sent*20 < row.Received &&
		row.Starved >= int64(s.cfg.FreeloaderStarved/time.Second) {
		row.Freeloader = true
		why = append(why, "freeloader")
	}
	row.Why = strings.Join(why, ", ")
}

// weighLocked sets each agent's weight: its capacity against the median
// of the measured ones (an unmeasured agent counts as average), times
// what its load leaves free. Bounded to [1/16, 4] so that nobody is
// never chosen and nobody is always first.
func (s *Reports) weighLocked(c *contribution) {
	var caps []float64
	for _, a := range c.agents {
		if a.Capacity > 0 {
			caps = append(caps, a.Capacity)
		}
	}
	slices.Sort(caps)
	median := 0.0
	if len(caps) > 0 {
		median = caps[len(caps)/2]
	}
	for i := range c.agents {
		a := &c.agents[i]
		rel := 1.0
		if a.Capacity > 0 && median > 0 {
			rel = a.Capacity / median
		}
		w := math.Min(math.Max(rel*(1-0.75*a.Load), 1.0/16), 4)
		a.Weight = math.Round(w*100) / 100
		if id, err := hex.DecodeString(a.PeerID); err == nil && len(id) == 20 {
			var pid [20]byte
			copy(pid[:], id)
			c.weights[pid] = w
		}
	}
}

// refreshContribution re-folds the ledgers if the last fold is older than
// contribEvery. Called by Tick with s.mu held.
func (s *Reports) refreshContributionLocked(now time.Time) {
	if s.contrib != nil && now.Sub(s.contrib.at) < contribEvery && !now.Before(s.contrib.at) {
		return
	}
	s.contrib = s.foldLocked(now)
}

// Contribution is the latest fold cut to a tenant (scope nil: the fleet).
func (s *Reports) Contribution(scope *string) Contribution {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := Contribution{Generated: s.now().UTC(), Peers: []PeerRow{}, Agents: []AgentCapacity{}}
	c := s.contrib
	if c == nil {
		return out
	}
	out.Generated = c.at.UTC()
	for _, p := range c.peers {
		if scope != nil && p.Tenant != *scope {
			continue
		}
		if p.Freeloader {
			out.Freeloaders++
		}
		if p.Misbehaving {
			out.Misbehaving++
		}
		if len(out.Peers) < maxPeerRows {
			out.Peers = append(out.Peers, p)
		} else {
			out.Truncated = true
		}
	}
	for _, a := range c.agents {
		if scope != nil && a.Tenant != *scope {
			continue
		}
		if len(out.Agents) < maxAgentRows {
			out.Agents = append(out.Agents, a)
		} else {
			out.Truncated = true
		}
	}
	return out
}

// Weights are the agents' tracker weights by peer ID (1: average).
func (s *Reports) Weights() map[[20]byte]float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.contrib == nil {
		return nil
	}
	return s.contrib.weights
}

// PeerIDOf maps a quarantine entry naming an agent ("agent:ID") or a
// certificate ("tls:FINGERPRINT") of tenant onto the agent's current peer
// ID, as its latest live report says.
func (s *Reports) PeerIDOf(tenant, kind, value string) ([20]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.contrib == nil {
		return [20]byte{}, false
	}
	var id [20]byte
	var ok bool
	switch kind {
	case report.QuarantineAgent:
		id, ok = s.contrib.byAgent[tenant+"/"+value]
	case report.QuarantineTLS:
		id, ok = s.contrib.byTLS[tenant+"/"+value]
	}
	return id, ok
}

func (s *Reports) handlePeers(w http.ResponseWriter, _ *http.Request, tenant string) {
	if tenant == "" {
		writeJSON(w, s.Contribution(nil))
		return
	}
	writeJSON(w, s.Contribution(&tenant))
}
