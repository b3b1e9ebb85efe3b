package btclient

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// WriteStall is how long one write to a peer may make no progress before
// the connection is dropped. anacrolix/torrent v1.59.1 sets no write
// deadline once a connection is up, so a peer that pipelines requests and
// stops reading would keep its blocks (and its share of the ServeBudget)
// for as long as TCP keeps the connection alive, which with a zero window
// is forever. Dropping it frees them for peers that read. A peer that
// reads at all, however slowly, is not affected: the deadline restarts
// with every write, and the library writes at most its write buffer
// (tens of KiB) at a time.
const WriteStall = 30 * time.Second

// stallConn is a peer connection whose writes time out after a stall.
type stallConn struct {
	net.Conn
	stall time.Duration

	mu sync.Mutex
	dl time.Time // the library's own write deadline, zero when none
}

func newStallConn(c net.Conn, stall time.Duration) net.Conn {
	return &stallConn{Conn: c, stall: stall}
}

func (c *stallConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	dl := time.Now().Add(c.stall)
	if !c.dl.IsZero() && c.dl.Before(dl) {
		dl = c.dl
	}
	c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.dl = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.dl = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// Unwrap returns the underlying connection.
func (c *stallConn) Unwrap() net.Conn { return c.Conn }

// tcpDialer dials plain TCP peers for the client (torrent.Dialer); the
// library's own TCP sockets are off so that every peer connection is a
// stallConn.
type tcpDialer struct {
	stall time.Duration
	shape peerShape
}

func (tcpDialer) DialerNetwork() string { return "tcp" }

func (d tcpDialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := d.shape.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tunePeerConn(c)
	c = d.shape.conn(c)
	return newStallConn(c, d.stall), nil
}

// tcpListener accepts plain peers for the client (torrent.Listener): on
// TCP, or on the uTP socket.
type tcpListener struct {
	net.Listener
	stall time.Duration
	hold  <-chan struct{} // the client's Closed channel
}

func (l *tcpListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			tunePeerConn(c)
			return newStallConn(c, l.stall), nil
		}
		if errors.Is(err, net.ErrClosed) {
			// The library's accept loop retries on errors until its client
			// is closed: make it wait for that instead of spinning.
			<-l.hold
			return nil, err
		}
		// Out of file descriptors and the like: back off as net/http does
		// (the library would retry at once).
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		select {
		case <-time.After(backoff):
		case <-l.hold:
			return nil, err
		}
	}
}
