package lsd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/testenv"
)

func ih(b byte) [20]byte { return [20]byte{b, 1, 2, 3} }

func TestMessageRoundTrip(t *testing.T) {
	m := Message{Host: Group4.String(), Port: 6881, Infohashes: [][20]byte{ih(1), ih(2)}, Cookie: "abc"}
	b := m.Encode()
	if !bytes.HasPrefix(b, []byte("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: ")) || !bytes.HasSuffix(b, []byte("\r\n\r\n\r\n")) {
		t.Fatalf("wire form:\n%q", b)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != m.Host || got.Port != m.Port || got.Cookie != m.Cookie || len(got.Infohashes) != 2 || got.Infohashes[1] != ih(2) {
		t.Fatalf("got %+v, want %+v", got, m)
	}
	// A plain BEP 14 message of another client, \n line ends, upper-case hex.
	plain := "BT-SEARCH * HTTP/1.1\nHost: 239.192.152.143:6771\nPort: 51413\nInfohash: " + strings.Repeat("AB", 20) + "\n\n\n"
	if got, err := Parse([]byte(plain)); err != nil || got.Port != 51413 || got.Cookie != "" {
		t.Fatalf("plain message: %+v %v", got, err)
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	good := "BT-SEARCH * HTTP/1.1\r\nHost: h\r\nPort: 1\r\nInfohash: " + strings.Repeat("0", 40) + "\r\n\r\n\r\n"
	many := "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n"
	for i := 0; i <= MaxInfohashes; i++ {
		many += fmt.Sprintf("Infohash: %040x\r\n", i+1)
	}
	for name, in := range map[string]string{
		"empty":            "",
		"other method":     strings.Replace(good, "BT-SEARCH", "M-SEARCH", 1),
		"no port":          strings.Replace(good, "Port: 1\r\n", "", 1),
		"port 0":           strings.Replace(good, "Port: 1", "Port: 0", 1),
		"port too big":     strings.Replace(good, "Port: 1", "Port: 65536", 1),
		"port +1":          strings.Replace(good, "Port: 1", "Port: +1", 1),
		"two ports":        strings.Replace(good, "Port: 1", "Port: 1\r\nPort: 2", 1),
		"short infohash":   strings.Replace(good, strings.Repeat("0", 40), strings.Repeat("0", 39), 1),
		"non-hex infohash": strings.Replace(good, strings.Repeat("0", 40), strings.Repeat("z", 40), 1),
		"no infohash":      "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
		"too many hashes":  many + "\r\n",
		"too big":          good + strings.Repeat("x", MaxMessage),
		"no colon":         strings.Replace(good, "Host: h", "Host h", 1),
		"control byte":     strings.Replace(good, "Host: h", "Host: h\x01", 1),
		"long cookie":      strings.Replace(good, "Host: h", "cookie: "+strings.Repeat("c", 81), 1),
		"body":             good + "more",
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Message{Host: "h", Port: 1, Infohashes: [][20]byte{ih(1)}, Cookie: "c"}.Encode())
	f.Add([]byte("BT-SEARCH * HTTP/1.1\nPort: 9\nInfohash: " + strings.Repeat("ab", 20) + "\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if m.Port < 1 || m.Port > 65535 || len(m.Infohashes) == 0 || len(m.Infohashes) > MaxInfohashes || len(m.Cookie) > maxCookie {
			t.Fatalf("accepted out of bounds: %+v", m)
		}
		again, err := Parse(m.Encode())
		if err != nil || again.Port != m.Port || len(again.Infohashes) != len(m.Infohashes) {
			t.Fatalf("re-encoded message: %+v %v", again, err)
		}
	})
}

type peerLog struct {
	mu  sync.Mutex
	got map[[20]byte][]netip.AddrPort
}

func (p *peerLog) on(ih [20]byte, a netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got == nil {
		p.got = map[[20]byte][]netip.AddrPort{}
	}
	p.got[ih] = append(p.got[ih], a)
}

func (p *peerLog) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, as := range p.got {
		n += len(as)
	}
	return n
}

// announce is what a service of scope sc with instance id would send.
func announce(sc Scope, id string, port int, hashes ...[20]byte) []byte {
	m := Message{Host: Group4.String(), Port: port, Infohashes: hashes}
	m.Cookie = sc.Cookie(id, port, hashes)
	return m.Encode()
}

// Only announces of the receiver's own tenant and site become peers; a
// wrong cookie, another tenant's, another site's, a forged or altered
// one, a plain BEP 14 client and garbage never do.
func TestScopeKeepsStrangersOut(t *testing.T) {
	secret := []byte("tenant secret")
	mine := NewScope(secret, "acme", "eu", "berlin")
	var log peerLog
	s := New(Config{Scope: mine, Port: 7000, OnPeer: log.on})
	s.Add(ih(1))
	now := time.Now()
	src := netip.MustParseAddr("10.0.0.9")
	hostile := []struct {
		name string
		msg  []byte
	}{
		{"other tenant", announce(NewScope(secret, "globex", "eu", "berlin"), "0123456789abcdef", 7001, ih(1))},
		{"other site", announce(NewScope(secret, "acme", "eu", "paris"), "0123456789abcdef", 7001, ih(1))},
		{"other region", announce(NewScope(secret, "acme", "us", "berlin"), "0123456789abcdef", 7001, ih(1))},
		{"no secret", announce(NewScope(nil, "acme", "eu", "berlin"), "0123456789abcdef", 7001, ih(1))},
		{"wrong secret", announce(NewScope([]byte("guess"), "acme", "eu", "berlin"), "0123456789abcdef", 7001, ih(1))},
		{"no cookie", Message{Host: "h", Port: 7001, Infohashes: [][20]byte{ih(1)}}.Encode()},
		{"random cookie", Message{Host: "h", Port: 7001, Infohashes: [][20]byte{ih(1)}, Cookie: "0123456789abcdef-" + strings.Repeat("ab", 16)}.Encode()},
		{"altered port", bytes.Replace(announce(mine, "0123456789abcdef", 7001, ih(1)), []byte("Port: 7001"), []byte("Port: 7002"), 1)},
		{"altered hashes", bytes.Replace(announce(mine, "0123456789abcdef", 7001, ih(2)), []byte(fmt.Sprintf("%x", ih(2))), []byte(fmt.Sprintf("%x", ih(1))), 1)},
		{"garbage", []byte("\x00\xff hello")},
	}
	for i, h := range hostile {
		// Each from its own address, so the rate limit is not what stops it.
		s.handle(h.msg, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), now)
		if n := log.count(); n != 0 {
			t.Fatalf("%s: became a peer", h.name)
		}
	}
	st := s.Stats()
	if st.Foreign != int64(len(hostile)-1) || st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Its own announces (looped back) are not peers either.
	s.handle(announce(mine, s.id, 7000, ih(1)), src, now)
	if log.count() != 0 {
		t.Fatal("own announce became a peer")
	}
	// A neighbour of the same tenant and site is one, at its source address.
	s.handle(announce(mine, "fedcba9876543210", 7001, ih(1), ih(3)), src, now)
	if got := log.got[ih(1)]; len(got) != 1 || got[0] != netip.MustParseAddrPort("10.0.0.9:7001") || len(log.got[ih(3)]) != 0 {
		t.Fatalf("peers %v", log.got)
	}
	// The same announce again soon after is not handed over twice.
	s.handle(announce(mine, "fedcba9876543210", 7001, ih(1)), src, now.Add(time.Second))
	if log.count() != 1 {
		t.Fatalf("repeat handed over: %v", log.got)
	}
}

// One sender cannot flood: its messages past the burst are dropped, and
// the peers learned per torrent stop at MaxPeersPerTorrent.
func TestBoundedPerSenderAndTorrent(t *testing.T) {
	sc := NewScope([]byte("k"), "acme", "eu", "s1")
	var log peerLog
	s := New(Config{Scope: sc, Port: 7000, OnPeer: log.on})
	s.Add(ih(1))
	now := time.Now()
	src := netip.MustParseAddr("10.0.0.2")
	for port := 1; port <= 100; port++ {
		s.handle(announce(sc, "fedcba9876543210", port, ih(1)), src, now)
	}
	if n := log.count(); n != senderBurst {
		t.Fatalf("one sender in a burst: %d peers, want %d", n, senderBurst)
	}
	if st := s.Stats(); st.Limited != 100-senderBurst {
		t.Fatalf("stats %+v", st)
	}
	for i := 0; i < 300; i++ {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)})
		s.handle(announce(sc, "fedcba9876543210", 9000, ih(1)), a, now)
	}
	if n := log.count(); n != MaxPeersPerTorrent {
		t.Fatalf("%d peers learned for one torrent, want %d", n, MaxPeersPerTorrent)
	}
	s.mu.Lock()
	senders := len(s.senders)
	s.mu.Unlock()
	if senders > maxSenders {
		t.Fatalf("%d senders tracked", senders)
	}
}

// Two services on the real BEP 14 group (in a private network namespace
// whose loopback carries multicast) find each other; a third of another
// tenant hears them but learns nothing, and they learn nothing of it.
func TestMulticastFindsNeighbours(t *testing.T) {
	if !testenv.InPrivateNetwork(t, 60*time.Second) {
		return
	}
	secret := []byte("k")
	type node struct {
		s   *Service
		log *peerLog
	}
	start := func(tenant string, port int) node {
		log := &peerLog{}
		s := New(Config{Scope: NewScope(secret, tenant, "eu", "s1"), Port: port, OnPeer: log.on, Interval: time.Second,
			// lo's 127.0.0.1 is host-scoped: without a bound source the
			// kernel sends multicast from 0.0.0.0.
			Source: netip.MustParseAddr("127.0.0.1")})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.Add(ih(1))
		return node{s, log}
	}
	a, b, evil := start("acme", 7001), start("acme", 7002), start("globex", 7003)
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if a.log.count() == 0 || b.log.count() == 0 {
			return fmt.Errorf("a learned %d, b %d", a.log.count(), b.log.count())
		}
		return nil
	})
	// Let the stranger's announces arrive too.
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if a.s.Stats().Foreign == 0 || evil.s.Stats().Foreign == 0 {
			return errors.New("no foreign announce heard yet")
		}
		return nil
	})
	a.log.mu.Lock()
	got := a.log.got[ih(1)]
	a.log.mu.Unlock()
	if got[0].Port() != 7002 || !got[0].Addr().IsLoopback() {
		t.Fatalf("a learned %v", got)
	}
	for _, n := range []node{a, b} {
		n.log.mu.Lock()
		for _, p := range n.log.got[ih(1)] {
			if p.Port() == 7003 {
				t.Errorf("learned the other tenant's peer %v", p)
			}
		}
		n.log.mu.Unlock()
	}
	if n := evil.log.count(); n != 0 {
		t.Fatalf("the other tenant learned %d peers", n)
	}
	if a.s.Stats().Sent == 0 {
		t.Fatal("nothing sent")
	}
}

// A torrent is announced when it starts, then once an interval; a new
// neighbour's announce brings the next one forward, at most once per
// answerGap, so the newcomer learns of this agent at once.
func TestAnnounceSchedule(t *testing.T) {
	sc := NewScope([]byte("k"), "acme", "eu", "s1")
	s := New(Config{Scope: sc, Port: 7000})
	s.Add(ih(1))
	now := time.Now()
	msgs := s.due(now)
	if len(msgs) != 1 || len(msgs[0].Infohashes) != 1 {
		t.Fatalf("at start: %+v", msgs)
	}
	if id, ok := sc.Check(msgs[0]); !ok || id != s.id {
		t.Fatalf("own cookie does not check: %q %v", id, ok)
	}
	if msgs := s.due(now.Add(30 * time.Second)); len(msgs) != 0 {
		t.Fatalf("announced again within the interval: %+v", msgs)
	}
	s.handle(announce(sc, "fedcba9876543210", 7001, ih(1)), netip.MustParseAddr("10.0.0.2"), now.Add(5*time.Second))
	if msgs := s.due(now.Add(5 * time.Second)); len(msgs) != 1 {
		t.Fatal("a newcomer was not answered")
	}
	s.handle(announce(sc, "fedcba9876543210", 7002, ih(1)), netip.MustParseAddr("10.0.0.3"), now.Add(6*time.Second))
	if msgs := s.due(now.Add(6 * time.Second)); len(msgs) != 0 {
		t.Fatal("answered twice within answerGap")
	}
	s.handle(announce(sc, "fedcba9876543210", 7002, ih(1)), netip.MustParseAddr("10.0.0.3"), now.Add(20*time.Second))
	if msgs := s.due(now.Add(20 * time.Second)); len(msgs) != 0 {
		t.Fatal("a known neighbour was answered")
	}
	s.handle(announce(sc, "fedcba9876543210", 7002, ih(1)), netip.MustParseAddr("10.0.0.5"), now.Add(20*time.Second))
	if msgs := s.due(now.Add(20 * time.Second)); len(msgs) != 1 {
		t.Fatal("a newcomer after answerGap was not answered")
	}
	s.handle(announce(sc, "fedcba9876543210", 7003, ih(1)), netip.MustParseAddr("10.0.0.4"), now.Add(21*time.Second))
	if msgs := s.due(now.Add(22 * time.Second)); len(msgs) != 0 {
		t.Fatal("answered twice within answerGap")
	}
	if msgs := s.due(now.Add(81 * time.Second)); len(msgs) != 1 {
		t.Fatal("no steady-state announce after the interval")
	}
	if msgs := s.due(now.Add(82 * time.Second)); len(msgs) != 0 {
		t.Fatal("announced twice within the interval")
	}
	// More torrents than fit a message go in several.
	for i := 0; i < MaxInfohashes+5; i++ {
		s.Add([20]byte{9, byte(i)})
	}
	if msgs := s.due(now.Add(83 * time.Second)); len(msgs) != 2 || len(msgs[0].Encode()) > MaxMessage {
		t.Fatalf("%d messages", len(msgs))
	}
}
