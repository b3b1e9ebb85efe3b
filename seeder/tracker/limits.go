package tracker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"unique"
)

// Caps against tracker poisoning. Without them one client with one address
// (or one valid site token) stored 10,000 fake peers in 4 s and filled
// every answer with them.
//
// Bounds: at most MaxTotalPeers peers in all. Each peer costs its entry in
// the swarm slice, its index entry, one count in its address's and its
// token's table and, for an agent that reports its connections, up to
// maxReport IDs: measured at about 1.5 KiB per peer at worst (every peer
// from its own address, every report full; TestMemoryPerPeer), so about
// 150 MiB at the default 100,000 peers. Every table here has at most one
// entry per stored peer, so the bound holds for them too. Refused
// announces (caps, unknown infohashes) store nothing.
const (
	defaultPeersPerAddress  = 64
	defaultSwarmsPerAddress = 1024
	defaultPeersPerToken    = 1024
	defaultSwarmsPerToken   = 4096
	defaultTotalPeers       = 100000
)

// Refusal reasons (metric labels) for the caps and the catalog check.
const (
	reasonPeerID  = "peer_id_bound"
	reasonCap     = "cap"
	reasonUnknown = "unknown_infohash"
	reasonState   = "state_unavailable" // the shared state (Redis) did not answer
)

// capOr turns a configured cap into the one in force: 0 is the default, a
// negative value no cap (represented as 0 from here on).
func capOr(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// noToken is the credential of announces that carry none.
var noToken = unique.Make("")

// credential returns a handle for the request's credential: a hash of the
// bearer token or token parameter, never the token itself (entries live for
// minutes and may be dumped).
func credential(r *http.Request) unique.Handle[string] {
	if h := r.Header.Get("Authorization"); h != "" {
		return credentialOf(h, "")
	}
	return credentialOf("", r.URL.Query().Get("token"))
}

// credentialOf is credential for an Authorization header value and a token
// parameter already parsed (parseAnnounce keeps the query's first token=).
func credentialOf(authorization, tokenParam string) unique.Handle[string] {
	tok := tokenParam
	if authorization != "" {
		tok = strings.TrimSpace(strings.TrimPrefix(authorization, "Bearer "))
	}
	if tok == "" {
		return noToken
	}
	sum := sha256.Sum256([]byte(tok))
	return unique.Make(string(sum[:16]))
}

// swarmKey names one (tenant, infohash) swarm.
type swarmKey struct {
	infoHash [20]byte
	tenant   string
}

// usage counts one address's or token's peers per swarm.
type usage map[swarmKey]int

// limits enforces the caps. One mutex for all shards: it is taken only
// when a peer is added or removed, not for a re-announce.
type limits struct {
	cfg *Config

	mu    sync.Mutex
	total int
	addrs map[netip.Addr]usage
	toks  map[unique.Handle[string]]usage
}

func (l *limits) init(cfg *Config) {
	l.cfg = cfg
	l.addrs = make(map[netip.Addr]usage)
	l.toks = make(map[unique.Handle[string]]usage)
}

// acquire counts a new peer of addr and tok in the swarm, or says which cap
// it would break.
func (l *limits) acquire(infoHash [20]byte, tenant string, addr netip.Addr, tok unique.Handle[string]) (string, error) {
	k := swarmKey{infoHash, tenant}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.cfg.MaxTotalPeers; c > 0 && l.total >= c {
		return reasonCap, fmt.Errorf("tracker full (%d peers)", c)
	}
	au := l.addrs[addr]
	if err := check(au, k, l.cfg.MaxPeersPerAddress, l.cfg.MaxSwarmsPerAddress, "address"); err != nil {
		return reasonCap, err
	}
	var tu usage
	if tok != noToken {
		tu = l.toks[tok]
		if err := check(tu, k, l.cfg.MaxPeersPerToken, l.cfg.MaxSwarmsPerToken, "token"); err != nil {
			return reasonCap, err
		}
	}
	if au == nil {
		au = usage{}
		l.addrs[addr] = au
	}
	au[k]++
	if tok != noToken {
		if tu == nil {
			tu = usage{}
			l.toks[tok] = tu
		}
		tu[k]++
	}
	l.total++
	return "", nil
}

func check(u usage, k swarmKey, maxPeers, maxSwarms int, what string) error {
	n, in := u[k]
	switch {
	case maxPeers > 0 && n >= maxPeers:
		return fmt.Errorf("too many peers from this %s in this swarm (cap %d)", what, maxPeers)
	case !in && maxSwarms > 0 && len(u) >= maxSwarms:
		return fmt.Errorf("too many swarms from this %s (cap %d)", what, maxSwarms)
	}
	return nil
}

// release undoes acquire for a peer that leaves.
func (l *limits) release(infoHash [20]byte, tenant string, addr netip.Addr, tok unique.Handle[string]) {
	k := swarmKey{infoHash, tenant}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	dec(l.addrs, addr, k)
	if tok != noToken {
		dec(l.toks, tok, k)
	}
}

func dec[K comparable](m map[K]usage, key K, k swarmKey) {
	u := m[key]
	if u == nil {
		return
	}
	if u[k]--; u[k] <= 0 {
		delete(u, k)
	}
	if len(u) == 0 {
		delete(m, key)
	}
}

// Catalog tells the tracker which infohashes a tenant may use: those of
// the releases in the signed catalog that the tenant can see. Allows is
// called for every announce, scrape and swarm view and under the tracker's
// locks, so it must be cheap and do no I/O.
type Catalog interface {
	Allows(tenant string, infoHash [20]byte) bool
}

// Reloader is a Catalog that can re-read the catalog when asked about an
// infohash it does not know (an agent may see a release before the
// origin's next periodic refresh, and a refused announce is retried only a
// minute later). Reload reports whether it re-read anything; it must limit
// itself (say once a second), since hostile clients send unknown
// infohashes at will.
type Reloader interface {
	Reload(ctx context.Context) bool
}

type catalogRef struct{ c Catalog }

// SetCatalog makes the tracker refuse infohashes c does not allow, and
// drops the swarms it no longer allows; call it again when the catalog
// changes. nil accepts any infohash (a bare tracker, as in tests).
func (t *Tracker) SetCatalog(c Catalog) {
	if c == nil {
		t.catalog.Store(nil)
		return
	}
	t.catalog.Store(&catalogRef{c})
	t.CatalogChanged()
}

// CatalogChanged drops the swarms whose infohash the catalog no longer
// allows for their tenant (a yanked or expired release).
func (t *Tracker) CatalogChanged() {
	cat := t.catalog.Load()
	if cat == nil {
		return
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ih, tenants := range sh.byHash {
			for tenant, sw := range tenants {
				if !cat.c.Allows(tenant, ih) {
					t.filter(sh, ih, tenant, sw, func(*entry) bool { return false })
				}
			}
		}
		sh.mu.Unlock()
	}
}

// known reports whether tenant may use infoHash, giving the catalog one
// chance to reload on a miss.
func (t *Tracker) known(ctx context.Context, tenant string, infoHash [20]byte) bool {
	cat := t.catalog.Load()
	if cat == nil || cat.c.Allows(tenant, infoHash) {
		return true
	}
	if r, ok := cat.c.(Reloader); ok && r.Reload(ctx) {
		return cat.c.Allows(tenant, infoHash)
	}
	return false
}

// Stored returns the number of peers stored (live or awaiting the sweep).
func (t *Tracker) Stored() int {
	t.lim.mu.Lock()
	defer t.lim.mu.Unlock()
	return t.lim.total
}
