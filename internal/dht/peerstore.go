package dht

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
)

// Bounds of what other nodes can make a node store.
const (
	// MaxPeersPerTarget bounds the peers kept for one announce target;
	// past it the oldest announce makes room.
	MaxPeersPerTarget = 64
	// MaxStoredPeers bounds the peers kept for all targets together; past
	// it a new target is refused until announces expire.
	MaxStoredPeers = 16384
	// peersPerAnswer is how many peers one get_peers answer carries (a
	// random choice when there are more), so an answer fits a datagram.
	peersPerAnswer = 32
	// storedPeerTTL is how long an announce is kept: a few re-announce
	// intervals.
	storedPeerTTL = 30 * time.Minute
)

// peerStore is the node's store of announces (the library keeps none by
// default, and its in-memory store returned garbage addresses: see
// notes/anacrolix-torrent.md). Addresses are copied in and out.
type peerStore struct {
	now func() time.Time

	mu      sync.Mutex
	targets map[[20]byte]map[netip.AddrPort]time.Time
	total   int
}

var _ peer_store.Interface = (*peerStore)(nil)

func newPeerStore(now func() time.Time) *peerStore {
	return &peerStore{now: now, targets: map[[20]byte]map[netip.AddrPort]time.Time{}}
}

func (p *peerStore) AddPeer(target peer_store.InfoHash, na krpc.NodeAddr) {
	ip, ok := netip.AddrFromSlice(na.IP)
	ip = ip.Unmap()
	if !ok || na.Port < 1 || na.Port > 65535 || ip.IsUnspecified() {
		return
	}
	addr := netip.AddrPortFrom(ip, uint16(na.Port))
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	peers := p.targets[target]
	if _, known := peers[addr]; known {
		peers[addr] = now
		return
	}
	if p.total >= MaxStoredPeers {
		p.expireLocked(now)
		if p.total >= MaxStoredPeers {
			return
		}
	}
	if peers == nil {
		peers = map[netip.AddrPort]time.Time{}
		p.targets[target] = peers
	}
	if len(peers) >= MaxPeersPerTarget {
		var oldest netip.AddrPort
		var at time.Time
		for a, t := range peers {
			if at.IsZero() || t.Before(at) {
				oldest, at = a, t
			}
		}
		delete(peers, oldest)
		p.total--
	}
	peers[addr] = now
	p.total++
}

func (p *peerStore) expireLocked(now time.Time) {
	for target, peers := range p.targets {
		for a, t := range peers {
			if now.Sub(t) > storedPeerTTL {
				delete(peers, a)
				p.total--
			}
		}
		if len(peers) == 0 {
			delete(p.targets, target)
		}
	}
}

func (p *peerStore) GetPeers(target peer_store.InfoHash) []krpc.NodeAddr {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []krpc.NodeAddr
	seen := 0
	for a, t := range p.targets[target] {
		if now.Sub(t) > storedPeerTTL {
			continue
		}
		seen++
		na := krpc.NodeAddr{IP: a.Addr().AsSlice(), Port: int(a.Port())}
		if len(out) < peersPerAnswer {
			out = append(out, na)
		} else if j := rand.IntN(seen); j < peersPerAnswer {
			out[j] = na
		}
	}
	return out
}

// count is the number of peers stored (tests, stats).
func (p *peerStore) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// addrs are every stored address (tests).
func (p *peerStore) addrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.AddrPort
	for _, ps := range p.targets {
		for a := range ps {
			out = append(out, a)
		}
	}
	return out
}

// noItems refuses BEP 44 items: swarmship stores nothing but announces in
// the DHT, and the library's default item store has no bound.
type noItems struct{}

func (noItems) Put(*bep44.Item) error                 { return krpc.ErrorMethodUnknown }
func (noItems) Get(bep44.Target) (*bep44.Item, error) { return nil, bep44.ErrItemNotFound }
func (noItems) Del(bep44.Target) error                { return nil }
