//go:build unix

package lsd

import (
	"context"
	"net"
	"net/netip"
	"syscall"
)

// listenGroup binds the group's port with SO_REUSEADDR so that several
// agents (and other BEP 14 clients) on one host share it. Binding the
// group address, not the wildcard, keeps unicast to the port out.
func listenGroup(network string, group netip.AddrPort) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), network, group.String())
}
