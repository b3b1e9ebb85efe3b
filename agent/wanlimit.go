package agent

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/policy"
)

// WAN caps (rates.profiles[].wan_down / wan_up) are the site's: they
// bound everything that crosses the site's WAN link, shared by its
// agents. Each agent holds two token buckets, one per direction, that
// every connection to a peer outside the site draws from (wanConn, under
// TLS, so the bytes counted are the bytes sent), and the origin fetches
// draw from the download one (it is Agent.originLimit). Peers inside the
// site pass untouched: the profile's down and up (the library's limiters)
// still apply to them.
//
// A peer is inside the site when
//   - it is on a directly attached broadcast subnet of the agent (an
//     Ethernet or Wi-Fi LAN, not a tunnel: a point-to-point interface can
//     lead across the WAN), or loopback;
//   - the tracker lists its peer ID, or its announced address, in the
//     agent's own site and region (the swarm views of the downloads); or
//   - it was found by LSD, which answers only the tenant's agents of the
//     same site on the LAN.
//
// Everything else (other sites, the origin's seeder, relayed connections,
// peers not yet identified) is outside. Connections are classified again
// whenever the set changes (at most once a second), so a connection
// counted outside before its handshake named the peer moves inside.
//
// The agent's share of a cap is its claim on that direction of the WAN
// among its site's agents, as the tracker's swarm views list them (every
// agent reads the same view, so the shares add up to the cap):
//   - wan_down: while other sites are in the swarm, offload.origin_share
//     of the cap is the origin fetches', divided among the site's
//     downloading agents (the offload paces them to it), and the rest the
//     other sites' pieces', divided among the site's downloading gateways,
//     where those pieces arrive; a site alone divides it all among its
//     downloading agents;
//   - wan_up: the site's gateways, the only agents that exchange with
//     other sites under locality gateway (every listed agent of the site
//     when none is marked, e.g. locality any).
//
// An agent that bridges to other sites without being marked (it took over
// from a gateway that died) claims a gateway's part too. An agent without
// a claim keeps 2% of the cap for the protocol's messages. With no fresh
// view the last parts stay (the whole cap at first).
type wanLimit struct {
	down *rate.Limiter // shared with the origin fetches
	up   *rate.Limiter

	// gen changes whenever the classification does; wanConn caches its
	// class with the generation it was computed in.
	gen atomic.Uint64

	mu     sync.RWMutex
	inside map[string]bool     // remote address (ip:port) of connections to site peers
	ips    map[netip.Addr]bool // addresses the tracker lists in our site
	lans   []netip.Prefix      // directly attached broadcast subnets
	// onLink overrides the LAN test (tests on loopback); nil: lans.
	onLink func(netip.Addr) bool
	log    *slog.Logger // share changes; nil: not logged

	// originShare is offload.origin_share (see downFraction).
	originShare float64
	// downF and upF are this agent's parts of the caps from the last
	// fresh view (1 at first: one agent, the whole cap).
	downF, upF float64

	// state is what refresh last computed (under mu).
	state   WANStatus
	prof    policy.RateProfile
	applied bool
	lansAt  time.Time
}

// WANStatus is the WAN caps in force for status.
type WANStatus struct {
	// SiteDown and SiteUp are the profile's site-wide caps; DownLimit and
	// UpLimit this agent's share ("unlimited" without a cap).
	SiteDown  string `json:"site_down"`
	SiteUp    string `json:"site_up"`
	DownLimit string `json:"down_limit"`
	UpLimit   string `json:"up_limit"`
	// Downloaders and Gateways are the site's agents the shares are
	// divided among (the last fresh view's).
	Downloaders int `json:"site_downloaders"`
	Gateways    int `json:"site_gateways"`
	// Outside counts the connections to peers outside the site.
	Outside int `json:"outside_conns"`
}

// wanPayloadShare is the part of a WAN cap the buckets give to payload:
// they count the bytes written to and read from sockets, whereas the link
// also carries TCP/IP and Ethernet headers (about 4.5% of a full-size
// segment), the acknowledgements of the other direction's data and the
// agent's own HTTP requests (catalog, tracker, reports).
const wanPayloadShare = 0.90

func newWANLimit(down *rate.Limiter, originShare float64) *wanLimit {
	w := &wanLimit{down: down, up: btclient.Unlimited(), inside: map[string]bool{}, ips: map[netip.Addr]bool{}, originShare: originShare, downF: 1, upF: 1}
	w.gen.Store(1)
	w.state = WANStatus{SiteDown: "unlimited", SiteUp: "unlimited", DownLimit: "unlimited", UpLimit: "unlimited", Downloaders: 1, Gateways: 1}
	return w
}

// wrap is btclient.Config.WrapPeerConn.
func (w *wanLimit) wrap(c net.Conn) net.Conn {
	ctx, cancel := context.WithCancel(context.Background())
	wc := &wanConn{Conn: c, w: w, key: c.RemoteAddr().String(), ctx: ctx, cancel: cancel}
	if ap, err := netip.ParseAddrPort(wc.key); err == nil {
		wc.ip = ap.Addr().Unmap()
		// A relayed connection crosses the WAN to the origin's relay
		// whoever the peer is: its address is a handle, never on a LAN.
		wc.relayed = relay.IsHandle(ap)
	}
	return wc
}

// isInside classifies a connection by its remote address.
func (w *wanLimit) isInside(key string, ip netip.Addr) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.inside[key] || (ip.IsValid() && w.ips[ip]) {
		return true
	}
	if !ip.IsValid() {
		return false // a relayed connection: it crosses the WAN
	}
	if w.onLink != nil {
		return w.onLink(ip)
	}
	if ip.IsLoopback() {
		return true
	}
	for _, p := range w.lans {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// localLANs lists the subnets of the host's broadcast interfaces that are
// up (Ethernet, Wi-Fi, bridges; not tunnels or point-to-point links).
func localLANs() []netip.Prefix {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagBroadcast == 0 || ifc.Flags&net.FlagPointToPoint != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	return out
}

// refreshWAN runs refresh with the agent's downloads (each policy pass).
func (a *Agent) refreshWAN(prof policy.RateProfile, now time.Time) {
	a.mu.Lock()
	ds := make([]*download, 0, len(a.downloads))
	for _, d := range a.downloads {
		ds = append(ds, d)
	}
	a.mu.Unlock()
	views := make([]wanView, 0, len(ds))
	for _, d := range ds {
		v := wanView{conns: d.t.PeerConns()}
		if d.off != nil {
			v.watch = d.off.watch
		}
		views = append(views, v)
	}
	a.wan.refresh(views, prof, now)
}

// wanStatus is the WAN caps for status.
func (a *Agent) wanStatus() WANStatus {
	a.mu.Lock()
	ds := make([]*download, 0, len(a.downloads))
	for _, d := range a.downloads {
		ds = append(ds, d)
	}
	a.mu.Unlock()
	var conns []string
	for _, d := range ds {
		for _, pc := range d.t.PeerConns() {
			conns = append(conns, pc.RemoteAddr.String())
		}
	}
	return a.wan.status(conns)
}

// wanView is what refresh gathers from one download.
type wanView struct {
	conns []*torrent.PeerConn
	watch *swarmWatcher
}

// wanWeights are one swarm's claims on its site's WAN, from the tracker's
// view: the site's totals and this agent's own.
type wanWeights struct {
	origin, peer, up    int // the site's downloaders; downloading gateways; gateways
	myOrigin, myPeer    int
	myUp                int
	others              bool // the swarm has agents of other sites
	downloaders, uppers int  // for status
}

// fraction is this agent's part of the site's download cap: originShare
// of it is for the origin fetches of the site's downloaders (the offload
// paces them to that part while other sites are in the swarm), the rest
// for the pieces other sites send, which arrive at the site's gateways.
// Alone, the site's downloaders split it all.
func (ww wanWeights) downFraction(originShare float64) float64 {
	if ww.origin == 0 {
		return 0
	}
	if !ww.others || ww.peer == 0 {
		return float64(ww.myOrigin) / float64(ww.origin)
	}
	return originShare*float64(ww.myOrigin)/float64(ww.origin) + (1-originShare)*float64(ww.myPeer)/float64(ww.peer)
}

func (ww wanWeights) upFraction() float64 {
	if ww.up == 0 {
		return 0
	}
	return float64(ww.myUp) / float64(ww.up)
}

// weigh reads one swarm's view: the site's agents and which of them
// download and bridge to other sites. outside says this agent holds connections to other sites: it is
// bridging whatever the view says (it took over from a gateway that died,
// which the view lists until it expires).
func weigh(w *swarmWatcher, now time.Time, outside bool) (wanWeights, map[netip.Addr]bool, bool) {
	var ww wanWeights
	ips := map[netip.Addr]bool{}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetched.IsZero() || now.Sub(w.fetched) > listMaxAge {
		return ww, ips, false
	}
	me, listed := w.members[w.self]
	if !listed {
		me = report.SwarmMember{Site: w.site, Region: w.region, Left: 1}
	}
	ours := 0
	for id, m := range w.members {
		if m.Site != w.site || m.Region != w.region {
			if m.Trusted || !w.personal {
				ww.others = true
			}
			continue
		}
		// Every listed agent of the site counts for the shares: an agent
		// not yet trusted from our point of view still takes its own part,
		// and counting too many only lowers ours. Only trusted ones make
		// their addresses inside the site, which lifts the caps.
		if ap, err := netip.ParseAddrPort(m.Addr); err == nil && (m.Trusted || !w.personal || id == w.self) {
			ips[ap.Addr().Unmap()] = true
		}
		ours++
		if m.Left > 0 {
			ww.origin++
			if m.Gateway {
				ww.peer++
			}
		}
		if m.Gateway {
			ww.up++
		}
	}
	if !listed {
		ours++
		ww.origin++
	}
	if me.Left > 0 {
		ww.myOrigin = 1
	}
	gw := me.Gateway || outside
	if gw && !me.Gateway {
		ww.up++
		if me.Left > 0 {
			ww.peer++
		}
	}
	if gw {
		ww.myUp = 1
		ww.myPeer = ww.myOrigin
	}
	if ww.up == 0 {
		// No gateway marked (locality any): every agent of the site may
		// exchange with other sites.
		ww.up, ww.myUp = ours, 1
		ww.peer, ww.myPeer = ww.origin, ww.myOrigin
	}
	ww.downloaders, ww.uppers = ww.origin, ww.up
	return ww, ips, true
}

// refresh reclassifies the connections of downloads, recounts the site's
// agents and sets the buckets' rates from prof (the profile in force).
func (w *wanLimit) refresh(views []wanView, prof policy.RateProfile, now time.Time) {
	inside := map[string]bool{}
	ips := map[netip.Addr]bool{}
	var downF, upF float64
	var downloaders, uppers int
	fresh := false
	for _, v := range views {
		home := v.watch.homeSite()
		outside := false
		for _, pc := range v.conns {
			key := pc.RemoteAddr.String()
			id := [20]byte(pc.PeerID)
			site, listed := v.watch.siteOf(id)
			switch {
			case pc.Discovery == peerSourceLSD || (listed && site == home && !strings.HasPrefix(string(id[:]), btclient.OriginPeerIDPrefix)):
				inside[key] = true
			case listed && site != home:
				outside = true
			}
		}
		if v.watch == nil {
			continue
		}
		ww, vips, ok := weigh(v.watch, now, outside)
		for ip := range vips {
			ips[ip] = true
		}
		if !ok {
			continue
		}
		// Several swarms: the largest claim in any of them (agents are
		// gateways of different releases; the sum may then pass the cap).
		fresh = true
		downF = max(downF, ww.downFraction(w.originShare))
		upF = max(upF, ww.upFraction())
		downloaders, uppers = max(downloaders, ww.downloaders), max(uppers, ww.uppers)
	}
	var lans []netip.Prefix
	w.mu.RLock()
	stale := w.onLink == nil && now.Sub(w.lansAt) > 10*time.Second
	w.mu.RUnlock()
	if stale {
		lans = localLANs()
	}

	w.mu.Lock()
	changed := !sameSet(inside, w.inside) || !sameSet(ips, w.ips)
	w.inside, w.ips = inside, ips
	if stale {
		changed = changed || !samePrefixes(lans, w.lans)
		w.lans, w.lansAt = lans, now
	}
	st := w.state
	if fresh {
		st.Downloaders, st.Gateways = downloaders, uppers
		w.downF, w.upF = downF, upF
	}
	downShare := part(prof.WANDown, w.downF)
	upShare := part(prof.WANUp, w.upF)
	st.SiteDown, st.SiteUp = prof.WANDown.String(), prof.WANUp.String()
	st.DownLimit, st.UpLimit = downShare.String(), upShare.String()
	apply := !w.applied || st != w.state || prof != w.prof
	old := w.state
	w.state, w.prof, w.applied = st, prof, true
	w.mu.Unlock()
	if changed {
		w.gen.Add(1)
	}
	if apply && w.log != nil && (st.DownLimit != old.DownLimit || st.UpLimit != old.UpLimit) && prof.WANDown+prof.WANUp > 0 {
		w.log.Info("WAN share", "down", st.DownLimit, "up", st.UpLimit, "site_down", st.SiteDown, "site_up", st.SiteUp,
			"site_downloaders", st.Downloaders, "site_gateways", st.Gateways)
	}
	if apply {
		// The origin fetches draw from the download bucket: it also keeps
		// them under the profile's down, as before WAN caps were shared.
		setRate(w.down, min0(prof.Down, payloadRate(downShare)))
		setRate(w.up, payloadRate(upShare))
	}
}

// minPart is the share of an agent that has no claim on a direction
// (complete, or not a gateway): enough for the peer protocol's messages
// and a stray piece, small enough not to matter next to the others'.
const minPart = 0.02

// part is fraction f of cap c, at least minPart of it (and 8000 B/s);
// unlimited stays unlimited and a part never rounds down to unlimited.
func part(c policy.Rate, f float64) policy.Rate {
	if c == policy.Unlimited {
		return policy.Unlimited
	}
	f = max(f, minPart)
	return max(min(c, 8000), policy.Rate(math.Round(float64(c)*f)))
}

// payloadRate is the bucket rate that keeps a link's bytes under r.
func payloadRate(r policy.Rate) policy.Rate {
	if r == policy.Unlimited {
		return r
	}
	return max(1, policy.Rate(float64(r)*wanPayloadShare))
}

func sameSet[K comparable](a, b map[K]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// status is the WAN caps in force, with the outside connections counted
// among conns.
func (w *wanLimit) status(conns []string) WANStatus {
	w.mu.RLock()
	st := w.state
	w.mu.RUnlock()
	for _, k := range conns {
		ap, _ := netip.ParseAddrPort(k)
		if !w.isInside(k, ap.Addr().Unmap()) {
			st.Outside++
		}
	}
	return st
}

// wanConn is a peer connection that draws from the WAN buckets while its
// peer is outside the site.
type wanConn struct {
	net.Conn
	w   *wanLimit
	key string
	ip  netip.Addr
	// relayed connections are always outside.
	relayed bool
	rcvSet  atomic.Bool // boundReceiveBuffer ran
	// class caches isInside: generation<<1 | inside.
	class  atomic.Uint64
	ctx    context.Context // ends with Close: waits in the buckets end
	cancel context.CancelFunc
}

func (c *wanConn) inside() bool {
	if c.relayed {
		return false
	}
	g := c.w.gen.Load()
	if v := c.class.Load(); v>>1 == g {
		return v&1 == 1
	}
	in := c.w.isInside(c.key, c.ip)
	if !in && !c.rcvSet.Swap(true) {
		c.boundReceiveBuffer()
	}
	v := g << 1
	if in {
		v |= 1
	}
	c.class.Store(v)
	return in
}

// boundReceiveBuffer keeps the socket's receive buffer near the bucket's
// burst once the connection is outside the site: reads then pace what
// the peer may send within a fraction of a second. With the kernel's
// autotuning (buffers of megabytes), a peer filled the buffer at the
// link's speed while reads were held back, and the link carried more
// than the cap in the first seconds of a transfer (branch testbed).
func (c *wanConn) boundReceiveBuffer() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(max(64<<10, c.w.down.Burst()))
	}
}

// Read takes what it read from the download bucket before it returns, so
// the next read waits: the socket's receive window then closes and the
// sender slows down.
func (c *wanConn) Read(b []byte) (int, error) {
	if c.inside() {
		return c.Conn.Read(b)
	}
	if burst := c.w.down.Burst(); burst > 0 && len(b) > burst {
		b = b[:burst]
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		take(c.ctx, c.w.down, n)
	}
	return n, err
}

// Write takes from the upload bucket before each part is written.
func (c *wanConn) Write(b []byte) (int, error) {
	if c.inside() {
		return c.Conn.Write(b)
	}
	written := 0
	for len(b) > 0 {
		k := len(b)
		if burst := c.w.up.Burst(); burst > 0 {
			k = min(k, burst)
		}
		if err := take(c.ctx, c.w.up, k); err != nil {
			return written, net.ErrClosed
		}
		n, err := c.Conn.Write(b[:k])
		written += n
		if err != nil {
			return written, err
		}
		b = b[k:]
	}
	return written, nil
}

// take waits for n bytes from l in parts of at most its burst (the burst
// may shrink between a caller's look and the wait).
func take(ctx context.Context, l *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, max(1, l.Burst()))
		if err := l.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil || k <= l.Burst() {
				return err
			}
			continue // the burst shrank under us: try again with the new one
		}
		n -= k
	}
	return nil
}

func (c *wanConn) Close() error {
	c.cancel()
	return c.Conn.Close()
}

// NetConn returns the connection underneath (as tls.Conn does).
func (c *wanConn) NetConn() net.Conn { return c.Conn }
