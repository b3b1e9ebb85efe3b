package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"golang.org/x/time/rate"
)

// Defaults of a node's schedule.
const (
	// DefaultInterval is how often each torrent is announced and looked
	// up again (the library's own torrents re-announce only every ~15
	// minutes; stored announces live storedPeerTTL).
	DefaultInterval = 5 * time.Minute
	// DefaultRetry is the wait after a round that found no peer.
	DefaultRetry = 30 * time.Second
	// lookupTimeout bounds one traversal.
	lookupTimeout = 20 * time.Second
	// saveEvery is how often the node table is written.
	saveEvery = 5 * time.Minute
	// repeatAfter is how soon a peer found again is handed over again.
	repeatAfter = 5 * time.Minute
	// maxSeen bounds the peers remembered per torrent for that.
	maxSeen = 256
	// A node that queries this one is pinged back (at most once per
	// pingAgain, maxPinging at a time, maxPinged remembered): the
	// library hands out only nodes that answered it, and would otherwise
	// learn a newcomer answers only at its next table refresh, a minute
	// or more later.
	pingAgain  = 5 * time.Minute
	maxPinging = 4
	maxPinged  = 1024
	// minGoodNodes is a bucket's worth: below it the node bootstraps
	// again (see run).
	minGoodNodes = 8
)

// Config configures a Node.
type Config struct {
	Key Key
	// Listen is the UDP address, host:port; port 0 takes the port saved
	// in NodesFile if free, else any.
	Listen string
	// Bootstrap are host:port of nodes to join through (the origins'),
	// tried together with the saved table whenever the table is empty.
	Bootstrap []string
	// NodesFile, if set, keeps the node table across restarts.
	NodesFile string
	// Port is the BitTorrent port announced; 0 announces nothing (an
	// origin's node, a download-only agent): lookups only.
	Port int
	// Interval between two rounds of one torrent; default DefaultInterval.
	Interval time.Duration
	// Retry after a round that found no peer, doubled after each such
	// round up to Interval; default DefaultRetry.
	Retry time.Duration
	// OnPeer is called with each candidate peer of a torrent added with
	// Add. It must not block long.
	OnPeer func(ih [20]byte, addr netip.AddrPort)
	Log    *slog.Logger
	Now    func() time.Time
}

// Stats counts what a node did; counters are totals.
type Stats struct {
	// Nodes are the nodes in the routing table now.
	Nodes int `json:"nodes"`
	// Stored are the peers this node keeps for others now.
	Stored   int   `json:"stored"`
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	// Foreign are datagrams that did not open under the tenant key:
	// another tenant's, a stranger's, garbage.
	Foreign int64 `json:"foreign"`
	// Stale opened but were sent outside the time window (replays).
	Stale int64 `json:"stale"`
	// Limited were dropped by the per-source rate limit.
	Limited int64 `json:"limited"`
	// Lookups are traversals run; Peers candidates handed to OnPeer.
	Lookups int64 `json:"lookups"`
	Peers   int64 `json:"peers"`
}

type torrentEntry struct {
	scopes, fallback []Scope
	next             time.Time
	misses           int // rounds in a row that found nobody
	seen             map[netip.AddrPort]time.Time
}

// Node is one member of a tenant's DHT.
type Node struct {
	cfg   Config
	log   *slog.Logger
	conn  *sealedConn
	srv   *adht.Server
	store *peerStore
	local map[netip.Addr]bool // this host's addresses: its own announces are not peers
	wake  chan struct{}

	mu       sync.Mutex
	torrents map[[20]byte]*torrentEntry
	rosters  map[[20]byte]*roster // see roster.go

	lookups, peers atomic.Int64

	pingMu  sync.Mutex
	pinged  map[netip.AddrPort]time.Time
	pinging chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start opens the socket and joins the DHT through the bootstrap nodes
// and the saved table; it runs until Close. A damaged table file is
// logged and ignored.
func Start(cfg Config) (*Node, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnPeer == nil {
		cfg.OnPeer = func([20]byte, netip.AddrPort) {}
	}
	n := &Node{cfg: cfg, log: cfg.Log, wake: make(chan struct{}, 1), torrents: map[[20]byte]*torrentEntry{}, rosters: map[[20]byte]*roster{}, local: localAddrs(),
		pinged: map[netip.AddrPort]time.Time{}, pinging: make(chan struct{}, maxPinging)}
	var saved nodesFile
	if cfg.NodesFile != "" {
		var err error
		if saved, err = readNodes(cfg.NodesFile); err != nil {
			n.log.Warn("dht: saved node table ignored", "file", cfg.NodesFile, "err", err)
		}
	}
	pc, err := listen(cfg.Listen, saved.Port)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	n.conn = newSealedConn(pc, cfg.Key, cfg.Now)
	n.store = newPeerStore(cfg.Now)
	savedAddrs := make([]netip.AddrPort, 0, len(saved.Nodes))
	for _, s := range saved.Nodes {
		if a, err := parseSaved(s); err == nil {
			savedAddrs = append(savedAddrs, a)
		}
	}
	n.srv, err = adht.NewServer(&adht.ServerConfig{
		Conn: n.conn,
		// The security extension ties node IDs to public IPs; behind NAT
		// and on loopback that fails, and the seal keeps strangers out.
		NoSecurity:    true,
		StartingNodes: func() ([]adht.Addr, error) { return n.startingNodes(savedAddrs), nil },
		PeerStore:     n.store,
		Store:         noItems{},
		OnQuery: func(_ *krpc.Msg, source net.Addr) bool {
			n.pingBack(source)
			return true
		},
		Logger: alog.Default.WithFilterLevel(alog.Critical),
		// The library's default limiter is one per process, shared by
		// every server in it.
		SendLimiter: rate.NewLimiter(100, 200),
	})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dht: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.srv.TableMaintainer()
	}()
	go n.run(ctx)
	go n.runRosters(ctx)
	n.log.Info("dht node on", "addr", pc.LocalAddr().String(), "bootstrap", len(cfg.Bootstrap), "saved_nodes", len(savedAddrs))
	return n, nil
}

// listen binds addr, trying the saved port first when addr's port is 0.
func listen(addr string, saved int) (net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if port == "0" && saved != 0 {
		if pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(saved))); err == nil {
			return pc, nil
		}
	}
	return net.ListenPacket("udp", addr)
}

func localAddrs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	as, _ := net.InterfaceAddrs()
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().Unmap()] = true
		}
	}
	return m
}

func (n *Node) startingNodes(saved []netip.AddrPort) []adht.Addr {
	var out []adht.Addr
	for _, b := range n.cfg.Bootstrap {
		ua, err := net.ResolveUDPAddr("udp", b)
		if err != nil {
			n.log.Debug("dht: bootstrap node unresolved", "node", b, "err", err)
			continue
		}
		out = append(out, adht.NewAddr(ua))
	}
	for _, a := range saved {
		out = append(out, adht.NewAddr(net.UDPAddrFromAddrPort(a)))
	}
	return out
}

// pingBack pings a node that queried this one, unless it was pinged
// lately or enough pings are under way.
func (n *Node) pingBack(source net.Addr) {
	ua, ok := source.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := ua.AddrPort()
	now := n.cfg.Now()
	n.pingMu.Lock()
	if last, ok := n.pinged[ap]; ok && now.Sub(last) < pingAgain {
		n.pingMu.Unlock()
		return
	}
	if len(n.pinged) >= maxPinged {
		for a, t := range n.pinged {
			if now.Sub(t) >= pingAgain {
				delete(n.pinged, a)
			}
		}
		if len(n.pinged) >= maxPinged {
			n.pingMu.Unlock()
			return
		}
	}
	n.pinged[ap] = now
	n.pingMu.Unlock()
	select {
	case n.pinging <- struct{}{}:
	default:
		return
	}
	// Not waited for by Close: a ping on a closed server fails at once.
	go func() {
		defer func() { <-n.pinging }()
		n.srv.Ping(ua)
	}()
}

// Addr is the node's UDP address.
func (n *Node) Addr() netip.AddrPort {
	return n.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Add announces (if Config.Port is set) and looks up ih under each of
// scopes, and under fallback when scopes found no peer in a round; again
// every interval. Adding a torrent again replaces its scopes.
func (n *Node) Add(ih [20]byte, scopes, fallback []Scope) {
	n.mu.Lock()
	e := n.torrents[ih]
	if e == nil {
		e = &torrentEntry{seen: map[netip.AddrPort]time.Time{}}
		n.torrents[ih] = e
	}
	e.scopes, e.fallback, e.next, e.misses = scopes, fallback, time.Time{}, 0
	n.mu.Unlock()
	n.poke()
}

// Remove stops announcing ih (announces already stored expire).
func (n *Node) Remove(ih [20]byte) {
	n.mu.Lock()
	delete(n.torrents, ih)
	n.mu.Unlock()
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := n.srv.Stats()
	return Stats{
		Nodes: s.Nodes, Stored: n.store.count(),
		Sent: n.conn.sent.Load(), Received: n.conn.received.Load(), Foreign: n.conn.foreign.Load(),
		Stale: n.conn.stale.Load(), Limited: n.conn.limited.Load(),
		Lookups: n.lookups.Load(), Peers: n.peers.Load(),
	}
}

// Close leaves the DHT and saves the node table.
func (n *Node) Close() error {
	n.cancel()
	n.srv.Close()
	n.conn.Close()
	n.wg.Wait()
	return n.save()
}

func (n *Node) save() error {
	if n.cfg.NodesFile == "" {
		return nil
	}
	nf := nodesFile{Port: int(n.Addr().Port())}
	for _, ni := range n.srv.Nodes() {
		if len(nf.Nodes) == MaxSavedNodes {
			break
		}
		a := ni.Addr.ToNodeAddrPort().AddrPort
		s := savedNode{ID: fmt.Sprintf("%x", ni.ID[:]), Addr: netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()}
		if _, err := parseSaved(s); err == nil {
			nf.Nodes = append(nf.Nodes, s)
		}
	}
	if len(nf.Nodes) == 0 {
		// An empty table says nothing new; keep what helped last time.
		return nil
	}
	if err := writeNodes(n.cfg.NodesFile, nf); err != nil {
		return fmt.Errorf("dht: saving the node table: %w", err)
	}
	return nil
}

func (n *Node) run(ctx context.Context) {
	defer n.wg.Done()
	lastSave := n.cfg.Now()
	var lastBootstrap time.Time
	for {
		now := n.cfg.Now()
		if now.Sub(lastSave) >= saveEvery {
			if err := n.save(); err != nil {
				n.log.Warn("dht: node table not saved", "err", err)
			}
			lastSave = now
		}
		// A get_peers answer that carries peers carries no nodes, so
		// lookups alone may never meet the other agents as nodes;
		// bootstrap again while the table is short of a bucket, at most
		// once a round interval (and a minute). The library's own
		// refresh, once a minute, fills the table further.
		if now.Sub(lastBootstrap) >= min(n.cfg.Interval, time.Minute) && n.srv.Stats().GoodNodes < minGoodNodes {
			bctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			if _, err := n.srv.BootstrapContext(bctx); err != nil && ctx.Err() == nil {
				n.log.Debug("dht: bootstrap", "err", err)
			}
			cancel()
			lastBootstrap = n.cfg.Now()
			continue
		}
		ih, e, wait := n.due(now)
		if e != nil {
			found := n.round(ctx, ih, e)
			n.mu.Lock()
			if found {
				e.misses = 0
				e.next = n.cfg.Now().Add(n.cfg.Interval)
			} else {
				// Sooner while nobody is found, backing off to the
				// interval: a release nobody else holds costs little.
				e.next = n.cfg.Now().Add(min(n.cfg.Retry<<min(e.misses, 16), n.cfg.Interval))
				e.misses++
			}
			n.mu.Unlock()
			continue
		}
		if n.srv.Stats().GoodNodes < minGoodNodes {
			wait = min(wait, lastBootstrap.Add(min(n.cfg.Interval, time.Minute)).Sub(now))
		}
		t := time.NewTimer(max(min(wait, saveEvery), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// due returns the torrent whose round is most overdue, or how long until
// the next one.
func (n *Node) due(now time.Time) ([20]byte, *torrentEntry, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var best *torrentEntry
	var bestIH [20]byte
	wait := saveEvery
	for ih, e := range n.torrents {
		if !e.next.After(now) {
			if best == nil || e.next.Before(best.next) {
				best, bestIH = e, ih
			}
			continue
		}
		wait = min(wait, e.next.Sub(now))
	}
	if best != nil {
		// Not due again until the round ends and sets next.
		best.next = now.Add(n.cfg.Interval)
	}
	return bestIH, best, wait
}

// round looks up (and announces) one torrent and hands new peers over;
// it reports whether any peer was found.
func (n *Node) round(ctx context.Context, ih [20]byte, e *torrentEntry) bool {
	n.mu.Lock()
	scopes, fallback := e.scopes, e.fallback
	n.mu.Unlock()
	found := n.lookupScopes(ctx, ih, e, scopes)
	if !found && len(fallback) > 0 {
		found = n.lookupScopes(ctx, ih, e, fallback)
	}
	return found
}

func (n *Node) lookupScopes(ctx context.Context, ih [20]byte, e *torrentEntry, scopes []Scope) bool {
	found := false
	for _, sc := range scopes {
		peers, _, err := n.lookup(ctx, n.cfg.Key.Target(sc, ih))
		if err != nil {
			n.log.Debug("dht: lookup", "err", err)
			continue
		}
		now := n.cfg.Now()
		for _, p := range peers {
			found = true
			n.mu.Lock()
			last, known := e.seen[p]
			fresh := !known || now.Sub(last) >= repeatAfter
			if fresh && (known || len(e.seen) < maxSeen) {
				e.seen[p] = now
			}
			n.mu.Unlock()
			if fresh {
				n.peers.Add(1)
				n.cfg.OnPeer(ih, p)
			}
		}
	}
	return found
}

// lookup runs one get_peers traversal toward target, announcing this
// node's peer port to the closest nodes when it has one. Its own announce
// come back is left out of the peers and returned as self (if seen).
func (n *Node) lookup(ctx context.Context, target [20]byte) (out []netip.AddrPort, self netip.AddrPort, err error) {
	var opts []adht.AnnounceOpt
	if n.cfg.Port > 0 {
		opts = append(opts, adht.AnnouncePeer(adht.AnnouncePeerOpts{Port: n.cfg.Port}))
	}
	a, err := n.srv.AnnounceTraversal(target, opts...)
	if err != nil {
		return nil, self, err
	}
	n.lookups.Add(1)
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	seen := map[netip.AddrPort]bool{}
	add := func(ps []krpc.NodeAddr) {
		for _, p := range ps {
			ip, ok := netip.AddrFromSlice(p.IP)
			if !ok || p.Port < 1 || p.Port > 65535 {
				continue
			}
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(p.Port))
			if n.self(ap) {
				self = ap
				continue
			}
			if seen[ap] || len(out) >= maxSeen {
				continue
			}
			seen[ap] = true
			out = append(out, ap)
		}
	}
	err = n.collect(ctx, a, add)
	// This node may be one of the closest to target itself: what it
	// stores there counts too (read at the end: announces arrive while
	// the traversal waits for nodes that are away).
	add(n.store.GetPeers(target))
	return out, self, err
}

// collect hands every answer of a traversal to add until it ends, or
// ctx does (a timeout is no error).
func (n *Node) collect(ctx context.Context, a *adht.Announce, add func([]krpc.NodeAddr)) error {
	for {
		select {
		case pv, ok := <-a.Peers:
			if !ok {
				return nil
			}
			add(pv.Peers)
		case <-ctx.Done():
			a.Close()
			for pv := range a.Peers {
				add(pv.Peers)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil
			}
			return ctx.Err()
		}
	}
}

// self reports whether ap is this node's own announce come back.
func (n *Node) self(ap netip.AddrPort) bool {
	return n.cfg.Port > 0 && int(ap.Port()) == n.cfg.Port && (ap.Addr().IsLoopback() || n.local[ap.Addr()])
}
