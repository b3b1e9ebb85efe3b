// Package tracker is swarmship's HTTP BitTorrent tracker: BEP 3 announce,
// BEP 23 compact peer lists, BEP 7 peers6 and BEP 48 scrape, made aware of
// who announces (tenant, site, region, role).
//
// Locality and isolation rules:
//   - Swarms are keyed by (tenant, infohash). Peers of another tenant are never
//     returned nor counted.
//   - Answers list same-site peers first, then same-region peers, then the
//     rest; each tier in random order so load spreads over the site.
//   - Agents announcing locality=gateway cross sites through one agent per
//     site and swarm, the site's gateway: its longest-announcing agent. The
//     gateway gets its own site's peers and the other sites' gateways;
//     every other agent gets only its own site's peers. Each piece then
//     crosses a site's WAN link about once instead of once per agent that
//     happens to ask a remote peer for it.
//   - Origin seeders (role "origin") are not given to agents, which fetch their
//     origin shard over HTTP; foreign clients (no role) do get them.
//   - A release restricted to some regions (SetAllowedRegions) is refused to
//     requesters outside those regions, and peers outside them are never stored
//     or returned.
//
// Every answer, including a refusal, is HTTP 200 with a bencoded body: a
// refusal carries "failure reason". That is the BitTorrent convention, and
// clients such as libtorrent only show the reason to the user on a 200 reply.
// Requests for other paths get 404, methods other than GET 405.
//
// Foreign clients announce with the .torrent's announce URL plus their own
// parameters, so a .torrent meant for tenant X should carry ?tenant=X in its
// announce URL; a client that sends no tenant lives in the "" tenant's swarm.
package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/swarmship/swarmship/internal/lograte"
)

// Config tunes the tracker. Zero values mean the defaults.
type Config struct {
	Interval time.Duration `yaml:"interval"`  // announce interval sent to clients; default 60s
	PeerTTL  time.Duration `yaml:"peer_ttl"`  // a peer that has not announced for this long is dropped; default 3*Interval
	MaxPeers int           `yaml:"max_peers"` // max peers per answer; default 50; numwant is honoured up to this

	// Caps against poisoning (see limits.go); 0 means the default, a
	// negative value no cap. An address is the announcer's IP, a token its
	// credential (Authorization header or token parameter), compared by
	// hash.
	MaxPeersPerAddress  int `yaml:"max_peers_per_address"`  // peers one address holds in one swarm; default 64
	MaxSwarmsPerAddress int `yaml:"max_swarms_per_address"` // swarms one address holds peers in; default 1024
	MaxPeersPerToken    int `yaml:"max_peers_per_token"`    // peers one token holds in one swarm; default 1024
	MaxSwarmsPerToken   int `yaml:"max_swarms_per_token"`   // swarms one token holds peers in; default 4096
	MaxTotalPeers       int `yaml:"max_total_peers"`        // peers stored in all; default 100000

	// TrustIPParam honours an announce's ip= when the request comes from
	// loopback (a relay or proxy on the origin's host that the operator
	// runs). Off: the peer address is always the request's remote address.
	TrustIPParam bool `yaml:"trust_ip_param"`
	// AllowUnknownInfoHashes lets the origin's tracker take announces for
	// infohashes that are not in its catalog (load benchmarks only).
	AllowUnknownInfoHashes bool `yaml:"allow_unknown_infohashes"`

	// SharedViewAge bounds how old an origin's copy of a swarm may get
	// when the swarms live in a Redis that several origins share (state:
	// redis): the copy is re-read when another origin changed the swarm's
	// membership or seed state, or when it is older than this; default 1s.
	SharedViewAge time.Duration `yaml:"shared_view_age"`
}

// Identity is who announced, taken from the announce URL's query parameters
// tenant, site, region and role. Agents put them in their announce URL; a
// foreign client such as aria2 sends none: tenant "", role "".
type Identity struct{ Tenant, Site, Region, Role string }

// Roles an announcer can claim.
const (
	RoleAgent  = "agent"
	RoleOrigin = "origin"
)

// Peer is one stored swarm member.
type Peer struct {
	ID                   [20]byte
	Addr                 netip.AddrPort
	Identity             Identity
	Left                 int64
	Uploaded, Downloaded int64
	LastSeen             time.Time
}

const (
	defaultInterval = 60 * time.Second
	defaultMaxPeers = 50
	// defaultSharedViewAge: a copy of a shared swarm is at most this old.
	defaultSharedViewAge = time.Second
	defaultNumWant       = 50
	// numShards spreads swarms over independent locks so announces for
	// different releases never contend. A shard holds every tenant's swarm of
	// one infohash, so residency changes touch one shard.
	numShards = 64
)

// Tracker is an http.Handler serving /announce and /scrape.
type Tracker struct {
	cfg      Config
	interval int64 // seconds, as sent to clients
	now      func() time.Time

	shards [numShards]shard

	// regions maps infohash to its allowed regions. Written rarely (when a
	// release is published) and read by every announce, so it is a
	// copy-on-write map behind an atomic pointer: readers take no lock.
	regions   atomic.Pointer[map[[20]byte]*regionSet]
	regionsMu sync.Mutex // serialises writers of regions

	authorize atomic.Pointer[func(*http.Request, Identity) error]
	// rendezvous is the origin's rendezvous peer (BEP 55), handed to site
	// gateways first in every answer; nil: none.
	rendezvous atomic.Pointer[netip.AddrPort]
	catalog    atomic.Pointer[catalogRef] // nil: any infohash
	lim        limits

	refusals lograte.Limiter // log lines of refused requests (the metric counts them all)
	log      *slog.Logger    // the origin's logger (SetLogger); slog.Default until set

	scratch sync.Pool // *scratch, per-request buffers
	m       metrics

	// quarantine and weights come from the origin (quarantine.go).
	quarantine atomic.Pointer[Quarantine]
	weights    atomic.Pointer[map[[20]byte]float64]

	// store is where the swarms live (memstore.go, redisstore.go); the
	// shards hold what answers read either way.
	store swarmStore
}

type shard struct {
	mu     sync.RWMutex
	byHash map[[20]byte]map[string]*swarm // infohash -> tenant -> swarm
	active map[string]int                 // tenant -> stored peers, for the gauge
	_      [64]byte                       // keep hot locks on separate cache lines
}

// swarm holds one (tenant, infohash) swarm's peers in a slice, which the
// answer scans in one pass, with an index by peer ID for O(1) update and
// swap-remove.
type swarm struct {
	peers      []entry
	index      map[[20]byte]int
	downloaded int64 // completed events while the swarm existed, for scrape
	// reports holds, per agent that sent one with its swarm view request,
	// the agents it is connected to (at most maxReport); see trust.go.
	reports map[[20]byte][][20]byte

	// Shared state only (redisstore.go): the swarm version the copy
	// reflects, when it was last read whole and when Redis last confirmed
	// that version, whether it must be re-read, and whether a request is
	// re-reading it.
	version          int64
	loaded, verified time.Time
	stale, loading   bool
}

// entry is a stored peer as the answer scan wants it: fixed size and free of
// string data. Site and region are interned handles, so the locality test is
// a pointer comparison instead of reading two strings per candidate from all
// over the heap; that scan is the tracker's hot loop.
type entry struct {
	seen       int64 // unix nanoseconds of the last announce
	joined     int64 // unix nanoseconds of the first announce; elects gateways
	left       int64
	site       unique.Handle[string]
	region     unique.Handle[string]
	addr       netip.AddrPort
	id         [20]byte
	role       uint8
	uploaded   int64
	downloaded int64
	tok        unique.Handle[string] // hash of the credential it announced with; noToken if none
}

const (
	roleNone uint8 = iota
	roleAgent
	roleOrigin
)

var roleNames = [...]string{roleNone: "", roleAgent: RoleAgent, roleOrigin: RoleOrigin}

func roleCode(role string) uint8 {
	switch role {
	case RoleAgent:
		return roleAgent
	case RoleOrigin:
		return roleOrigin
	}
	return roleNone
}

// peer expands e into the exported form.
func (e *entry) peer(tenant string) Peer {
	return Peer{
		ID:   e.id,
		Addr: e.addr,
		Identity: Identity{
			Tenant: tenant,
			Site:   e.site.Value(),
			Region: e.region.Value(),
			Role:   roleNames[e.role],
		},
		Left:       e.left,
		Uploaded:   e.uploaded,
		Downloaded: e.downloaded,
		LastSeen:   time.Unix(0, e.seen),
	}
}

// regionSet is an infohash's allowed regions, as names and as interned
// handles for the scan.
type regionSet struct {
	names   []string
	handles []unique.Handle[string]
}

func (rs *regionSet) allows(h unique.Handle[string]) bool {
	return rs == nil || slices.Contains(rs.handles, h)
}

// New returns a tracker with cfg's zero fields set to their defaults.
func New(cfg Config) *Tracker {
	cfg = cfg.withDefaults()
	t := &Tracker{
		cfg:      cfg,
		interval: max(1, int64(cfg.Interval/time.Second)),
		now:      time.Now,
		log:      slog.Default(),
	}
	t.lim.init(&t.cfg)
	for i := range t.shards {
		t.shards[i].byHash = make(map[[20]byte]map[string]*swarm)
		t.shards[i].active = make(map[string]int)
	}
	t.scratch.New = func() any { return new(scratch) }
	t.m = newMetrics(t)
	t.store = memStore{t}
	return t
}

// SetLogger sends the tracker's log lines to l (the origin's logger)
// instead of the process's default logger. Call it before serving.
func (t *Tracker) SetLogger(l *slog.Logger) {
	if l != nil {
		t.log = l
	}
}

// ErrUnauthenticated marks an Authorize error as "no credentials": the
// tracker answers 401 instead of 403.
var ErrUnauthenticated = errors.New("authentication required")

// Authorize installs a hook run for every announce and scrape after parsing
// and before anything is stored. An error refuses the request with the
// error's text as failure reason; nil f removes the hook.
// SetRendezvous makes every answer to a site's gateway (locality=gateway,
// not relay mode) start with ap, the origin's data-less rendezvous peer:
// gateways of NATed sites stay connected to it, and it introduces them to
// each other for hole punching.
func (t *Tracker) SetRendezvous(ap netip.AddrPort) {
	t.rendezvous.Store(&ap)
}

func (t *Tracker) Authorize(f func(r *http.Request, id Identity) error) {
	if f == nil {
		t.authorize.Store(nil)
		return
	}
	t.authorize.Store(&f)
}

// SetAllowedRegions restricts infoHash to regions (data residency); nil or
// empty lifts the restriction. Peers already stored outside the allowed
// regions are dropped at once.
func (t *Tracker) SetAllowedRegions(infoHash [20]byte, regions []string) {
	// Copy, dropping "": a foreign client has no region and must not match.
	var rs regionSet
	for _, r := range regions {
		if r != "" && !slices.Contains(rs.names, r) {
			rs.names = append(rs.names, r)
			rs.handles = append(rs.handles, unique.Make(r))
		}
	}

	t.regionsMu.Lock()
	next := make(map[[20]byte]*regionSet)
	if cur := t.regions.Load(); cur != nil {
		maps.Copy(next, *cur)
	}
	if len(rs.names) == 0 {
		delete(next, infoHash)
	} else {
		next[infoHash] = &rs
	}
	t.regions.Store(&next)
	t.regionsMu.Unlock()

	if len(rs.names) == 0 {
		return
	}
	sh := t.shard(infoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for tenant, sw := range sh.byHash[infoHash] {
		t.filter(sh, infoHash, tenant, sw, func(e *entry) bool { return rs.allows(e.region) })
	}
}

// allowedRegions returns infoHash's residency rule, nil when unrestricted.
func (t *Tracker) allowedRegions(infoHash [20]byte) *regionSet {
	m := t.regions.Load()
	if m == nil {
		return nil
	}
	return (*m)[infoHash]
}

// Peers returns the live peers of infoHash across all tenants (Identity tells
// them apart), sorted by ID. Peers past PeerTTL are left out even before the
// sweep removes them.
func (t *Tracker) Peers(infoHash [20]byte) []Peer {
	t.refreshAll(infoHash)
	cutoff := t.cutoff()
	sh := t.shard(infoHash)
	sh.mu.RLock()
	var out []Peer
	for tenant, sw := range sh.byHash[infoHash] {
		for i := range sw.peers {
			if sw.peers[i].seen >= cutoff {
				out = append(out, sw.peers[i].peer(tenant))
			}
		}
	}
	sh.mu.RUnlock()
	slices.SortFunc(out, func(a, b Peer) int {
		if c := bytes.Compare(a.ID[:], b.ID[:]); c != 0 {
			return c
		}
		return strings.Compare(a.Identity.Tenant, b.Identity.Tenant)
	})
	return out
}

// refreshAll brings this origin's copies of every tenant's swarm of
// infoHash up to date (shared state), including swarms only other origins
// have seen; a failure keeps the copies as they are.
func (t *Tracker) refreshAll(infoHash [20]byte) {
	rs, ok := t.store.(*redisStore)
	if !ok {
		return
	}
	ctx := context.Background()
	tenants, err := rs.tenants(ctx, infoHash)
	if err != nil {
		return
	}
	// And the swarms this origin holds copies of, which a Redis that lost
	// its data no longer lists: reading them is what notices the loss.
	sh := t.shard(infoHash)
	sh.mu.RLock()
	for tenant := range sh.byHash[infoHash] {
		if !slices.Contains(tenants, tenant) {
			tenants = append(tenants, tenant)
		}
	}
	sh.mu.RUnlock()
	for _, tenant := range tenants {
		_ = t.store.fresh(ctx, infoHash, tenant)
	}
}

// Run sweeps expired peers every half PeerTTL (at least once a second) until
// ctx is done. Answers skip stale peers without it; the sweep bounds memory
// and keeps the active-peers gauge honest.
func (t *Tracker) Run(ctx context.Context) {
	every := max(t.cfg.PeerTTL/2, time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.sweep()
		}
	}
}

// sweep removes every peer not seen for PeerTTL, and every swarm whose
// infohash the catalog no longer lists for its tenant, and drops empty
// swarms.
func (t *Tracker) sweep() {
	cutoff := t.cutoff()
	cat := t.catalog.Load()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ih, tenants := range sh.byHash {
			for tenant, sw := range tenants {
				if cat != nil && !cat.c.Allows(tenant, ih) {
					t.filter(sh, ih, tenant, sw, func(*entry) bool { return false })
					continue
				}
				t.filter(sh, ih, tenant, sw, func(e *entry) bool { return e.seen >= cutoff })
			}
		}
		sh.mu.Unlock()
	}
}

// cutoff is the oldest last-announce time (unix ns) of a live peer.
func (t *Tracker) cutoff() int64 {
	return t.now().Add(-t.cfg.PeerTTL).UnixNano()
}

func (t *Tracker) shard(infoHash [20]byte) *shard {
	// Infohashes are SHA-1 output, so any 8 bytes are uniformly spread.
	return &t.shards[binary.LittleEndian.Uint64(infoHash[:8])%numShards]
}
