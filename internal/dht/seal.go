package dht

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed datagrams: version byte, random 24-byte nonce, then
// XChaCha20-Poly1305 over the send time (8 bytes, Unix seconds) and the
// KRPC message; the version byte is authenticated too. XChaCha's nonce is
// long enough to be random for every datagram a fleet will ever send
// (AES-GCM's 96 bits are not, at thousands of agents).
const (
	sealVersion = 1
	nonceLen    = chacha20poly1305.NonceSizeX
	// Overhead is what sealing adds to a KRPC message.
	Overhead = 1 + nonceLen + 8 + chacha20poly1305.Overhead
	// maxDatagram bounds what is read and sealed; KRPC messages are far
	// smaller.
	maxDatagram = 4096
	// maxSkew is how far a datagram's send time may be from the
	// receiver's clock: a captured datagram replayed later is dropped.
	maxSkew = 10 * time.Minute
)

// errOpen is any datagram that does not open under the key.
var errOpen = errors.New("dht: datagram does not open under the tenant key")

// errStale is a datagram that opened but was sent too long ago or ahead.
var errStale = errors.New("dht: datagram outside the time window")

type sealer struct {
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

func newSealer(k Key) sealer {
	a, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	return sealer{aead: a}
}

var aad = []byte{sealVersion}

// seal returns msg sealed at time now.
func (s sealer) seal(msg []byte, now time.Time) []byte {
	out := make([]byte, 1+nonceLen, Overhead+len(msg))
	out[0] = sealVersion
	rand.Read(out[1 : 1+nonceLen])
	pt := make([]byte, 8+len(msg))
	binary.BigEndian.PutUint64(pt, uint64(now.Unix()))
	copy(pt[8:], msg)
	return s.aead.Seal(out, out[1:1+nonceLen], pt, aad)
}

// open returns the message in b if it was sealed under this key within
// maxSkew of now.
func (s sealer) open(b []byte, now time.Time) ([]byte, error) {
	if len(b) < Overhead || b[0] != sealVersion {
		return nil, errOpen
	}
	pt, err := s.aead.Open(nil, b[1:1+nonceLen], b[1+nonceLen:], aad)
	if err != nil {
		return nil, errOpen
	}
	sent := time.Unix(int64(binary.BigEndian.Uint64(pt)), 0)
	if d := now.Sub(sent); d > maxSkew || d < -maxSkew {
		return nil, errStale
	}
	return pt[8:], nil
}

// Per-source limit on datagrams read, checked before opening: a source
// may send burst datagrams at once, then rate a second. A bootstrap
// traversal sends a few to each node; a site behind one NAT address
// shares the budget, hence the generous figures.
const (
	sourceRate  = 50
	sourceBurst = 200
	// maxSources bounds the table of sources; past it, sources idle for
	// a refill are forgotten, and if that is not enough the table starts
	// over (the limit fails open rather than shutting out newcomers).
	maxSources = 4096
)

type bucket struct {
	tokens float64
	last   time.Time
}

// sealedConn is the net.PacketConn the DHT server uses: it seals what
// the server writes and hands the server only datagrams that open under
// the tenant key, from sources within their rate.
type sealedConn struct {
	net.PacketConn
	s   sealer
	now func() time.Time

	mu      sync.Mutex
	sources map[netip.Addr]*bucket

	sent, received, foreign, stale, limited atomic.Int64
}

func newSealedConn(c net.PacketConn, k Key, now func() time.Time) *sealedConn {
	return &sealedConn{PacketConn: c, s: newSealer(k), now: now, sources: map[netip.Addr]*bucket{}}
}

func (c *sealedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if _, err := c.PacketConn.WriteTo(c.s.seal(b, c.now()), addr); err != nil {
		return 0, err
	}
	c.sent.Add(1)
	return len(b), nil
}

// ReadFrom returns the next datagram that opens; others are counted and
// dropped. Only a socket error ends it (the server panics on any other).
func (c *sealedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	buf := make([]byte, maxDatagram+1)
	for {
		n, addr, err := c.PacketConn.ReadFrom(buf)
		if err != nil {
			return 0, addr, err
		}
		if n > maxDatagram {
			c.foreign.Add(1)
			continue
		}
		now := c.now()
		if !c.allow(addrIP(addr), now) {
			c.limited.Add(1)
			continue
		}
		msg, err := c.s.open(buf[:n], now)
		if errors.Is(err, errStale) {
			c.stale.Add(1)
			continue
		} else if err != nil {
			c.foreign.Add(1)
			continue
		}
		if len(msg) > len(b) {
			c.foreign.Add(1)
			continue
		}
		c.received.Add(1)
		return copy(b, msg), addr, nil
	}
}

func addrIP(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return ip.Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

func (c *sealedConn) allow(src netip.Addr, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.sources[src]
	if b == nil {
		if len(c.sources) >= maxSources {
			for a, o := range c.sources {
				if now.Sub(o.last) > time.Second*sourceBurst/sourceRate {
					delete(c.sources, a)
				}
			}
			if len(c.sources) >= maxSources {
				clear(c.sources)
			}
		}
		b = &bucket{tokens: sourceBurst, last: now}
		c.sources[src] = b
	}
	b.tokens = min(sourceBurst, b.tokens+now.Sub(b.last).Seconds()*sourceRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
