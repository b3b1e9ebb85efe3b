package report

// The swarm view is the other wire format between agents and the origin:
// the tracker's list of a swarm's agents, which agents read to divide the
// origin's work and to replace a dead gateway.

// SwarmPath is where, next to /announce, the tracker lists a swarm's
// agents (see SwarmView).
const SwarmPath = "swarm"

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
	// Personal is set when the requester sent peer_id and its report of
	// connections (see seeder/tracker/trust.go): Gateway and Trusted are
	// then from its point of view, and only Trusted members should hold
	// offload shards.
	Personal bool `json:"personal,omitempty"`
}

// SwarmMember is one agent in a SwarmView.
type SwarmMember struct {
	PeerID  string `json:"peer_id"` // hex
	Addr    string `json:"addr"`    // host:port it announced
	Site    string `json:"site,omitempty"`
	Region  string `json:"region,omitempty"`
	Left    int64  `json:"left"`              // bytes left at its last announce
	Joined  int64  `json:"joined"`            // its first announce, unix milliseconds
	Gateway bool   `json:"gateway,omitempty"` // its site's gateway (see seeder/tracker); all of an open site's agents
	Trusted bool   `json:"trusted,omitempty"` // reachable from the requester over reported connections
}
