package mediaserve

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// limitListener closes, at accept, connections from addresses outside the
// allowed networks and connections past the per-client or total limit:
// they cost a descriptor for a moment, never a goroutine reading headers.
type limitListener struct {
	net.Listener
	allowed   func(netip.Addr) bool
	total     int
	perClient int
	refused   *atomic.Int64

	mu    sync.Mutex
	open  int
	conns map[netip.Addr]int
}

func newLimitListener(ln net.Listener, total, perClient int, allowed func(netip.Addr) bool, refused *atomic.Int64) *limitListener {
	return &limitListener{Listener: ln, allowed: allowed, total: total, perClient: perClient, refused: refused, conns: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !ip.IsValid() || !l.allowed(ip) || !l.take(ip) {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) take(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.conns[ip] >= l.perClient {
		return false
	}
	l.open++
	l.conns[ip]++
	return true
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
