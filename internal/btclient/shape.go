package btclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"syscall"
	"unsafe"

	utp "github.com/anacrolix/go-libutp"
)

// peerShape is what every peer socket gets before TLS or the library sees
// it, dialled or accepted, TCP or uTP: the DSCP mark (Config.DSCP) and the
// caller's wrapper (Config.WrapPeerConn, the agent's WAN limiter). Below
// TLS, so that a wrapper counts the bytes that cross the network.
type peerShape struct {
	dscp int                     // -1: leave the sockets' marks alone
	wrap func(net.Conn) net.Conn // nil: none
}

func newPeerShape(c Config) peerShape {
	s := peerShape{dscp: -1, wrap: c.WrapPeerConn}
	if c.DSCP != nil {
		s.dscp = *c.DSCP
	}
	return s
}

// conn shapes one connection. An accepted TCP socket inherits its
// listener's mark (markListener); marking it again costs one syscall and
// covers a platform that does not copy it. uTP connections share their
// UDP socket, marked once (markUTP).
func (s peerShape) conn(c net.Conn) net.Conn {
	if s.dscp >= 0 {
		if sc, ok := c.(syscall.Conn); ok {
			if raw, err := sc.SyscallConn(); err == nil {
				_ = raw.Control(func(fd uintptr) { _ = setDSCP(fd, s.dscp) })
			}
		}
	}
	if s.wrap == nil {
		return c
	}
	tunePeerConn(c) // the wrapper may hide the *net.TCPConn from later tuning
	return s.wrap(c)
}

// control marks a dialled socket before it connects, so that the SYN
// carries the mark too (net.Dialer.Control).
func (s peerShape) control(_, _ string, raw syscall.RawConn) error {
	if s.dscp < 0 {
		return nil
	}
	var err error
	if cerr := raw.Control(func(fd uintptr) { err = setDSCP(fd, s.dscp) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("set DSCP %d: %w", s.dscp, err)
	}
	return nil
}

// dialer is the TCP dialer of peer sockets.
func (s peerShape) dialer() *net.Dialer { return &net.Dialer{Control: s.control} }

// markListener marks a listening socket: its SYN-ACKs and, on Linux, the
// sockets it accepts.
func (s peerShape) markListener(ln net.Listener) error {
	if s.dscp < 0 || ln == nil {
		return nil
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("peer listener %T: cannot set DSCP", ln)
	}
	return markSocket(sc, s.dscp)
}

// markUTP marks the UDP socket under uTP: every uTP packet, dialled or
// accepted, goes out through it. go-libutp does not expose the socket, so
// its field is read by reflection; a test checks that this still works
// with the version in go.mod.
func (s peerShape) markUTP(u *utp.Socket) error {
	if s.dscp < 0 || u == nil {
		return nil
	}
	sc, err := utpSocketConn(u)
	if err != nil {
		return err
	}
	return markSocket(sc, s.dscp)
}

func utpSocketConn(u *utp.Socket) (syscall.Conn, error) {
	f := reflect.ValueOf(u).Elem().FieldByName("pc")
	if !f.IsValid() || f.Kind() != reflect.Interface {
		return nil, errors.New("uTP socket: no packet conn field (go-libutp changed): cannot set DSCP")
	}
	pc := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("uTP socket over %T: cannot set DSCP", pc)
	}
	return sc, nil
}

func markSocket(sc syscall.Conn, d int) error {
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("set DSCP %d: %w", d, err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = setDSCP(fd, d) }); err != nil {
		return fmt.Errorf("set DSCP %d: %w", d, err)
	}
	if serr != nil {
		return fmt.Errorf("set DSCP %d: %w", d, serr)
	}
	return nil
}

// listener shapes every connection ln accepts.
func (s peerShape) listener(ln net.Listener) net.Listener {
	if ln == nil || (s.dscp < 0 && s.wrap == nil) {
		return ln
	}
	return shapedListener{Listener: ln, s: s}
}

type shapedListener struct {
	net.Listener
	s peerShape
}

func (l shapedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.conn(c), nil
}

// tlsTCPDialer makes the TCP connections peer TLS runs over
// (peertls.NetDialer), shaped like the plain ones.
type tlsTCPDialer struct{ s peerShape }

func (d tlsTCPDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.s.dialer().DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return d.s.conn(c), nil
}

// shapedRelay passes relayed connections through the wrapper (they cross
// the WAN to the origin's relay whoever the peer is); their sockets belong
// to the relay client, which marks nothing.
type shapedRelay struct {
	Relay
	s peerShape
}

func (r shapedRelay) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := r.Relay.Dial(ctx, addr)
	if err != nil || r.s.wrap == nil {
		return c, err
	}
	return r.s.wrap(c), nil
}

func (r shapedRelay) Accept() (net.Conn, error) {
	c, err := r.Relay.Accept()
	if err != nil || r.s.wrap == nil {
		return c, err
	}
	return r.s.wrap(c), nil
}
