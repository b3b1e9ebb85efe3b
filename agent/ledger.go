package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/report"
)

// The contribution ledger (issue 20): what each remote peer gave and took,
// reported to the origin, which finds freeloaders and misbehaving peers
// and weights tracker answers by measured upload capacity. The library
// tells it about requests through callbacks (run under the client's lock:
// they only touch the ledger's own state) and a tick reads the
// connections' byte counters.
const (
	// ledgerMaxPeers bounds the peers tracked; the least recently seen
	// goes first. Reports carry the report.MaxLedgerPeers busiest.
	ledgerMaxPeers = 1024
	// ledgerIdle ages out a peer not connected for this long.
	ledgerIdle = time.Hour
	// ledgerStall: requests the peer has left without a single answer for
	// this long count as stalled, and the connection is closed. Generous:
	// a rate-limited peer with a deep queue still answers something
	// within it, and a peer that stops serving chokes or rejects.
	ledgerStall = 15 * time.Second
	// ledgerConnRequests bounds the outstanding requests counted per
	// connection (the library keeps fewer).
	ledgerConnRequests = 1 << 16
	ledgerTick         = time.Second
	// ledgerRateWindow is how many ticks the upload rate averages over.
	ledgerRateWindow = 5
)

// ledgerKey names a remote peer: its peer ID and IP. Agents behind one
// NAT differ by peer ID; one agent reconnecting keeps its key (the port
// of an incoming connection changes every time).
type ledgerKey struct {
	id [20]byte
	ip netip.Addr
}

type ledgerEntry struct {
	report.PeerLedger
	live int // connections open now
}

// ledgerConn is the ledger's view of one live connection.
type ledgerConn struct {
	key          ledgerKey
	down, up     int64 // counters at the last tick
	bad          int64
	outstanding  int       // requests sent and not yet answered
	since        time.Time // last answer while requests were outstanding
	seenCounters bool
}

type ledger struct {
	now   func() time.Time
	stall time.Duration

	mu         sync.Mutex
	peers      map[ledgerKey]*ledgerEntry
	conns      map[*torrent.Peer]*ledgerConn
	quarantine quarantineSet
	dropped    int64 // connections closed for quarantine
	upHist     [ledgerRateWindow]int64
	upPos      int
	upRate     float64
	upPeak     float64
	tlsID      string
}

func newLedger(peerTLS *tls.Config) *ledger {
	l := &ledger{now: time.Now, stall: ledgerStall, peers: map[ledgerKey]*ledgerEntry{}, conns: map[*torrent.Peer]*ledgerConn{}}
	if peerTLS != nil && len(peerTLS.Certificates) > 0 && len(peerTLS.Certificates[0].Certificate) > 0 {
		sum := sha256.Sum256(peerTLS.Certificates[0].Certificate[0])
		l.tlsID = hex.EncodeToString(sum[:])
	}
	return l
}

// callbacks are the library hooks the ledger needs.
func (l *ledger) callbacks() *torrent.Callbacks {
	return &torrent.Callbacks{
		PeerConnAdded:     []func(*torrent.PeerConn){l.added},
		PeerClosed:        []func(*torrent.Peer){l.closed},
		SentRequest:       []func(torrent.PeerRequestEvent){l.sent},
		ReceivedRequested: []func(torrent.PeerMessageEvent){l.answered},
		DeletedRequest:    []func(torrent.PeerRequestEvent){l.deleted},
		ReadMessage:       l.read,
	}
}

func keyOf(pc *torrent.PeerConn) ledgerKey {
	k := ledgerKey{id: pc.PeerID}
	if ap, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil {
		k.ip = ap.Addr().Unmap()
	}
	return k
}

// addrOf is the connection's remote address. (The peer's listen port,
// from its extended handshake, is written under the client's lock, which
// the tick does not hold.)
func addrOf(pc *torrent.PeerConn) string {
	ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
	if err != nil {
		return "0.0.0.0:0"
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// entryLocked returns k's entry, making room for it.
func (l *ledger) entryLocked(k ledgerKey, addr string, now time.Time) *ledgerEntry {
	e := l.peers[k]
	if e == nil {
		if len(l.peers) >= ledgerMaxPeers {
			var oldest ledgerKey
			var at time.Time
			found := false
			for kk, ee := range l.peers {
				if ee.live == 0 && (!found || ee.LastSeen.Before(at)) {
					oldest, at, found = kk, ee.LastSeen, true
				}
			}
			if !found {
				return nil // every tracked peer is connected: count nothing new
			}
			delete(l.peers, oldest)
		}
		e = &ledgerEntry{PeerLedger: report.PeerLedger{PeerID: hex.EncodeToString(k.id[:])}}
		l.peers[k] = e
	}
	e.Addr, e.LastSeen = addr, now
	return e
}

func (l *ledger) added(pc *torrent.PeerConn) {
	k, addr := keyOf(pc), addrOf(pc)
	l.mu.Lock()
	now := l.now()
	if e := l.entryLocked(k, addr, now); e != nil {
		e.live++
	}
	l.conns[&pc.Peer] = &ledgerConn{key: k, since: now}
	drop := l.quarantine.matches(k, addr)
	if drop {
		l.dropped++
	}
	l.mu.Unlock()
	if drop {
		// Not under the client's lock, which this callback runs under.
		go pc.Close()
	}
}

func (l *ledger) closed(p *torrent.Peer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.conns[p]
	if c == nil {
		return
	}
	delete(l.conns, p)
	if e := l.peers[c.key]; e != nil && e.live > 0 {
		e.live--
		e.LastSeen = l.now()
	}
}

func (l *ledger) sent(ev torrent.PeerRequestEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[ev.Peer]; c != nil && c.outstanding < ledgerConnRequests {
		if c.outstanding == 0 {
			c.since = l.now()
		}
		c.outstanding++
	}
}

func (l *ledger) answered(ev torrent.PeerMessageEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[ev.Peer]; c != nil {
		c.outstanding = max(0, c.outstanding-1)
		c.since = l.now()
	}
}

func (l *ledger) deleted(ev torrent.PeerRequestEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[ev.Peer]; c != nil {
		c.outstanding = max(0, c.outstanding-1)
	}
}

func (l *ledger) read(pc *torrent.PeerConn, m *pp.Message) {
	if m.Type != pp.Reject {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[&pc.Peer]; c != nil {
		if e := l.peers[c.key]; e != nil {
			e.Refused++
		}
	}
}

// ledgerSample is one connection's counters read at a tick, outside the
// ledger's lock (reading them takes the client's).
type ledgerSample struct {
	pc            *torrent.PeerConn
	down, up, bad int64
	wanted        bool // it has pieces we lack
}

// run ticks until ctx ends.
func (l *ledger) run(ctx context.Context, cl *torrent.Client) {
	t := time.NewTicker(ledgerTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.tick(cl)
		}
	}
}

// tick reads every connection's counters into the ledger, counts stalls
// and starved seconds, measures the upload rate, drops quarantined peers
// and ages out old entries.
func (l *ledger) tick(cl *torrent.Client) {
	var samples []ledgerSample
	for _, t := range cl.Torrents() {
		if t.Info() == nil {
			continue
		}
		var missing *roaring.Bitmap
		if !t.Complete().Bool() {
			missing = roaring.New()
			i := 0
			for _, run := range t.PieceStateRuns() {
				if !run.Complete {
					missing.AddRange(uint64(i), uint64(i+run.Length))
				}
				i += run.Length
			}
		}
		for _, pc := range t.PeerConns() {
			st := pc.Stats()
			s := ledgerSample{pc: pc, down: st.BytesReadUsefulData.Int64(), up: st.BytesWrittenData.Int64(), bad: st.PiecesDirtiedBad.Int64()}
			if missing != nil && !missing.IsEmpty() {
				s.wanted = pc.PeerPieces().AndCardinality(missing) > 0
			}
			samples = append(samples, s)
		}
	}
	var drop []*torrent.PeerConn
	l.mu.Lock()
	now := l.now()
	var upDelta int64
	for _, s := range samples {
		c := l.conns[&s.pc.Peer]
		if c == nil {
			continue // closed meanwhile
		}
		dDown, dUp, dBad := s.down-c.down, s.up-c.up, s.bad-c.bad
		if !c.seenCounters {
			// Whatever moved before the first tick belongs to this
			// connection too.
			dDown, dUp, dBad = s.down, s.up, s.bad
			c.seenCounters = true
		}
		c.down, c.up, c.bad = s.down, s.up, s.bad
		upDelta += max(dUp, 0)
		if c.key.id == ([20]byte{}) {
			c.key = keyOf(s.pc) // added before its handshake was read
		}
		addr := addrOf(s.pc)
		e := l.entryLocked(c.key, addr, now)
		if e == nil {
			continue
		}
		e.Down = min(e.Down+max(dDown, 0), report.MaxLedgerCount)
		e.Up = min(e.Up+max(dUp, 0), report.MaxLedgerCount)
		e.BadPieces = min(e.BadPieces+max(dBad, 0), report.MaxLedgerCount)
		if s.wanted && dDown <= 0 {
			e.Starved = min(e.Starved+1, report.MaxLedgerCount)
		}
		switch {
		case l.quarantine.matches(c.key, addr):
			drop = append(drop, s.pc)
			l.dropped++
		case c.outstanding > 0 && now.Sub(c.since) >= l.stall:
			// The library never times a request out: chunks asked of a
			// peer that does not answer would wait for it forever.
			// Closing the connection hands them to other sources.
			e.Stalled = min(e.Stalled+int64(c.outstanding), report.MaxLedgerCount)
			c.since = now
			drop = append(drop, s.pc)
		}
	}
	l.upHist[l.upPos%ledgerRateWindow] = upDelta
	l.upPos++
	var sum int64
	for _, v := range l.upHist {
		sum += v
	}
	l.upRate = float64(sum) / (float64(min(l.upPos, ledgerRateWindow)) * ledgerTick.Seconds())
	l.upPeak = max(l.upPeak, l.upRate)
	for k, e := range l.peers {
		if e.live == 0 && now.Sub(e.LastSeen) > ledgerIdle {
			delete(l.peers, k)
		}
	}
	l.mu.Unlock()
	for _, pc := range drop {
		pc.Close()
	}
}

// snapshot is the ledger for a report: the peers exchanged with most,
// within report.MaxLedgerPeers. upLimit is the configured upload limit in
// bytes/s (0: none).
func (l *ledger) snapshot(upLimit float64) *report.Ledger {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := &report.Ledger{
		UpRate: min(l.upRate, report.MaxRate), UpPeak: min(l.upPeak, report.MaxRate),
		UpLimit: min(max(upLimit, 0), report.MaxRate), TLSID: l.tlsID,
	}
	for _, e := range l.peers {
		out.Peers = append(out.Peers, e.PeerLedger)
	}
	// Misbehaviour first, then the busiest.
	weight := func(p report.PeerLedger) int64 {
		return (p.BadPieces+p.Stalled+p.Refused+p.Starved)<<20 + p.Down + p.Up
	}
	slices.SortFunc(out.Peers, func(a, b report.PeerLedger) int {
		if wa, wb := weight(a), weight(b); wa != wb {
			if wa > wb {
				return -1
			}
			return 1
		}
		if a.PeerID != b.PeerID {
			if a.PeerID < b.PeerID {
				return -1
			}
			return 1
		}
		if a.Addr < b.Addr {
			return -1
		}
		return 1
	})
	if len(out.Peers) > report.MaxLedgerPeers {
		out.Peers = out.Peers[:report.MaxLedgerPeers]
	}
	return out
}

// setQuarantine installs the origin's quarantine list (report answer).
// Connections it names close at the next tick; new ones as they open.
func (l *ledger) setQuarantine(entries []string) {
	q := parseQuarantineSet(entries)
	l.mu.Lock()
	l.quarantine = q
	l.mu.Unlock()
}

// quarantineSet is the agent's copy of the origin's quarantine list, in
// the forms an agent can match: peer IDs and addresses. (Agent IDs and
// certificate fingerprints the origin maps to peer IDs before sending.)
type quarantineSet struct {
	ids   map[[20]byte]bool
	ips   map[netip.Addr]bool
	addrs map[string]bool // ip:port
}

func parseQuarantineSet(entries []string) quarantineSet {
	q := quarantineSet{ids: map[[20]byte]bool{}, ips: map[netip.Addr]bool{}, addrs: map[string]bool{}}
	for _, s := range entries {
		s, err := report.ParseQuarantine(s)
		if err != nil {
			continue // a newer origin's kind: not ours to match
		}
		kind, v, _ := strings.Cut(s, ":")
		switch kind {
		case report.QuarantinePeer:
			var id [20]byte
			if b, err := hex.DecodeString(v); err == nil && len(b) == 20 {
				copy(id[:], b)
				q.ids[id] = true
			}
		case report.QuarantineAddr:
			if ip, err := netip.ParseAddr(v); err == nil {
				q.ips[ip] = true
			} else {
				q.addrs[v] = true
			}
		}
	}
	return q
}

func (q quarantineSet) matches(k ledgerKey, addr string) bool {
	return q.ids[k.id] || q.ips[k.ip] || q.addrs[addr]
}

// quarantined is how many entries are in force and how many connections
// were dropped for them (status, metrics).
func (l *ledger) quarantined() (entries int, dropped int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.quarantine.ids) + len(l.quarantine.ips) + len(l.quarantine.addrs), l.dropped
}

// upLimitBytes is the upload limiter's rate in bytes/s, 0 when it does
// not limit.
func upLimitBytes(l *rate.Limiter) float64 {
	if l == nil || l.Limit() >= btclient.Unmetered || l.Limit() == rate.Inf {
		return 0
	}
	return float64(l.Limit())
}

// LedgerStatus is the contribution ledger as the agent's status shows it.
type LedgerStatus struct {
	// Quarantined is how many quarantine entries (peer IDs and addresses)
	// the origin's last answer put in force; Dropped how many connections
	// they closed or refused so far.
	Quarantined int   `json:"quarantined"`
	Dropped     int64 `json:"dropped"`
	// Report is what the next report says.
	Report *report.Ledger `json:"report,omitempty"`
}

// Ledger returns the contribution ledger's state.
func (a *Agent) Ledger() LedgerStatus {
	if a.ledger == nil {
		return LedgerStatus{}
	}
	n, dropped := a.ledger.quarantined()
	return LedgerStatus{Quarantined: n, Dropped: dropped, Report: a.ledger.snapshot(upLimitBytes(a.up))}
}

// PeerID is the agent's BitTorrent peer ID (new at every start).
func (a *Agent) PeerID() [20]byte { return a.peerID }
