package btclient

import "net"

// NotSentLowWat bounds the bytes a peer socket holds that TCP has not sent
// yet (TCP_NOTSENT_LOWAT, Linux). A BitTorrent connection carries both
// directions' traffic: our requests to a peer queue behind the blocks we
// upload to it. With the kernel's default (send buffers autotuned to
// megabytes), a gateway whose uplink was busy serving other sites had its
// own requests wait behind seconds of data, so it downloaded almost
// nothing until the others finished and stopped asking (branch testbed:
// the last site received 1-9 Mbit/s of its 50 for 20 s while sending at
// its full 20). The library's writer puts requests before blocks in each
// buffer it writes, so a small unsent backlog keeps them near the front.
const NotSentLowWat = 32 << 10

// tunePeerConn applies the socket options peer connections want; errors
// are ignored (an option the platform lacks changes only performance).
func tunePeerConn(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: the socket underneath
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { setNotSentLowWat(fd, NotSentLowWat) })
}
