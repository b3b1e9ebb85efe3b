package btclient

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"
)

// Both ends of a plain peer connection, dialed and accepted, keep at most
// NotSentLowWat unsent bytes in the kernel (Linux), so that requests are
// not queued behind megabytes of uploaded blocks.
func TestPeerSocketsBoundUnsentBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_NOTSENT_LOWAT is Linux's")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold); ln.Close() })
	l := &tcpListener{Listener: ln, stall: time.Minute, hold: hold}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialed, err := tcpDialer{stall: time.Minute}.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	var in net.Conn
	select {
	case in = <-accepted:
		t.Cleanup(func() { in.Close() })
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	for name, c := range map[string]net.Conn{"dialed": dialed, "accepted": in} {
		tc := c.(*stallConn).Conn.(*net.TCPConn)
		raw, err := tc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		if err := raw.Control(func(fd uintptr) { got = notSentLowWat(fd) }); err != nil {
			t.Fatal(err)
		}
		if got != NotSentLowWat {
			t.Errorf("%s connection: TCP_NOTSENT_LOWAT %d, want %d", name, got, NotSentLowWat)
		}
	}
}
