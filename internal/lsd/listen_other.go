//go:build !unix

package lsd

import (
	"net"
	"net/netip"
	"strconv"
)

func listenGroup(network string, group netip.AddrPort) (net.PacketConn, error) {
	return net.ListenPacket(network, ":"+strconv.Itoa(int(group.Port())))
}
