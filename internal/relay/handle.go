// Package relay splices BitTorrent peer connections through the origin for
// agents that cannot reach each other or must not learn each other's
// addresses (agent config swarm.relay: origin).
//
// A relay-mode agent keeps a control connection to the relay on its
// origin. The tracker never stores nor hands out the real address of a
// relay-mode agent: it stores the agent's handle, an address in
// 240.0.0.0/8 (reserved, never a host) derived from its tenant and peer
// ID, and hands handles only to other relay-mode agents. Their relay
// dialer recognises a handle and asks the relay to connect it; the relay
// tells the handle's owner over its control connection, the owner opens a
// data connection, and the relay copies bytes between the two. The relay
// sees only the peer protocol (or, with peer TLS, ciphertext: the TLS
// handshake runs end to end between the agents); pieces are checked by
// their hashes at the receiver, so the relay cannot alter them unseen.
//
// Every connection is an HTTP/1.1 upgrade on the origin's listener
// (GET /relay/control, /relay/dial, /relay/accept): the same address,
// HTTPS and tenant token as the tracker.
package relay

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
)

// handleOctet is the first octet of every handle: 240.0.0.0/4 is reserved
// (RFC 1112 "class E"), so a handle is never a real peer.
const handleOctet = 240

// HandleFor is the relay handle of the agent with peer ID peerID in tenant
// tenant. It is derived, not assigned, so every origin computes the same
// handle without shared state. 40 bits: handles collide within a tenant of
// 100,000 agents with a chance of about 1 in 200; a collision makes the
// later agent unreachable through the relay (it still has the origin).
func HandleFor(tenant string, peerID [20]byte) netip.AddrPort {
	h := sha256.New()
	h.Write([]byte("swarmship relay handle\x00"))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(peerID[:])
	s := h.Sum(nil)
	port := binary.BigEndian.Uint16(s[3:5])
	if port == 0 {
		port = 1 // port 0 is a "bad peer" to the torrent library
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{handleOctet, s[0], s[1], s[2]}), port)
}

// IsHandle reports whether ap is a relay handle.
func IsHandle(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	return a.Is4() && a.As4()[0] == handleOctet
}

// ParseHandle reads "240.a.b.c:port".
func ParseHandle(s string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !IsHandle(ap) {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// handleAddr is a handle as the net.Addr of a relayed connection: the
// torrent library keys bans, accept rate limits and redials by the remote
// address, so each remote agent keeps its own.
func handleAddr(ap netip.AddrPort) net.Addr { return net.TCPAddrFromAddrPort(ap) }
