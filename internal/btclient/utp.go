package btclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	utp "github.com/anacrolix/go-libutp"
)

// UTPDialDelay is how long a uTP dial waits before it starts. The library
// dials a peer on every transport at once and keeps the first connection
// up; the delay leaves the peer to TCP whenever TCP connects promptly (a
// LAN, a public address) and keeps uTP, which costs more CPU in this
// implementation, for peers only uTP reaches: those behind NAT, reached
// through a hole punched by a rendezvous (BEP 55), where both ends dial
// each other at the same moment and the delay is the same on both sides.
const UTPDialDelay = time.Second

// peerSockets are a client's peer listeners: TCP, and with uTP a UDP
// socket on the same port number, since trackers, PEX and hole-punch
// rendezvous carry one port per peer.
type peerSockets struct {
	tcp net.Listener
	utp *utp.Socket // nil without uTP
}

func (s peerSockets) Close() {
	s.tcp.Close()
	if s.utp != nil {
		s.utp.Close()
	}
}

// listenPeers binds the peer sockets on host:port (port 0: any free port,
// the same for both). When the TCP port chosen is taken for UDP it tries
// again with another one.
func listenPeers(host string, port int, ipv4Only, withUTP bool) (peerSockets, error) {
	tcpNet, udpNet := "tcp", "udp"
	if ipv4Only {
		tcpNet, udpNet = "tcp4", "udp4"
	}
	var err error
	for range 20 {
		var ln net.Listener
		ln, err = net.Listen(tcpNet, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return peerSockets{}, fmt.Errorf("peer listener: %w", err)
		}
		if !withUTP {
			return peerSockets{tcp: ln}, nil
		}
		got := ln.Addr().(*net.TCPAddr).Port
		var s *utp.Socket
		s, err = utp.NewSocket(udpNet, net.JoinHostPort(host, strconv.Itoa(got)))
		if err == nil {
			return peerSockets{tcp: ln, utp: s}, nil
		}
		ln.Close()
		if port != 0 {
			break
		}
	}
	return peerSockets{}, fmt.Errorf("peer uTP socket: %w", err)
}

// utpDialer dials peers over uTP from the client's listening UDP socket:
// dialling from the port peers know is what lets a rendezvous punch a
// hole through NAT (each side's first packet opens its own NAT for the
// other's). It is both the plain torrent.Dialer (stall set) and the
// transport under peer TLS.
type utpDialer struct {
	s     *utp.Socket
	stall time.Duration // plain dialer: wrap in a stallConn
	shape peerShape
}

func (utpDialer) DialerNetwork() string { return "udp" }

func (d utpDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return newStallConn(c, d.stall), nil
}

// DialContext waits UTPDialDelay, then dials addr over uTP.
func (d utpDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t := time.NewTimer(UTPDialDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	c, err := d.s.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("uTP dial %s: %w", addr, err)
	}
	return d.shape.conn(c), nil
}

var errNoUTP = errors.New("btclient: uTP needs a listener (NoPeers is set)")
