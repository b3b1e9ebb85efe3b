package agent

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/btclient"
)

// Origin offload.
//
// The origin should send each byte about once per swarm, not once per
// agent. The torrent library cannot prefer one peer over another, and its
// own web seed competes as an equal source, so agents never use either for
// the origin. Instead each agent fetches from the origin (HTTP range
// requests on the catalog's payload) only the pieces it owns, and takes
// everything else from peers.
//
// Ownership is decided over the swarm's live members: the agent itself,
// every connected swarmship agent that is making progress, and the agents
// the tracker lists that this one is not connected to. A piece goes first
// to a site, evenly (see shardplan.go), then to the member of that site
// that ranks first for it under rendezvous hashing. Each agent computes
// the same owner for a piece from the same member set, so the shards are
// disjoint; when a member leaves or stalls, only its pieces move, to the
// next-ranked member of its site. An agent alone owns every piece, which
// is the fallback when no peer is reachable.

// pieceScore is the rendezvous weight of a member for one piece.
func pieceScore(infoHash [20]byte, member [20]byte, piece int) uint64 {
	h := fnv.New64a()
	h.Write(infoHash[:])
	h.Write(member[:])
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(piece))
	h.Write(b[:])
	// FNV mixes its last bytes poorly; finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// outranks orders two members' scores for one piece: the higher score wins,
// the higher ID on a tie, so every agent picks the same owner.
func outranks(s1 uint64, m1 [20]byte, s2 uint64, m2 [20]byte) bool {
	return s1 > s2 || (s1 == s2 && string(m1[:]) > string(m2[:]))
}

// pieceOwner is the member that owns piece p. members must not be empty.
func pieceOwner(infoHash [20]byte, members [][20]byte, piece int) [20]byte {
	best, bestScore := members[0], pieceScore(infoHash, members[0], piece)
	for _, m := range members[1:] {
		if s := pieceScore(infoHash, m, piece); outranks(s, m, bestScore, best) {
			best, bestScore = m, s
		}
	}
	return best
}

// ownsPiece reports whether self has the highest score among members.
func ownsPiece(infoHash, self [20]byte, members [][20]byte, piece int) bool {
	mine := pieceScore(infoHash, self, piece)
	for _, m := range members {
		if m != self && outranks(pieceScore(infoHash, m, piece), m, mine, self) {
			return false
		}
	}
	return true
}

// listMaxAge is how old the tracker's member list may be before the
// offloader falls back to its own connections.
const listMaxAge = 45 * time.Second

// tentativeHold is how long after the offload starts the tracker's
// tentative members (swarmWatcher.tentativeMembers: our site's agents we
// have no connection with yet, open sites' agents) hold shards, so that
// their share is left to them instead of being fetched twice. On a loaded
// machine, connections and trust took longer than the startup grace; sites
// (and agents of one site) sharded alone and the origin sent up to 1.55
// copies (e2e TestSwarmFiveAgentsOriginSendsAboutOneCopy). Bounded, because
// fakes stay open and killed agents stay listed: after it, their pieces
// move to members we are connected to or trust, as without the hold.
const tentativeHold = 10 * time.Second

// suspectFor is how long a listed agent whose shard seemed orphaned holds
// no shard; maxSuspectScan bounds the pieces examined to find such agents.
const (
	suspectFor     = 2 * time.Minute
	maxSuspectScan = 512
)

// rangeSource reads payload bytes from where the catalog keeps them.
type rangeSource interface {
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// errOffloadPaused ends a fetch that a pause overtook; it is not a failure.
var errOffloadPaused = errors.New("origin fetch stopped: release paused")

// offloader fetches a download's owned pieces from the origin.
type offloader struct {
	t       *torrent.Torrent
	m       *catalog.Manifest
	src     rangeSource
	limiter *rate.Limiter
	// pacer holds this agent's origin fetches to its part of the site's
	// origin share (see pace); nil without offload.site_wan_down.
	pacer *rate.Limiter
	cfg   OffloadConfig
	self  [20]byte
	watch *swarmWatcher // the tracker's member list; nil: connections only
	// roster, if set, is the release's roster on the tenant's DHT (see
	// rosterMembers), used while no tracker's list is fresh. The agent is
	// on it from the start (joinRoster ran); it leaves while a tracker's
	// list is fresh and when the offload ends, and joins again when the
	// list goes stale (only run's goroutine touches rosterOff).
	roster      func() (self netip.AddrPort, members []netip.AddrPort, ok bool)
	joinRoster  func()
	leaveRoster func()
	rosterOff   bool
	log         *slog.Logger
	fileEnds    []int64 // end offset of each file in the torrent
	torrentSize int64   // the torrent's length, pads included
	// now is the agent's clock (Options.Now): stalls, back-offs and peer
	// silence are measured on it.
	now func() time.Time

	originBytes atomic.Int64
	failures    atomic.Int64
	// hashFails counts origin pieces that failed their hash check (shared
	// with the agent for its metrics; never nil).
	hashFails *atomic.Int64
	// badPieces holds the back-off of pieces whose origin bytes failed
	// their hash (only run's goroutine touches it).
	badPieces map[int]pieceBackoff
	// plan is the last shard plan (only run's goroutine touches it): the
	// per-site assignment is recomputed only when the sites change.
	plan    *shardPlan
	paused  atomic.Bool            // outside a download window, or by policy
	lastErr atomic.Pointer[string] // last origin fetch error, for status
	// onWriteErr is told when a fetched piece cannot be written to
	// storage (disk full): it pauses the release.
	onWriteErr func(error)
	// sub holds the runs of pieces partly held locally (subpiece.go).
	sub *subPieces
	// variants, for a watermarked release, say which pieces each site
	// wants (watermark.go): only those are fetched, and a piece is owned
	// only by a member whose site wants it. nil: everyone wants everything.
	variants *siteVariants

	mu       sync.Mutex
	progress map[[20]byte]peerProgress
	// ownDone and ownGrew track our own progress (bytes received).
	ownDone int64
	ownGrew time.Time
	// resumed is when a pause last ended: silence while paused is not a
	// peer's fault.
	resumed time.Time
	// unconnected are the members of the last swarm view known only from
	// the tracker's list; suspects those of them that seemed gone, until when.
	unconnected [][20]byte
	suspects    map[[20]byte]time.Time
	// started is when the offload began fetching (after StartupGrace);
	// set before the first swarmView, by run's goroutine.
	started time.Time
}

// stalledFor says how long our own download has received no payload byte
// (from peers or the origin); bytes, not verified pieces, so that large
// pieces on a slow link do not look like a stall.
func (o *offloader) stalledFor() time.Duration {
	now := o.now()
	st := o.t.Stats()
	done := st.ConnStats.BytesReadUsefulData.Int64() + o.originBytes.Load()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ownGrew.IsZero() || done > o.ownDone || o.paused.Load() {
		o.ownDone, o.ownGrew = done, now
	}
	return now.Sub(o.ownGrew)
}

type peerProgress struct {
	pieces     uint64    // pieces the peer has
	lastGrew   time.Time // when that last grew
	read       int64     // payload bytes it has sent us
	lastServed time.Time // when that last grew
}

func newOffloader(t *torrent.Torrent, m *catalog.Manifest, src rangeSource, limiter *rate.Limiter, cfg OffloadConfig, self [20]byte, log *slog.Logger) *offloader {
	o := &offloader{t: t, m: m, src: src, limiter: limiter, cfg: cfg, self: self, log: log, now: time.Now, progress: map[[20]byte]peerProgress{}, suspects: map[[20]byte]time.Time{},
		hashFails: new(atomic.Int64), badPieces: map[int]pieceBackoff{}}
	if cfg.SiteWANDown > 0 {
		o.pacer = rate.NewLimiter(rate.Inf, paceBurst)
	}
	// Offsets from the layout: a media release has pad zeros between
	// files (catalog.Media), which readRange leaves as zeros.
	offsets, size := m.Layout()
	for i, f := range m.Files {
		o.fileEnds = append(o.fileEnds, offsets[i]+f.Size)
	}
	o.torrentSize = size
	return o
}

// run fetches owned pieces until the torrent completes or ctx ends.
func (o *offloader) run(ctx context.Context) error {
	if o.leaveRoster != nil {
		defer o.leaveRoster()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-o.t.Complete().On():
		return nil
	case <-time.After(o.cfg.StartupGrace):
	}
	o.started = o.now()
	n := o.t.NumPieces()
	inflight := make(map[int]bool)
	type result struct {
		piece   int
		badHash bool
	}
	done := make(chan result, o.cfg.Parallel)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if o.complete() {
			return nil
		}
		o.pace()
		if par := o.parallel(); len(inflight) < par {
			skip := inflight
			if len(o.badPieces) > 0 {
				now := o.now()
				skip = maps.Clone(inflight)
				for p, b := range o.badPieces {
					if now.Before(b.until) {
						skip[p] = true
					}
				}
			}
			for _, p := range o.candidates(n, skip, par-len(inflight)) {
				inflight[p] = true
				wg.Add(1)
				go func(p int) {
					defer wg.Done()
					err := o.fetchPiece(ctx, p)
					bad := errors.Is(err, errOriginHash)
					if err != nil && ctx.Err() == nil && !errors.Is(err, errOffloadPaused) {
						o.failures.Add(1)
						msg := err.Error()
						o.lastErr.Store(&msg)
						o.log.Warn("origin fetch failed", "piece", p, "err", err)
						if !bad {
							// Back off so a broken origin is not hammered.
							select {
							case <-ctx.Done():
							case <-time.After(time.Second):
							}
						}
					}
					done <- result{p, bad}
				}(p)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.t.Complete().On():
			return nil
		case r := <-done:
			delete(inflight, r.piece)
			if r.badHash {
				o.hashFails.Add(1)
				b := o.badPieces[r.piece].next(o.now())
				o.badPieces[r.piece] = b
				o.log.Warn("origin sent a piece that fails its hash; backing off", "piece", r.piece, "failures", b.fails, "retry_in", b.until.Sub(o.now()).Round(time.Second))
			}
		case <-tick.C:
		}
	}
}

// complete reports whether this agent holds every piece it wants.
func (o *offloader) complete() bool {
	if o.variants != nil {
		return o.variants.done(o.t)
	}
	return o.t.Complete().Bool()
}

// parallel is how many range requests this agent keeps open to the origin:
// Parallel divided among the agents of its site that are downloading, so
// that a site's origin fetches together use about as many connections as
// one agent's. Peer traffic from other sites shares the site's WAN downlink
// with them, and TCP shares a link per connection: with every agent at
// Parallel, origin transfers crowded the other sites' pieces off the
// downlink while those sites' uplinks sat half idle (branch testbed).
func (o *offloader) parallel() int {
	n := o.watch.siteDownloaders(listMaxAge)
	if n <= 1 {
		return o.cfg.Parallel
	}
	return max(1, (o.cfg.Parallel+n-1)/n)
}

// paceBurst is the pacer's bucket: one read chunk and a little more.
const paceBurst = 128 << 10

// pace sets this agent's origin rate: OriginShare of the site's WAN
// downlink, divided among the site's downloading agents, while agents of
// other sites are in the swarm; unlimited otherwise (a site alone has no
// peer traffic to leave room for). On the branch testbed the origin's
// flows took 33 of a site's 50 Mbit/s while other sites' pieces got 8-12,
// so their uplinks ran at half rate during the first 25 s.
func (o *offloader) pace() {
	if o.pacer == nil {
		return
	}
	if !o.watch.otherSites(listMaxAge) {
		o.pacer.SetLimit(rate.Inf)
		return
	}
	n := max(1, o.watch.siteDownloaders(listMaxAge))
	o.pacer.SetLimit(rate.Limit(o.cfg.OriginShare * float64(o.cfg.SiteWANDown) / float64(n)))
}

// paceWait takes n bytes from the pacer before a piece is requested, not
// while its body is read: the socket's receive buffer (megabytes) would
// let the origin send at full speed long after reads slowed down.
func (o *offloader) paceWait(ctx context.Context, n int) error {
	if o.pacer == nil {
		return nil
	}
	for n > 0 {
		k := min(n, paceBurst)
		if err := o.pacer.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// candidates picks up to max missing pieces this agent should fetch from
// the origin now: pieces that no connected peer has and that this agent
// owns among the live members.
func (o *offloader) candidates(n int, inflight map[int]bool, max int) []int {
	if o.paused.Load() {
		o.mu.Lock()
		o.resumed = o.now()
		o.mu.Unlock()
		return nil
	}
	if max <= 0 {
		return nil
	}
	stalled := o.stalledFor()
	members, avail := o.swarmView(stalled)
	self := o.self
	if rm, ok := o.rosterMembers(); ok {
		members, self = rm, rm[0]
	}
	if stalled > o.cfg.OrphanTimeout {
		o.suspectOwners(n, o.shardPlan(n, members), avail)
	}
	// Peers that advertise pieces but never send them (download-only
	// agents, choked or starved links) must not stall us: once our own
	// download has made no progress for a while, pieces "available" from
	// peers count as missing, and later the whole remainder is ours.
	switch {
	case stalled > 2*o.cfg.OrphanTimeout:
		members = members[:1]
		fallthrough
	case stalled > o.cfg.OrphanTimeout:
		avail = roaring.New()
	}
	plan := o.shardPlan(n, members)
	// One look at the torrent's piece states, not one per piece: each
	// takes the client's lock, and a media release with 16 KiB pieces has
	// tens of thousands, scanned five times a second.
	have := o.completedPieces()
	var out []int
	for p := 0; p < n && len(out) < max; p++ {
		if inflight[p] || avail.Contains(uint32(p)) || have.Contains(uint32(p)) {
			continue
		}
		if o.variants != nil && !o.variants.want.Contains(uint32(p)) {
			continue // the other variant: never fetched
		}
		if plan.owner(p) == self {
			out = append(out, p)
		}
	}
	return out
}

// rosterMembers are the members of the release's roster on the DHT (self
// first), named by rosterID, when no tracker's list is fresh: every
// downloader of the tenant that announces, whichever site it is in, so
// that each piece goes to the origin about once, not once per site. The
// roster gives addresses only, no sites: the plan is one rendezvous over
// all members (sites balance only on average). Connected peers that are
// complete fetch nothing and are left out (matched by IP: agents behind
// one address are told apart by no one here).
func (o *offloader) rosterMembers() ([][20]byte, bool) {
	if o.roster == nil {
		return nil, false
	}
	// A roster costs every downloader a DHT lookup each 10 s: only while
	// the trackers fail.
	if _, fresh := o.watch.downloaders(listMaxAge); fresh {
		if !o.rosterOff {
			o.rosterOff = true
			o.leaveRoster()
		}
		return nil, false
	}
	if o.rosterOff {
		o.rosterOff = false
		o.joinRoster()
	}
	self, addrs, ok := o.roster()
	if !ok {
		return nil, false
	}
	n := uint64(o.t.NumPieces())
	complete := map[netip.Addr]bool{}
	for _, pc := range o.t.PeerConns() {
		if pc.PeerPieces().GetCardinality() < n {
			continue
		}
		if ap, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil {
			complete[ap.Addr().Unmap()] = true
		}
	}
	return rosterView(self, addrs, complete), true
}

// rosterView orders a roster for the shard plan: self first, then the
// other members not known complete.
func rosterView(self netip.AddrPort, addrs []netip.AddrPort, complete map[netip.Addr]bool) [][20]byte {
	members := [][20]byte{rosterID(self)}
	for _, a := range addrs {
		if a != self && !complete[a.Addr()] {
			members = append(members, rosterID(a))
		}
	}
	sort.Slice(members[1:], func(i, j int) bool { return string(members[1+i][:]) < string(members[1+j][:]) })
	return members
}

// rosterID names a roster member in the shard plan: the same for every
// agent that sees its address.
func rosterID(a netip.AddrPort) [20]byte {
	return sha1.Sum([]byte("swarmship roster\x00" + a.String()))
}

// shardPlan divides n pieces over members (self first) by site; only
// run's goroutine calls it.
func (o *offloader) shardPlan(n int, members [][20]byte) *shardPlan {
	sp := newShardPlan(o.t.InfoHash(), n, members, o.watch.siteOf, o.watch.homeSite(), o.plan)
	if o.variants != nil {
		sp.wants = o.variants.siteWants
	}
	if o.plan == nil || !slices.Equal(o.plan.keys, sp.keys) {
		o.log.Debug("origin offload: shards by site", "sites", len(sp.keys), "members", len(members))
	}
	o.plan = sp
	return sp
}

// swarmView returns the live members (self first) and the pieces that
// connected peers have and are actually serving.
//
// A member is a swarmship agent that is still downloading and making
// progress. While our own download is stalled (nothing received for half
// the orphan timeout), a peer that has pieces we lack but has sent us
// nothing for OrphanTimeout (a download-only agent, a choked link) is not
// serving: its pieces count as missing and it holds no shard. Only while
// stalled: a busy or slow link also leaves single peers silent for a
// while, and declaring them dead sends their shards to the origin again.
func (o *offloader) swarmView(stalled time.Duration) ([][20]byte, *roaring.Bitmap) {
	now := o.now()
	ours := o.completedPieces()
	avail := roaring.New()
	members := [][20]byte{o.self}
	// Agents this one is not connected to (other sites, or a site whose
	// connections are still forming) are members as the tracker lists them;
	// connected ones are judged by what they do.
	listed, _ := o.watch.downloaders(listMaxAge)
	for id, until := range o.suspects {
		if now.After(until) {
			delete(o.suspects, id)
		} else {
			delete(listed, id)
		}
	}
	n := uint64(o.t.NumPieces())
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[[20]byte]bool{}
	for _, pc := range o.t.PeerConns() {
		id := [20]byte(pc.PeerID)
		if seen[id] {
			continue
		}
		seen[id] = true
		delete(listed, id)
		pieces := pc.PeerPieces()
		count := pieces.GetCardinality()
		st := pc.Stats()
		read := st.BytesReadUsefulData.Int64()
		pp, ok := o.progress[id]
		if !ok {
			pp = peerProgress{pieces: count, lastGrew: now, read: read, lastServed: now}
		}
		if count > pp.pieces {
			pp.pieces, pp.lastGrew = count, now
		}
		if read > pp.read || pp.lastServed.Before(o.resumed) {
			pp.read, pp.lastServed = read, now
		}
		o.progress[id] = pp
		serving := stalled <= o.cfg.OrphanTimeout/2 || now.Sub(pp.lastServed) <= o.cfg.OrphanTimeout ||
			roaring.AndNot(pieces, ours).IsEmpty()
		if !serving {
			continue
		}
		avail.Or(pieces)
		// A complete peer fetches nothing, and a stalled one should not
		// hold pieces that others wait for.
		if !strings.HasPrefix(string(id[:]), btclient.AgentPeerIDPrefix) || count >= n || now.Sub(pp.lastGrew) > o.cfg.OrphanTimeout {
			continue
		}
		if o.variants != nil {
			// A peer holding all of its site's variants fetches nothing.
			key, ok := o.watch.siteOf(id)
			if !ok {
				key = o.watch.homeSite()
			}
			if o.variants.peerDone(key, pieces) {
				continue
			}
		}
		members = append(members, id)
	}
	for id := range o.progress {
		if !seen[id] {
			delete(o.progress, id)
		}
	}
	o.unconnected = o.unconnected[:0]
	for id := range listed {
		if id != o.self {
			members = append(members, id)
			o.unconnected = append(o.unconnected, id)
		}
	}
	if !o.started.IsZero() && now.Sub(o.started) < tentativeHold {
		for id := range o.watch.tentativeMembers(listMaxAge) {
			if !seen[id] && !listed[id] && id != o.self {
				members = append(members, id)
			}
		}
	}
	sort.Slice(members[1:], func(i, j int) bool { return string(members[1+i][:]) < string(members[1+j][:]) })
	return members, avail
}

// suspectOwners runs while our download is stalled: members we know only
// from the tracker's list (not connected to us) that own pieces nobody we
// are connected to has are taken for gone (killed agents stay listed until
// the tracker expires them) and hold no shard for suspectFor; their pieces
// move to the next member in rendezvous order, often us.
func (o *offloader) suspectOwners(n int, plan *shardPlan, avail *roaring.Bitmap) {
	o.mu.Lock()
	unconnected := map[[20]byte]bool{}
	for _, id := range o.unconnected {
		unconnected[id] = true
	}
	o.mu.Unlock()
	if len(unconnected) == 0 {
		return
	}
	now := o.now()
	found := map[[20]byte]bool{}
	checked := 0
	have := o.completedPieces()
	for p := 0; p < n && checked < maxSuspectScan; p++ {
		if avail.Contains(uint32(p)) || have.Contains(uint32(p)) {
			continue
		}
		if o.variants != nil && !o.variants.want.Contains(uint32(p)) {
			continue // not ours to wait for
		}
		checked++
		if owner := plan.owner(p); unconnected[owner] {
			found[owner] = true
		}
	}
	if len(found) == 0 {
		return
	}
	o.mu.Lock()
	for id := range found {
		o.suspects[id] = now.Add(suspectFor)
	}
	o.mu.Unlock()
	o.log.Info("origin offload: taking over shards of unreachable agents", "agents", len(found))
}

// completedPieces is the set of pieces this agent has verified.
func (o *offloader) completedPieces() *roaring.Bitmap {
	have := roaring.New()
	i := uint64(0)
	for _, run := range o.t.PieceStateRuns() {
		if run.Complete {
			have.AddRange(i, i+uint64(run.Length))
		}
		i += uint64(run.Length)
	}
	return have
}

// fetchPiece reads piece p from the origin, writes it into the torrent's
// storage and has the library verify it against the piece hash.
func (o *offloader) fetchPiece(ctx context.Context, p int) error {
	pl := o.m.PieceLength
	begin := int64(p) * pl
	end := min(begin+pl, o.torrentSize)
	buf := make([]byte, end-begin)
	if err := o.paceWait(ctx, len(buf)-int(o.sub.held(p))); err != nil {
		return err
	}
	local, err := o.fillPiece(ctx, p, begin, buf) // subpiece.go
	if err != nil {
		return err
	}
	if o.t.PieceState(p).Complete {
		return nil // a peer delivered it meanwhile
	}
	if o.paused.Load() {
		return errOffloadPaused // e.g. another write just failed for lack of space
	}
	piece := o.t.Piece(p)
	if _, err := piece.Storage().WriteAt(buf, 0); err != nil {
		if o.onWriteErr != nil {
			o.onWriteErr(err)
		}
		return fmt.Errorf("write piece %d: %w", p, err)
	}
	if err := piece.VerifyDataContext(ctx); err != nil {
		return fmt.Errorf("verify piece %d: %w", p, err)
	}
	// A peer may have delivered chunks of the same piece meanwhile, which
	// queues another check: judge the piece once the library settles.
	for range 100 {
		st := o.t.PieceState(p)
		if st.Complete {
			break
		}
		if !st.Hashing && !st.QueuedForHash && !st.Marking {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !o.t.PieceState(p).Complete {
		if local {
			o.sub.forget(p)
			return fmt.Errorf("piece %d: held bytes failed the piece hash; fetching it whole", p)
		}
		return fmt.Errorf("piece %d: %w", p, errOriginHash)
	}
	if local {
		o.sub.done(p)
	}
	return nil
}

// errOriginHash marks origin bytes that failed the piece hash.
var errOriginHash = errors.New("bytes from the origin failed the piece hash check")

// Back-off of a piece whose origin bytes failed their hash: a corrupted
// or hostile origin would otherwise be asked for the same piece every
// second (54 MiB pulled for a 3 MiB release in the attack of issue 12).
// Peers may still deliver the piece meanwhile; only the origin waits.
const (
	hashBackoffFirst = 5 * time.Second
	hashBackoffMax   = 15 * time.Minute
)

type pieceBackoff struct {
	fails int
	until time.Time
}

// next is the back-off after one more failure at now: 5 s, then four
// times longer each time, at most hashBackoffMax.
func (b pieceBackoff) next(now time.Time) pieceBackoff {
	d := hashBackoffFirst
	for range b.fails {
		if d >= hashBackoffMax/4 {
			d = hashBackoffMax
			break
		}
		d *= 4
	}
	return pieceBackoff{fails: b.fails + 1, until: now.Add(d)}
}

// readRange fills buf with the release bytes at torrent offset off, which
// may span several files.
func (o *offloader) readRange(ctx context.Context, off int64, buf []byte) error {
	prefix := catalog.DataPrefix(o.m.Name, o.m.Version)
	filled := 0
	for i, f := range o.m.Files {
		if filled == len(buf) {
			break
		}
		fileBegin := o.fileEnds[i] - f.Size
		pos := off + int64(filled)
		if pos >= o.fileEnds[i] || f.Size == 0 {
			continue
		}
		if gap := fileBegin - pos; gap > 0 {
			// Pad bytes before this file: buf is zeroed already.
			if gap >= int64(len(buf)-filled) {
				filled = len(buf)
				break
			}
			filled += int(gap)
			pos = fileBegin
		}
		inFile := pos - fileBegin
		n := min(int64(len(buf)-filled), f.Size-inFile)
		if err := o.readFile(ctx, prefix+f.Path, inFile, buf[filled:filled+int(n)]); err != nil {
			return err
		}
		filled += int(n)
	}
	if filled != len(buf) {
		return errors.New("piece range lies outside the release's files")
	}
	return nil
}

func (o *offloader) readFile(ctx context.Context, key string, off int64, dst []byte) error {
	rc, err := o.src.GetRange(ctx, key, off, int64(len(dst)))
	if err != nil {
		return err
	}
	defer rc.Close()
	const chunk = 64 << 10
	for got := 0; got < len(dst); {
		// A pause (disk full, policy) ends fetches in flight too: what
		// they would bring could not be stored or is not wanted now.
		if o.paused.Load() {
			return errOffloadPaused
		}
		n := min(chunk, len(dst)-got)
		if o.limiter != nil {
			if err := o.limiter.WaitN(ctx, min(n, o.limiter.Burst())); err != nil {
				return err
			}
		}
		m, err := io.ReadFull(rc, dst[got:got+n])
		got += m
		o.originBytes.Add(int64(m))
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", key, off+int64(got), err)
		}
	}
	return nil
}
