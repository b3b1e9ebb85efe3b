package lsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The BEP 14 multicast groups.
var (
	Group4 = netip.MustParseAddrPort("239.192.152.143:6771")
	Group6 = netip.MustParseAddrPort("[ff15::efc0:988f]:6771")
)

// Bounds on what senders can make a service do.
const (
	// DefaultInterval is how often each torrent is announced in steady
	// state (BEP 14: at most once a minute).
	DefaultInterval = time.Minute
	// MaxPeersPerTorrent bounds the peers learned per torrent; past it a
	// new address waits until an old one is forgotten.
	MaxPeersPerTorrent = 64
	// peerTTL is how long a learned peer is remembered.
	peerTTL = 5 * time.Minute
	// maxSenders bounds the per-sender rate table.
	maxSenders = 256
	// A sender may send senderBurst messages at once, then one every
	// senderEvery (enough for MaxInfohashes*senderBurst torrents a minute).
	senderBurst = 6
	senderEvery = 5 * time.Second
)

// Config configures a Service.
type Config struct {
	Scope Scope
	// Port is the BitTorrent port announced (the peer port).
	Port int
	// Source, if set, is the address announces are sent from: the
	// address the peer port listens on when that is not every address
	// (receivers dial the source address). Only its family is announced.
	Source netip.Addr
	// Listen only: learn peers but do not announce (download-only).
	ListenOnly bool
	// Interval between two announces of one torrent; default
	// DefaultInterval, never less than a second.
	Interval time.Duration
	// OnPeer is called with a candidate peer for a torrent added with Add:
	// the announce's source address and Port. It must not block long.
	OnPeer func(ih [20]byte, addr netip.AddrPort)
	Log    *slog.Logger

	// interfaces overrides the interfaces used (tests).
	interfaces func() ([]net.Interface, error)
}

// Stats counts what a service did; all fields are totals.
type Stats struct {
	Sent      int64 `json:"sent"`
	Received  int64 `json:"received"`
	Malformed int64 `json:"malformed"`
	// Foreign are well-formed messages whose cookie is not of this scope:
	// another tenant or site, a forger, a plain BEP 14 client.
	Foreign int64 `json:"foreign"`
	// Limited are messages dropped by the per-sender rate limit.
	Limited int64 `json:"limited"`
	// Peers are candidate peers handed to OnPeer.
	Peers int64 `json:"peers"`
}

type sender struct {
	tokens float64
	last   time.Time
}

type torrentState struct {
	next     time.Time // next announce
	answered time.Time // last announce brought forward for a newcomer
	peers    map[netip.AddrPort]time.Time
}

// answerGap bounds the announces brought forward because a new neighbour
// announced a torrent: the newcomer learns of this agent at once instead
// of up to an interval later (discovery works both ways even if one
// side's dial fails), and a flood of newcomers costs at most one extra
// announce per torrent per answerGap.
const answerGap = 10 * time.Second

// Service announces torrents and listens for announces on the groups.
type Service struct {
	cfg Config
	id  string
	log *slog.Logger
	// c4 and c6 read the groups; o4 and o6 send (from the interface's
	// address: a socket bound to the group has no usable source address).
	c4, o4 *ipv4.PacketConn
	c6, o6 *ipv6.PacketConn
	ifis   []net.Interface
	wake   chan struct{}

	mu       sync.Mutex
	torrents map[[20]byte]*torrentState
	senders  map[netip.Addr]*sender

	sent, received, malformed, foreign, limited, peers atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a service that is not yet on the network (Start does
// that); tests feed it messages with handle.
func New(cfg Config) *Service {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	cfg.Interval = max(cfg.Interval, time.Second)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.OnPeer == nil {
		cfg.OnPeer = func([20]byte, netip.AddrPort) {}
	}
	if cfg.interfaces == nil {
		cfg.interfaces = net.Interfaces
	}
	return &Service{
		cfg: cfg, id: newInstanceID(), log: cfg.Log, wake: make(chan struct{}, 1),
		torrents: map[[20]byte]*torrentState{}, senders: map[netip.Addr]*sender{},
	}
}

// Start joins the groups on every up, multicast-capable interface and
// runs until Close. It fails only if neither IPv4 nor IPv6 works.
func (s *Service) Start() error {
	ifis, err := s.cfg.interfaces()
	if err != nil {
		return fmt.Errorf("lsd: interfaces: %w", err)
	}
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && s.owns(ifi) {
			s.ifis = append(s.ifis, ifi)
		}
	}
	if len(s.ifis) == 0 {
		return ErrNoInterface
	}
	var err4, err6 error
	if !s.cfg.Source.IsValid() || s.cfg.Source.Is4() {
		err4 = s.open4()
	}
	if !s.cfg.Source.IsValid() || !s.cfg.Source.Is4() {
		err6 = s.open6()
	}
	if s.c4 == nil && s.c6 == nil {
		return fmt.Errorf("lsd: %w", errors.Join(err4, err6))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.c4 != nil {
		s.wg.Add(1)
		go s.read(func(b []byte) (int, net.Addr, error) { n, _, a, err := s.c4.ReadFrom(b); return n, a, err })
	}
	if s.c6 != nil {
		s.wg.Add(1)
		go s.read(func(b []byte) (int, net.Addr, error) { n, _, a, err := s.c6.ReadFrom(b); return n, a, err })
	}
	s.wg.Add(1)
	go s.announceLoop(ctx)
	s.log.Info("local service discovery on", "interfaces", len(s.ifis), "ipv4", s.c4 != nil, "ipv6", s.c6 != nil, "announce", !s.cfg.ListenOnly)
	return nil
}

func (s *Service) open4() error {
	c, err := listenGroup("udp4", Group4)
	if err != nil {
		return err
	}
	p := ipv4.NewPacketConn(c)
	joined := 0
	for i := range s.ifis {
		if p.JoinGroup(&s.ifis[i], &net.UDPAddr{IP: Group4.Addr().AsSlice()}) == nil {
			joined++
		}
	}
	if joined == 0 {
		c.Close()
		return errors.New("ipv4: joined the group on no interface")
	}
	oc, err := net.ListenPacket("udp4", s.sourceAddr("0.0.0.0"))
	if err != nil {
		c.Close()
		return err
	}
	o := ipv4.NewPacketConn(oc)
	// Agents on one host (and tests) hear each other.
	o.SetMulticastLoopback(true)
	o.SetMulticastTTL(1) // BEP 14 is for the local network only
	s.c4, s.o4 = p, o
	return nil
}

func (s *Service) open6() error {
	c, err := listenGroup("udp6", Group6)
	if err != nil {
		return err
	}
	p := ipv6.NewPacketConn(c)
	joined := 0
	for i := range s.ifis {
		if p.JoinGroup(&s.ifis[i], &net.UDPAddr{IP: Group6.Addr().AsSlice()}) == nil {
			joined++
		}
	}
	if joined == 0 {
		c.Close()
		return errors.New("ipv6: joined the group on no interface")
	}
	oc, err := net.ListenPacket("udp6", s.sourceAddr("::"))
	if err != nil {
		c.Close()
		return err
	}
	o := ipv6.NewPacketConn(oc)
	o.SetMulticastLoopback(true)
	o.SetMulticastHopLimit(1)
	s.c6, s.o6 = p, o
	return nil
}

// ErrNoInterface is returned by Start when no interface can carry the
// announces: none is up with multicast, or none holds Config.Source.
var ErrNoInterface = errors.New("lsd: no up multicast interface (holding the source address)")

// owns reports whether ifi may carry announces: with a Source, only the
// interface holding it (an agent listening on 127.0.0.1 must not
// announce on the LAN, where nobody could dial it).
func (s *Service) owns(ifi net.Interface) bool {
	if !s.cfg.Source.IsValid() {
		return true
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == s.cfg.Source {
			return true
		}
	}
	return false
}

// sourceAddr is where the sending socket binds: Source, or any.
func (s *Service) sourceAddr(any string) string {
	if s.cfg.Source.IsValid() {
		return netip.AddrPortFrom(s.cfg.Source, 0).String()
	}
	return net.JoinHostPort(any, "0")
}

// Close leaves the groups and stops the goroutines.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.c4 != nil {
		s.c4.Close()
		s.o4.Close()
	}
	if s.c6 != nil {
		s.c6.Close()
		s.o6.Close()
	}
	s.wg.Wait()
	return nil
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Sent: s.sent.Load(), Received: s.received.Load(), Malformed: s.malformed.Load(),
		Foreign: s.foreign.Load(), Limited: s.limited.Load(), Peers: s.peers.Load(),
	}
}

// Add makes the service announce ih (at once, then every Interval) and
// report peers announcing it.
func (s *Service) Add(ih [20]byte) {
	s.mu.Lock()
	if _, ok := s.torrents[ih]; !ok {
		s.torrents[ih] = &torrentState{peers: map[netip.AddrPort]time.Time{}}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Remove stops announcing ih and forgets its peers.
func (s *Service) Remove(ih [20]byte) {
	s.mu.Lock()
	delete(s.torrents, ih)
	s.mu.Unlock()
}

func (s *Service) announceLoop(ctx context.Context) {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if !s.cfg.ListenOnly {
			for _, m := range s.due(time.Now()) {
				s.send(m)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// due returns the messages to send now, marking their torrents announced.
func (s *Service) due(now time.Time) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hashes [][20]byte
	for ih, t := range s.torrents {
		if !now.Before(t.next) {
			hashes = append(hashes, ih)
			t.next = now.Add(s.cfg.Interval)
		}
	}
	var out []Message
	for len(hashes) > 0 {
		n := min(len(hashes), MaxInfohashes)
		m := Message{Port: s.cfg.Port, Infohashes: hashes[:n]}
		m.Cookie = s.cfg.Scope.Cookie(s.id, m.Port, m.Infohashes)
		out = append(out, m)
		hashes = hashes[n:]
	}
	return out
}

func (s *Service) send(m Message) {
	if s.c4 != nil {
		m.Host = Group4.String()
		b := m.Encode()
		dst := net.UDPAddrFromAddrPort(Group4)
		for i := range s.ifis {
			if s.o4.SetMulticastInterface(&s.ifis[i]) != nil {
				continue
			}
			if _, err := s.o4.WriteTo(b, nil, dst); err == nil {
				s.sent.Add(1)
			}
		}
	}
	if s.c6 != nil {
		m.Host = Group6.String()
		b := m.Encode()
		dst := net.UDPAddrFromAddrPort(Group6)
		for i := range s.ifis {
			if s.o6.SetMulticastInterface(&s.ifis[i]) != nil {
				continue
			}
			if _, err := s.o6.WriteTo(b, nil, dst); err == nil {
				s.sent.Add(1)
			}
		}
	}
}

func (s *Service) read(readFrom func([]byte) (int, net.Addr, error)) {
	defer s.wg.Done()
	// One byte more than the limit shows an oversized datagram.
	buf := make([]byte, MaxMessage+1)
	for {
		n, from, err := readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("lsd read", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(ua.IP)
		if !ok {
			continue
		}
		if ua.Zone != "" {
			src = src.WithZone(ua.Zone)
		}
		s.handle(buf[:n], src.Unmap(), time.Now())
	}
}

// handle processes one datagram from src. The peer's address is src and
// the message's Port: nothing in a message can point elsewhere.
func (s *Service) handle(b []byte, src netip.Addr, now time.Time) {
	s.received.Add(1)
	m, err := Parse(b)
	if err != nil {
		s.malformed.Add(1)
		return
	}
	id, ok := s.cfg.Scope.Check(m)
	if !ok {
		s.foreign.Add(1)
		return
	}
	if id == s.id || !src.IsValid() || src.IsUnspecified() || src.IsMulticast() {
		return
	}
	// Parsing and the MAC are cheap and bounded; what a sender can make
	// the service do past them is limited per source address.
	if !s.allow(src, now) {
		s.limited.Add(1)
		return
	}
	addr := netip.AddrPortFrom(src, uint16(m.Port))
	type found struct{ ih [20]byte }
	var news []found
	answer := false
	s.mu.Lock()
	for _, ih := range m.Infohashes {
		t := s.torrents[ih]
		if t == nil {
			continue
		}
		last, known := t.peers[addr]
		if !known && len(t.peers) >= MaxPeersPerTorrent {
			for a, seen := range t.peers {
				if now.Sub(seen) > peerTTL {
					delete(t.peers, a)
				}
			}
			if len(t.peers) >= MaxPeersPerTorrent {
				continue
			}
		}
		t.peers[addr] = now
		if !known && now.Sub(t.answered) >= answerGap && t.next.After(now) {
			t.next, t.answered = now, now
			answer = true
		}
		// A known peer is handed over again once an interval has passed:
		// its connection may have dropped since.
		if !known || now.Sub(last) >= s.cfg.Interval/2 {
			news = append(news, found{ih})
		} else {
			t.peers[addr] = last
		}
	}
	s.mu.Unlock()
	if answer {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	for _, f := range news {
		s.peers.Add(1)
		s.cfg.OnPeer(f.ih, addr)
	}
}

// allow is the per-sender token bucket; the table of senders is bounded,
// and a full table of recently active senders refuses newcomers.
func (s *Service) allow(src netip.Addr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd := s.senders[src]
	if sd == nil {
		if len(s.senders) >= maxSenders {
			for a, o := range s.senders {
				if now.Sub(o.last) > time.Duration(senderBurst)*senderEvery {
					delete(s.senders, a)
				}
			}
			if len(s.senders) >= maxSenders {
				return false
			}
		}
		sd = &sender{tokens: senderBurst, last: now}
		s.senders[src] = sd
	}
	sd.tokens = min(senderBurst, sd.tokens+now.Sub(sd.last).Seconds()/senderEvery.Seconds())
	sd.last = now
	if sd.tokens < 1 {
		return false
	}
	sd.tokens--
	return true
}
