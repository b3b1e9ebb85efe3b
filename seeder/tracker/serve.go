package tracker

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/anacrolix/torrent/bencode"

	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/report"
)

// Shared header value: assigning a preallocated slice avoids an allocation
// per answer (net/http only reads it).
var textPlain = []string{"text/plain"}

// Refusal reasons, used as the metric label.
const (
	reasonMalformed    = "malformed"
	reasonUnauthorized = "unauthorized"
	reasonResidency    = "residency"
)

// Locality tiers of a candidate peer relative to the requester.
const (
	tierSite = iota
	tierRegion
	tierOther
	numTiers
)

// ServeHTTP answers /announce and /scrape, matched as path suffixes so the
// tracker can be mounted under any prefix. Other paths get 404.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var serve func(http.ResponseWriter, *http.Request)
	switch {
	case p == "announce" || strings.HasSuffix(p, "/announce"):
		serve = t.serveAnnounce
	case p == "scrape" || strings.HasSuffix(p, "/scrape"):
		serve = t.serveScrape
	case strings.HasSuffix(p, "/"+report.SwarmPath):
		serve = t.serveSwarm
	default:
		http.NotFound(w, r)
		return
	}
	// GET only: an announce changes the swarm, so HEAD (a "safe" method that
	// caches and link checkers send freely) must not store peers.
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	serve(w, r)
}

func (t *Tracker) serveAnnounce(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // wall clock on purpose: latency, not peer age
	defer func() { t.m.latency.Observe(time.Since(start).Seconds()) }()

	a, err := parseAnnounce(r.URL.RawQuery)
	if err != nil {
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	}
	addr, err := peerAddr(r.RemoteAddr, &a, t.cfg.TrustIPParam)
	if err != nil {
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	}
	allowed, ok := t.admit(w, r, &a)
	if !ok {
		return
	}
	if q := t.quarantine.Load(); q != nil {
		probe := entry{id: a.peerID, addr: addr}
		if q.has(&probe, a.id.Tenant) {
			t.refuse(w, r, &a, reasonQuarantined, errors.New("peer is quarantined by the operator"))
			return
		}
	}
	if a.relay {
		// A relay-mode agent's address is never stored, so no answer,
		// swarm view or dashboard can hand it out: its handle stands in.
		addr = relay.HandleFor(a.id.Tenant, a.peerID)
	}

	now := t.now().UnixNano()
	a.site, a.region = unique.Make(a.id.Site), unique.Make(a.id.Region)
	sh := t.shard(a.infoHash)
	want := t.cfg.MaxPeers
	if a.numWant >= 0 {
		want = min(a.numWant, want)
	} else {
		want = min(defaultNumWant, want)
	}
	e := entry{
		seen:       now,
		left:       a.left,
		site:       a.site,
		region:     a.region,
		addr:       addr,
		id:         a.peerID,
		role:       roleCode(a.id.Role),
		uploaded:   a.uploaded,
		downloaded: a.downloaded,
		tok:        credentialOf(r.Header.Get("Authorization"), a.token),
	}
	stopped := a.event == eventStopped
	if stopped {
		want = 0 // a departing peer needs no peers
	}
	if reason, err := t.store.put(r.Context(), a.infoHash, a.id.Tenant, &e, stopped, a.event == eventCompleted, now-int64(t.cfg.PeerTTL)); err != nil {
		t.refuse(w, r, &a, reason, err)
		return
	}
	if !stopped {
		// Shared state: another origin may have changed the swarm; an
		// error keeps the copy this origin has.
		_ = t.store.fresh(r.Context(), a.infoHash, a.id.Tenant)
	}
	t.m.announce(a.event)

	s := t.scratch.Get().(*scratch)
	s.out = t.answer(s, sh, &a, addr, allowed, now, want)
	w.Header()["Content-Type"] = textPlain
	_, _ = w.Write(s.out)
	t.scratch.Put(s)
}

// admit runs the authorization hook and the release's residency rule for
// an announce or a swarm view of a.infoHash. It refuses the request itself
// and returns false, or returns the allowed regions (nil: unrestricted).
func (t *Tracker) admit(w http.ResponseWriter, r *http.Request, a *announce) (*regionSet, bool) {
	if f := t.authorize.Load(); f != nil {
		if err := (*f)(r, a.id); err != nil {
			t.refuse(w, r, a, reasonUnauthorized, err)
			return nil, false
		}
	}
	// After authorization: an unauthenticated client learns nothing about
	// which infohashes exist. Nothing is stored for an unknown one.
	if !t.known(r.Context(), a.id.Tenant, a.infoHash) {
		t.refuse(w, r, a, reasonUnknown, errors.New("unknown info_hash"))
		return nil, false
	}
	allowed := t.allowedRegions(a.infoHash)
	if allowed != nil && !slices.Contains(allowed.names, a.id.Region) {
		t.refuse(w, r, a, reasonResidency, residencyError(a.id.Region))
		return nil, false
	}
	return allowed, true
}

func residencyError(region string) error {
	if region == "" {
		return errors.New("release not allowed in region (none given)")
	}
	return fmt.Errorf("release not allowed in region %s", region)
}

// scratch holds one answer's working buffers; pooled so a steady stream of
// announces allocates nothing for them.
type scratch struct {
	gw      map[siteKey]int // gateway-mode answers: each site's gateway, as an index into swarm.peers, or openSite
	trusted []bool          // per swarm.peers index: trusted by the requester (trust.go)
	queue   []int
	res     [numTiers][]int     // indices into swarm.peers, one reservoir per tier
	keys    [numTiers][]float64 // weighted answers: each reservoir entry's key (quarantine.go)
	seen    [numTiers]int       // candidates offered per tier
	rng     uint64              // wyrand state, seeded per answer
	v4, v6  []byte
	out     []byte
}

// intn returns a pseudo-random int in [0, n). The reservoir draws one per
// candidate beyond the first few, so this is wyrand with Lemire's
// multiply-shift bound (a few ns) rather than the ChaCha8 generator behind
// math/rand/v2 (seeded from it). Placement order needs no crypto strength,
// and the bias for n far below 2^32 is negligible.
func (s *scratch) intn(n int) int {
	s.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(s.rng, s.rng^0xe7037ed1a0b428db)
	x := hi ^ lo
	return int((x >> 32) * uint64(n) >> 32)
}

// offer adds candidate i to tier's reservoir of size n (Algorithm R): after
// the pass every candidate of the tier had the same chance to be kept, with
// O(n) memory and no sort of the whole swarm.
func (s *scratch) offer(tier, i, n int) {
	s.seen[tier]++
	if len(s.res[tier]) < n {
		s.res[tier] = append(s.res[tier], i)
		return
	}
	if j := s.intn(s.seen[tier]); j < n {
		s.res[tier][j] = i
	}
}

// sameID compares peer IDs 8 bytes at a time; the first load almost always
// differs, which beats a general memequal call in the hot loop.
// siteKey names a site; site names are unique within a region.
type siteKey struct{ site, region unique.Handle[string] }

var noSite = unique.Make("")

// electGateways fills s.gw with each site's gateway among peers: the live
// agent that has announced longest (lowest peer ID on a tie). The oldest
// member is a stable choice: agents that join later do not move it, so a
// site does not end up with two agents holding WAN connections. With
// trusted (the requester's point of view, see trust.go) only trusted agents
// are elected, and a site without any is open.
func electGateways(s *scratch, peers []entry, cutoff int64, allowed *regionSet, trusted []bool, slow map[[20]byte]bool) {
	if s.gw == nil {
		s.gw = make(map[siteKey]int)
	}
	clear(s.gw)
	for i := range peers {
		p := &peers[i]
		if !electable(p, cutoff, allowed) {
			continue
		}
		k := siteKey{p.site, p.region}
		g, ok := s.gw[k]
		s.gw[k] = elect(peers, trusted, slow, i, g, ok)
	}
}

// electSite is electGateways for one site only: its gateway as an index
// into peers, or openSite, and whether the site has live agents at all.
// A requester that is not its site's gateway needs nothing more, and this
// pass costs no map operation per peer (the full election was 44% of an
// announce in BenchmarkAnnounceGateway).
func electSite(peers []entry, cutoff int64, allowed *regionSet, trusted []bool, slow map[[20]byte]bool, k siteKey) (g int, ok bool) {
	for i := range peers {
		p := &peers[i]
		if p.site != k.site || p.region != k.region || !electable(p, cutoff, allowed) {
			continue
		}
		g, ok = elect(peers, trusted, slow, i, g, ok), true
	}
	return g, ok
}

// electable tells whether p takes part in its site's gateway election.
func electable(p *entry, cutoff int64, allowed *regionSet) bool {
	return p.seen >= cutoff && p.role == roleAgent && p.site != noSite && allowed.allows(p.region)
}

// elect is one step of a site's election: candidate i against the site's
// gateway so far (g, if ok), returning the new one. An agent that is not
// slow (SetSlow: its configured upload limit is far below its peers'
// capacity) beats a slow one whatever their age.
func elect(peers []entry, trusted []bool, slow map[[20]byte]bool, i, g int, ok bool) int {
	p := &peers[i]
	switch {
	case trusted != nil && !trusted[i]:
		if !ok {
			return openSite
		}
		return g
	case !ok || g == openSite:
		return i
	}
	if pc, gc := !slow[p.id], !slow[peers[g].id]; pc != gc {
		if pc {
			return i
		}
		return g
	}
	if p.joined < peers[g].joined || (p.joined == peers[g].joined && bytes.Compare(p.id[:], peers[g].id[:]) < 0) {
		return i
	}
	return g
}

func sameID(a, b *[20]byte) bool {
	return binary.LittleEndian.Uint64(a[:8]) == binary.LittleEndian.Uint64(b[:8]) &&
		binary.LittleEndian.Uint64(a[8:16]) == binary.LittleEndian.Uint64(b[8:16]) &&
		binary.LittleEndian.Uint32(a[16:]) == binary.LittleEndian.Uint32(b[16:])
}

// answer picks up to want peers for the requester in one pass over the swarm
// and encodes the reply into s.out.
func (t *Tracker) answer(s *scratch, sh *shard, a *announce, self netip.AddrPort, allowed *regionSet, now int64, want int) []byte {
	for i := range s.res {
		s.res[i] = s.res[i][:0]
		s.keys[i] = s.keys[i][:0]
		s.seen[i] = 0
	}
	weights := t.weightMap()
	slow := t.slowSet()
	quarantine := t.quarantine.Load()
	s.v4, s.v6 = s.v4[:0], s.v6[:0]
	s.rng = rand.Uint64()

	cutoff := now - int64(t.cfg.PeerTTL)
	reqSeeder := a.left == 0
	reqAgent := a.id.Role == RoleAgent
	// The origin's seeder waits for foreign clients to dial it; handing it
	// agents would make it dial them and become an equal source for them.
	reqOrigin := a.id.Role == RoleOrigin
	// A requester without a region has no locality: other peers' empty
	// values must not count as "same region". A site is named within its
	// region, so same site means same region and same site.
	hasRegion, hasSite := a.id.Region != "", a.id.Region != "" && a.id.Site != ""
	var complete, incomplete int64
	maxTier := a.locality // farthest tier that can still reach the answer

	sh.mu.RLock()
	defer sh.mu.RUnlock()
	var peers []entry
	sw := sh.byHash[a.infoHash][a.id.Tenant]
	if sw != nil {
		peers = sw.peers
	}
	// In gateway mode, find each site's gateway first; the requester sees
	// other sites only if it is its own site's gateway.
	gatewayMode := a.gateway && reqAgent && a.id.Site != ""
	var isGateway bool
	var trusted []bool
	if gatewayMode {
		if personal(s, sw, a.peerID, cutoff) {
			trusted = s.trusted
		}
		g, ok := electSite(peers, cutoff, allowed, trusted, slow, siteKey{a.site, a.region})
		isGateway = !ok || g == openSite || sameID(&peers[g].id, &a.peerID)
		if isGateway {
			// Only a gateway sees other sites, through their gateways.
			electGateways(s, peers, cutoff, allowed, trusted, slow)
		}
	}
	for i := range peers {
		p := &peers[i]
		if p.seen < cutoff {
			continue // stale; the sweep will remove it
		}
		if allowed != nil && !allowed.allows(p.region) {
			continue
		}
		if p.left == 0 {
			complete++
		} else {
			incomplete++
		}
		switch {
		case want == 0,
			p.addr == self, sameID(&p.id, &a.peerID), // never the requester itself
			reqSeeder && p.left == 0,         // seeders have nothing to give each other
			reqAgent && p.role == roleOrigin, // agents shard the origin over HTTP
			reqOrigin && p.role == roleAgent,
			// Relay-mode agents meet only each other, by handle: no real
			// address reaches them, and no one else gets a handle.
			a.relay != relay.IsHandle(p.addr),
			quarantine.has(p, a.id.Tenant): // stored by another origin before it was quarantined
			continue
		}
		tier := tierOther
		if hasRegion && p.region == a.region {
			tier = tierRegion
			if hasSite && p.site == a.site {
				tier = tierSite
			}
		}
		if gatewayMode {
			if p.site == a.site && p.region == a.region {
				tier = tierSite
			} else if !isGateway || (p.site != noSite && !s.gateway(siteKey{p.site, p.region}, i)) {
				// Only gateways cross sites, and only to other gateways
				// (or to peers that belong to no site).
				continue
			}
			// From the requester's point of view, the agents it trusts
			// come first, then its site, then the rest: fakes that slip
			// under the caps do not crowd out the real agents.
			if trusted != nil {
				switch {
				case trusted[i]:
					tier = tierSite
				case tier == tierSite:
					tier = tierRegion
				default:
					tier = tierOther
				}
			}
		}
		// Once the nearer tiers have had want candidates, farther tiers can
		// no longer reach the answer; skipping them saves the random draws.
		if tier <= maxTier {
			if weights != nil {
				s.offerWeighted(tier, i, want, weightOf(weights, p.id))
			} else {
				s.offer(tier, i, want)
			}
			switch {
			case s.seen[tierSite] >= want:
				maxTier = tierSite
			case s.seen[tierSite]+s.seen[tierRegion] >= want:
				maxTier = tierRegion
			}
		}
	}

	// Reservoirs are filled in swarm order at first; shuffle each tier so
	// the same few peers are not always at the head of every answer.
	if weights != nil {
		s.orderWeighted()
	} else {
		for _, res := range s.res {
			for i := len(res) - 1; i > 0; i-- {
				j := s.intn(i + 1)
				res[i], res[j] = res[j], res[i]
			}
		}
	}

	out := s.out[:0]
	out = append(out, 'd')
	out = appendKeyInt(out, "complete", complete)
	out = appendKeyInt(out, "incomplete", incomplete)
	out = appendKeyInt(out, "interval", t.interval)
	out = appendKeyInt(out, "min interval", max(1, t.interval/2))
	// A site's gateway gets the rendezvous peer first, within want.
	var rz *netip.AddrPort
	if gatewayMode && isGateway && !a.relay && want > 0 {
		rz = t.rendezvous.Load()
	}
	if a.compact {
		n := 0
		if rz != nil {
			n++
			if ip := rz.Addr(); ip.Is4() {
				b := ip.As4()
				s.v4 = append(s.v4, b[:]...)
				s.v4 = append(s.v4, byte(rz.Port()>>8), byte(rz.Port()))
			} else {
				b := ip.As16()
				s.v6 = append(s.v6, b[:]...)
				s.v6 = append(s.v6, byte(rz.Port()>>8), byte(rz.Port()))
			}
		}
		for _, res := range s.res {
			for _, i := range res {
				if n == want {
					break
				}
				n++
				ap := peers[i].addr
				if ip := ap.Addr(); ip.Is4() {
					b := ip.As4()
					s.v4 = append(s.v4, b[:]...)
					s.v4 = append(s.v4, byte(ap.Port()>>8), byte(ap.Port()))
				} else {
					b := ip.As16()
					s.v6 = append(s.v6, b[:]...)
					s.v6 = append(s.v6, byte(ap.Port()>>8), byte(ap.Port()))
				}
			}
		}
		out = appendString(out, "peers")
		out = appendString(out, s.v4)
		out = appendString(out, "peers6")
		out = appendString(out, s.v6)
	} else {
		// BEP 3 original form: one list of dicts, IPv4 and IPv6 alike.
		out = appendString(out, "peers")
		out = append(out, 'l')
		n := 0
		if rz != nil {
			n++
			out = append(out, 'd')
			out = appendString(out, "ip")
			out = appendString(out, rz.Addr().String())
			out = appendKeyInt(out, "port", int64(rz.Port()))
			out = append(out, 'e')
		}
		for _, res := range s.res {
			for _, i := range res {
				if n == want {
					break
				}
				n++
				p := &peers[i]
				out = append(out, 'd')
				out = appendString(out, "ip")
				out = appendString(out, p.addr.Addr().String())
				if !a.noPeerID {
					out = appendString(out, "peer id")
					out = appendString(out, p.id[:])
				}
				out = appendKeyInt(out, "port", int64(p.addr.Port()))
				out = append(out, 'e')
			}
		}
		out = append(out, 'e')
	}
	return append(out, 'e')
}

// The success answer is encoded by hand: it is the hot path (thousands per
// second) and bencode.Marshal's reflection costs allocations per call. Keys
// are written in sorted order as bencode requires; tests decode every answer
// with bencode.Unmarshal to keep this honest.

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendKeyInt(b []byte, key string, v int64) []byte {
	b = appendString(b, key)
	b = append(b, 'i')
	b = strconv.AppendInt(b, v, 10)
	return append(b, 'e')
}

// scrapeFile is one BEP 48 entry.
type scrapeFile struct {
	Complete   int64 `bencode:"complete"`
	Downloaded int64 `bencode:"downloaded"`
	Incomplete int64 `bencode:"incomplete"`
}

// serveScrape answers BEP 48 scrapes. At least one info_hash is required:
// an unrestricted scrape would list every swarm of every tenant. Counts are
// the requester's tenant only; a release the requester's region may not
// have is left out as if unknown.
func (t *Tracker) serveScrape(w http.ResponseWriter, r *http.Request) {
	var a announce // only for refusal log fields
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		t.refuse(w, r, &a, reasonMalformed, errors.New("malformed query"))
		return
	}
	if a.id, err = parseIdentity(q); err != nil {
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	}
	hashes := q["info_hash"]
	switch {
	case len(hashes) == 0:
		t.refuse(w, r, &a, reasonMalformed, errors.New("scrape requires at least one info_hash"))
		return
	case len(hashes) > maxScrapeList:
		t.refuse(w, r, &a, reasonMalformed, fmt.Errorf("scrape of more than %d info_hash values", maxScrapeList))
		return
	}
	for _, h := range hashes {
		if len(h) != 20 {
			t.refuse(w, r, &a, reasonMalformed, fmt.Errorf("invalid info_hash: %d bytes, want 20", len(h)))
			return
		}
	}
	copy(a.infoHash[:], hashes[0])
	if f := t.authorize.Load(); f != nil {
		if err := (*f)(r, a.id); err != nil {
			t.refuse(w, r, &a, reasonUnauthorized, err)
			return
		}
	}
	t.m.scrapes.Inc()

	cutoff := t.cutoff()
	files := make(map[string]scrapeFile, len(hashes))
	var stateErr error
	for _, h := range hashes {
		var ih [20]byte
		copy(ih[:], h)
		if !t.known(r.Context(), a.id.Tenant, ih) {
			continue // as if unknown: no answer, nothing stored
		}
		allowed := t.allowedRegions(ih)
		if allowed != nil && !slices.Contains(allowed.names, a.id.Region) {
			continue
		}
		var f scrapeFile
		if stateErr == nil {
			// Shared state away: the rest answer from the copies
			// rather than wait for each in turn.
			stateErr = t.store.fresh(r.Context(), ih, a.id.Tenant)
		}
		sh := t.shard(ih)
		sh.mu.RLock()
		if sw := sh.byHash[ih][a.id.Tenant]; sw != nil {
			f.Downloaded = sw.downloaded
			for i := range sw.peers {
				p := &sw.peers[i]
				if p.seen < cutoff || !allowed.allows(p.region) {
					continue
				}
				if p.left == 0 {
					f.Complete++
				} else {
					f.Incomplete++
				}
			}
		}
		sh.mu.RUnlock()
		files[h] = f
	}
	body, err := bencode.Marshal(struct {
		Files map[string]scrapeFile `bencode:"files"`
	}{files})
	if err != nil { // cannot happen for these types; refuse rather than send junk
		t.refuse(w, r, &a, reasonMalformed, err)
		return
	}
	w.Header()["Content-Type"] = textPlain
	_, _ = w.Write(body)
}

// refuse answers with a bencoded failure reason (HTTP 200, see the package
// comment) and logs why. Nothing has been stored when it is called.
func (t *Tracker) refuse(w http.ResponseWriter, r *http.Request, a *announce, reason string, err error) {
	t.m.refusals.WithLabelValues(reason).Inc()
	if ok, dropped := t.refusals.Allow(time.Now()); ok {
		t.log.Warn("tracker refused request",
			"reason", reason,
			"infohash", hex.EncodeToString(a.infoHash[:]),
			"tenant", a.id.Tenant,
			"site", a.id.Site,
			"peer", r.RemoteAddr,
			"err", err,
			"unlogged_before", dropped)
	}
	body, merr := bencode.Marshal(map[string]string{"failure reason": err.Error()})
	if merr != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = textPlain
	if reason == reasonUnauthorized {
		// Clients treat any non-200 as a failed announce; the status
		// tells operators and proxies what happened.
		code := http.StatusForbidden
		if errors.Is(err, ErrUnauthenticated) {
			code = http.StatusUnauthorized
		}
		w.WriteHeader(code)
	}
	_, _ = w.Write(body)
}
