package dht

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	adht "github.com/anacrolix/dht/v2"
	alog "github.com/anacrolix/log"

	"github.com/swarmship/swarmship/internal/testenv"
)

type peerLog struct {
	mu  sync.Mutex
	got map[[20]byte]map[netip.AddrPort]bool
}

func (p *peerLog) on(ih [20]byte, a netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got == nil {
		p.got = map[[20]byte]map[netip.AddrPort]bool{}
	}
	if p.got[ih] == nil {
		p.got[ih] = map[netip.AddrPort]bool{}
	}
	p.got[ih][a] = true
}

// ports are the peer ports learned for ih.
func (p *peerLog) ports(ih [20]byte) map[int]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]bool{}
	for a := range p.got[ih] {
		out[int(a.Port())] = true
	}
	return out
}

func (p *peerLog) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.got {
		n += len(m)
	}
	return n
}

type testNode struct {
	*Node
	log *peerLog
}

func startNode(t *testing.T, k Key, port int, bootstrap ...netip.AddrPort) testNode {
	t.Helper()
	return startNodeFile(t, k, port, "", bootstrap...)
}

func startNodeFile(t *testing.T, k Key, port int, file string, bootstrap ...netip.AddrPort) testNode {
	t.Helper()
	log := &peerLog{}
	cfg := Config{Key: k, Listen: "127.0.0.1:0", Port: port, NodesFile: file, OnPeer: log.on,
		Interval: time.Second, Retry: 200 * time.Millisecond}
	for _, b := range bootstrap {
		cfg.Bootstrap = append(cfg.Bootstrap, b.String())
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return testNode{n, log}
}

var ih1 = [20]byte{0xaa, 1}

// Agents of one tenant, bootstrapped from an origin's node, find each
// other's peers with no tracker; one announcing in another scope is not
// found there.
func TestAgentsFindEachOther(t *testing.T) {
	k := NewKey([]byte("tenant secret"), "acme")
	origin := startNode(t, k, 0)
	site := []Scope{SiteScope("eu", "berlin")}
	a := startNode(t, k, 7001, origin.Addr())
	b := startNode(t, k, 7002, origin.Addr())
	c := startNode(t, k, 7003, origin.Addr())
	a.Add(ih1, site, nil)
	b.Add(ih1, site, nil)
	c.Add(ih1, []Scope{SiteScope("eu", "paris")}, nil)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !a.log.ports(ih1)[7002] || !b.log.ports(ih1)[7001] {
			return fmt.Errorf("a learned %v, b %v", a.log.ports(ih1), b.log.ports(ih1))
		}
		return nil
	})
	if p := c.log.ports(ih1); p[7001] || p[7002] {
		t.Fatalf("another site's agent learned %v", p)
	}
	if p := a.log.ports(ih1); p[7003] || p[7001] {
		t.Fatalf("a learned %v (another site's or its own)", p)
	}
	// A fallback scope is looked up only while the main ones find nobody.
	c.Add(ih1, []Scope{SiteScope("eu", "paris")}, []Scope{SiteScope("eu", "berlin")})
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if p := c.log.ports(ih1); !p[7001] || !p[7002] {
			return fmt.Errorf("c learned %v through its fallback", p)
		}
		return nil
	})
	if st := origin.Stats(); st.Stored == 0 || st.Foreign != 0 || st.Received == 0 {
		t.Fatalf("origin stats %+v", st)
	}
}

// A node of another tenant, one of this tenant's name without the
// secret, and a plain DHT node all bootstrap from this tenant's nodes and
// announce the same torrent: they learn no peer and no node, nothing they
// send is stored, and this tenant's agents never learn their peers.
func TestStrangersLearnNothing(t *testing.T) {
	secret := []byte("tenant secret")
	k := NewKey(secret, "acme")
	origin := startNode(t, k, 0)
	scopes := []Scope{TenantScope()}
	a := startNode(t, k, 7001, origin.Addr())
	b := startNode(t, k, 7002, origin.Addr())
	a.Add(ih1, scopes, nil)
	b.Add(ih1, scopes, nil)
	other := startNode(t, NewKey(secret, "globex"), 9001, origin.Addr(), a.Addr())
	nosecret := startNode(t, NewKey(nil, "acme"), 9002, origin.Addr(), a.Addr())
	other.Add(ih1, scopes, nil)
	nosecret.Add(ih1, scopes, nil)

	// A plain DHT node: unsealed KRPC, the raw infohash, announce_peer.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := adht.NewServer(&adht.ServerConfig{
		Conn: pc, NoSecurity: true, PeerStore: newPeerStore(time.Now),
		Logger: alog.Default.WithFilterLevel(alog.Critical),
		StartingNodes: func() ([]adht.Addr, error) {
			return []adht.Addr{adht.NewAddr(net.UDPAddrFromAddrPort(origin.Addr())), adht.NewAddr(net.UDPAddrFromAddrPort(a.Addr()))}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	var plainPeers int
	plainLookup := func(target [20]byte) {
		ann, err := plain.AnnounceTraversal(target, adht.AnnouncePeer(adht.AnnouncePeerOpts{Port: 9003}))
		if err != nil {
			return // no node answers: nothing to traverse
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for {
			select {
			case pv, ok := <-ann.Peers:
				if !ok {
					return
				}
				plainPeers += len(pv.Peers)
			case <-ctx.Done():
				ann.Close()
				return
			}
		}
	}

	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !a.log.ports(ih1)[7002] || !b.log.ports(ih1)[7001] {
			return fmt.Errorf("a learned %v, b %v", a.log.ports(ih1), b.log.ports(ih1))
		}
		if other.Stats().Lookups < 2 || nosecret.Stats().Lookups < 2 {
			return errors.New("the strangers have not tried enough yet")
		}
		return nil
	})
	plainLookup(ih1)
	plainLookup(k.Target(TenantScope(), ih1))

	for name, n := range map[string]testNode{"other tenant": other, "no secret": nosecret} {
		st := n.Stats()
		if n.log.total() != 0 || st.Received != 0 || st.Nodes != 0 || st.Stored != 0 {
			t.Errorf("%s learned: peers %v, stats %+v, good nodes %d", name, n.log.got, st, n.srv.Stats().GoodNodes)
		}
	}
	if plainPeers != 0 || plain.Stats().GoodNodes != 0 {
		t.Errorf("the plain node learned %d peers, %d good nodes", plainPeers, plain.Stats().GoodNodes)
	}
	for name, n := range map[string]testNode{"origin": origin, "a": a, "b": b} {
		if p := n.log.ports(ih1); p[9001] || p[9002] || p[9003] {
			t.Errorf("%s learned a stranger's peer: %v", name, p)
		}
		for _, ap := range n.store.addrs() {
			if ap.Port() > 9000 {
				t.Errorf("%s stores a stranger's announce %v", name, ap)
			}
		}
	}
	// Counted by the receivers, not by the senders' lookups waited for above.
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if origin.Stats().Foreign == 0 || a.Stats().Foreign == 0 {
			return fmt.Errorf("the strangers' datagrams never arrived: origin %+v, a %+v", origin.Stats(), a.Stats())
		}
		return nil
	})
}

// With every bootstrap node gone, a restarted agent rejoins through the
// table it saved and finds a peer again.
func TestRejoinFromSavedTable(t *testing.T) {
	k := NewKey([]byte("tenant secret"), "acme")
	origin := startNode(t, k, 0)
	dir := t.TempDir()
	file := filepath.Join(dir, "dht-nodes.json")
	scopes := []Scope{TenantScope()}
	a := startNodeFile(t, k, 7001, file, origin.Addr())
	// b also knows a directly, so a meets b as a node at once (through
	// the origin alone that can take the library's next table refresh,
	// a minute).
	b := startNode(t, k, 7002, origin.Addr(), a.Addr())
	a.Add(ih1, scopes, nil)
	b.Add(ih1, scopes, nil)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !a.log.ports(ih1)[7002] || a.Stats().Nodes < 2 {
			return fmt.Errorf("a learned %v, has %d nodes", a.log.ports(ih1), a.Stats().Nodes)
		}
		return nil
	})
	originAddr := origin.Addr()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	origin.Close()
	saved, err := readNodes(file)
	if err != nil || len(saved.Nodes) < 2 {
		t.Fatalf("saved %+v %v", saved, err)
	}
	again := startNodeFile(t, k, 7003, file, originAddr)
	again.Add(ih1, scopes, nil)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !again.log.ports(ih1)[7002] || !b.log.ports(ih1)[7003] {
			return fmt.Errorf("restarted agent learned %v, b %v", again.log.ports(ih1), b.log.ports(ih1))
		}
		return nil
	})
}

// A damaged table file is no reason not to start.
func TestDamagedTableIgnored(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dht-nodes.json")
	if err := writeNodes(file, nodesFile{}); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(file, "{garbage"); err != nil {
		t.Fatal(err)
	}
	n := startNodeFile(t, NewKey(nil, "acme"), 7001, file)
	if n.Stats().Nodes != 0 {
		t.Fatal("nodes from a damaged file")
	}
}
