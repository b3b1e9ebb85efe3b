package btclient

import (
	"errors"

	"golang.org/x/sys/unix"
)

// setDSCP marks a socket's packets with DSCP d: the IPv4 TOS byte and
// the IPv6 traffic class, whichever the socket has (a dual-stack socket
// has both; setting the other family's option fails on the rest).
func setDSCP(fd uintptr, d int) error {
	v := d << 2 // the low two bits are ECN's
	e4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, v)
	e6 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, v)
	if e4 != nil && e6 != nil {
		return errors.Join(e4, e6)
	}
	return nil
}

// socketDSCP reads the mark back (tests): the IPv4 TOS, else the IPv6
// traffic class, shifted to a DSCP; -1 when neither can be read.
func socketDSCP(fd uintptr) int {
	if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS); err == nil {
		return v >> 2
	}
	if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS); err == nil {
		return v >> 2
	}
	return -1
}
