//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A loop owns some keep-alive connections and drives them from one OS
// thread with epoll: non-blocking sockets, requests pipelined, and a
// timerfd that wakes the loop at the next scheduled send time. Nothing else
// competes for that thread, so a send leaves within the timer's slack of
// its schedule; the goroutine-per-connection generator this replaces was
// up to 28 ms late because its pacer waited behind 32 busy goroutines.
type loop struct {
	ep, tfd int
	conns   []*conn
	byFD    map[int]*conn
	dests   []*dest // one per tracker URL
	slot    int     // open loop: the destination of the next send, in turn

	warm bool      // first announce of each agent is event=started
	base time.Time // zero of the loop's clock (monotonic)
}

// target is one tracker URL with the agents that announce to it.
type target struct {
	url    string
	sa     syscall.Sockaddr
	agents []agent
	next   atomic.Int64 // shared by the loops: the target's agents take turns
}

// dest is a target as one loop sees it: its connections and what it
// measured there.
type dest struct {
	t     *target
	conns []*conn
	rr    int // next connection in the open loop's round robin
	st    stats
}

// conn is one keep-alive HTTP/1.1 connection with requests in flight.
type conn struct {
	fd      int
	d       *dest
	sa      syscall.Sockaddr
	wbuf    []byte // bytes of requests not yet written
	rbuf    []byte // bytes of answers not yet parsed
	pending []inflight
	dead    bool
	gen     int // counts dials: a redial drops what was read before
}

// inflight is one request on a connection: when it was meant to leave
// (open loop) and when it did, in ns of the loop's clock.
type inflight struct {
	intended, sent int64
	scheduled      bool // open loop: intended is a schedule, not the send
}

// stats is what one loop measured; loops are merged at the end.
type stats struct {
	lat      []int64 // ns from the intended send (open loop) or the send (closed)
	sendLat  []int64 // open loop: ns from the actual send
	late     []int64 // open loop: ns the send left after its intended time
	errors   int64
	failures int64 // 200 with "failure reason"
	peers    int64
	firstErr string
	record   bool
	answers  int64 // answers of every phase, warm-up included (for CPU per announce)
}

func (s *stats) fail(err error) {
	if !s.record {
		return
	}
	s.errors++
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
}

func (l *loop) now() int64 { return int64(time.Since(l.base)) }

// newLoop dials n connections to each target.
func newLoop(targets []*target, n int, base time.Time) (*loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	tfd, err := timerfdCreate()
	if err != nil {
		syscall.Close(ep)
		return nil, err
	}
	l := &loop{ep: ep, tfd: tfd, byFD: map[int]*conn{}, base: base}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, tfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(tfd)}); err != nil {
		l.close()
		return nil, fmt.Errorf("epoll_ctl timerfd: %w", err)
	}
	for _, t := range targets {
		d := &dest{t: t}
		l.dests = append(l.dests, d)
		for range n {
			c := &conn{sa: t.sa, d: d, fd: -1}
			if err := l.dial(c); err != nil {
				l.close()
				return nil, err
			}
			d.conns = append(d.conns, c)
			l.conns = append(l.conns, c)
		}
	}
	return l, nil
}

func sockaddr(addr *net.TCPAddr) syscall.Sockaddr {
	if ip4 := addr.IP.To4(); ip4 != nil {
		s := &syscall.SockaddrInet4{Port: addr.Port}
		copy(s.Addr[:], ip4)
		return s
	}
	s := &syscall.SockaddrInet6{Port: addr.Port}
	copy(s.Addr[:], addr.IP.To16())
	return s
}

// dial connects c (blocking, before the loop needs it), then makes it
// non-blocking and registers it.
func (l *loop) dial(c *conn) error {
	family := syscall.AF_INET
	if _, ok := c.sa.(*syscall.SockaddrInet6); ok {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Connect(fd, c.sa); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("set non-blocking: %w", err)
	}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	c.fd, c.dead = fd, false
	c.gen++
	c.wbuf, c.rbuf, c.pending = c.wbuf[:0], c.rbuf[:0], c.pending[:0]
	l.byFD[fd] = c
	return nil
}

func (l *loop) close() {
	for _, c := range l.conns {
		if c.fd >= 0 {
			syscall.Close(c.fd)
		}
	}
	syscall.Close(l.tfd)
	syscall.Close(l.ep)
}

// drop closes a broken connection, counts what was in flight on it as
// errors and dials it again (at most once per failure).
func (l *loop) drop(c *conn, err error) {
	for range c.pending {
		c.d.st.fail(err)
	}
	c.wbuf, c.rbuf, c.pending = c.wbuf[:0], c.rbuf[:0], c.pending[:0]
	c.gen++
	delete(l.byFD, c.fd)
	syscall.Close(c.fd)
	c.fd, c.dead = -1, true
	if derr := l.dial(c); derr != nil {
		c.d.st.fail(derr)
	}
}

// send queues the next agent's announce on c and writes what it can.
// intended < 0: unscheduled (closed loop), the send is its own reference.
func (l *loop) send(c *conn, intended int64) {
	t := c.d.t
	i := t.next.Add(1) - 1
	a := &t.agents[int(i%int64(len(t.agents)))]
	req := a.periodic
	if l.warm && i < int64(len(t.agents)) {
		req = a.started
	}
	c.wbuf = append(c.wbuf, req...)
	sent := l.now()
	p := inflight{intended: intended, sent: sent, scheduled: intended >= 0}
	if !p.scheduled {
		p.intended = sent
	}
	c.pending = append(c.pending, p)
	if st := &c.d.st; st.record && p.scheduled {
		st.late = append(st.late, max(0, sent-intended))
	}
	l.flush(c)
}

func (l *loop) flush(c *conn) {
	for len(c.wbuf) > 0 {
		n, err := syscall.Write(c.fd, c.wbuf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			// The socket buffer is full: wait for EPOLLOUT.
			_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT, Fd: int32(c.fd)})
			return
		}
		if err != nil {
			l.drop(c, err)
			return
		}
		c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[n:])]
	}
}

// run drives the connections until the loop's clock reaches until. With
// ivl > 0 (open loop) sends leave at first + k*ivl; otherwise each
// connection keeps depth requests in flight (closed loop). Then it waits
// up to drain for answers still in flight; those that never come are
// errors.
func (l *loop) run(until int64, first, ivl int64, depth int, drain time.Duration) {
	open := ivl > 0
	if !open {
		for _, c := range l.conns {
			for range depth {
				if c.dead {
					break
				}
				l.send(c, -1)
			}
		}
	}
	events := make([]syscall.EpollEvent, 64)
	var k int64
	stop := until + int64(drain)
	for {
		now := l.now()
		if open {
			for {
				at := first + k*ivl
				if at > now || at >= until {
					break
				}
				k++
				l.sendNext(at)
			}
		}
		if now >= until && l.inFlight() == 0 || now >= stop {
			break
		}
		// Sleep until the next send is due (or the end of the phase) unless
		// an answer wakes the loop first.
		wake := until
		if now >= until {
			wake = stop
		} else if open {
			wake = min(first+k*ivl, until)
		}
		if err := timerfdSet(l.tfd, wake-l.now()); err != nil {
			l.dests[0].st.fail(err)
			return
		}
		n, err := syscall.EpollWait(l.ep, events, 100)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			l.dests[0].st.fail(fmt.Errorf("epoll_wait: %w", err))
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.tfd {
				var b [8]byte
				_, _ = syscall.Read(l.tfd, b[:])
				continue
			}
			c := l.byFD[fd]
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
				l.flush(c)
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				l.readable(c, !open && l.now() < until)
			}
		}
	}
	for _, c := range l.conns {
		if len(c.pending) > 0 {
			// Still in flight past the drain time: the answers would be
			// counted against the next phase, so start that one afresh.
			l.drop(c, errors.New("no answer within the drain time"))
		}
	}
}

// sendNext hands one scheduled send to the next target in turn, on its
// next live connection.
func (l *loop) sendNext(at int64) {
	d := l.dests[l.slot]
	l.slot = (l.slot + 1) % len(l.dests)
	for range d.conns {
		c := d.conns[d.rr]
		d.rr = (d.rr + 1) % len(d.conns)
		if !c.dead {
			l.send(c, at)
			return
		}
	}
	d.st.fail(errors.New("no live connection"))
}

func (l *loop) inFlight() int {
	n := 0
	for _, c := range l.conns {
		n += len(c.pending)
	}
	return n
}

// readable reads what c has and settles every complete answer; in the
// closed loop each answer is replaced by a new request.
func (l *loop) readable(c *conn, refill bool) {
	for {
		if cap(c.rbuf)-len(c.rbuf) < 16<<10 {
			nb := make([]byte, len(c.rbuf), 2*cap(c.rbuf)+32<<10)
			copy(nb, c.rbuf)
			c.rbuf = nb
		}
		n, err := syscall.Read(c.fd, c.rbuf[len(c.rbuf):cap(c.rbuf)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			break
		}
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("connection closed by the tracker")
			}
			l.drop(c, err)
			return
		}
		c.rbuf = c.rbuf[:len(c.rbuf)+n]
		if n < cap(c.rbuf)-len(c.rbuf)+n {
			break // short read: nothing more for now
		}
	}
	done := l.now()
	gen := c.gen
	off := 0
	for len(c.pending) > 0 {
		used, body, status, closing, err := parseAnswer(c.rbuf[off:])
		if err != nil {
			l.drop(c, err)
			return
		}
		if used == 0 {
			break
		}
		off += used
		p := c.pending[0]
		c.pending = c.pending[:copy(c.pending, c.pending[1:])]
		l.settle(c, p, done, body, status)
		if closing {
			l.drop(c, errors.New("tracker closed the connection"))
			return
		}
		if refill {
			if l.send(c, -1); c.gen != gen {
				return // the send failed and redialled c: its buffers are new
			}
		}
	}
	c.rbuf = c.rbuf[:copy(c.rbuf, c.rbuf[off:])]
}

func (l *loop) settle(c *conn, p inflight, done int64, body []byte, status int) {
	st := &c.d.st
	st.answers++
	if !st.record {
		return
	}
	if status != 200 {
		st.fail(fmt.Errorf("HTTP %d", status))
		return
	}
	n, err := peersInAnswer(body)
	if err != nil {
		st.failures++
		if st.firstErr == "" {
			st.firstErr = err.Error()
		}
	} else {
		st.peers += int64(n)
	}
	st.lat = append(st.lat, done-p.intended)
	if p.scheduled {
		st.sendLat = append(st.sendLat, done-p.sent)
	}
}

var crlf2 = []byte("\r\n\r\n")

// parseAnswer parses one HTTP/1.1 answer at the start of b: the bytes it
// took (0: incomplete), its body, status and whether the server closes.
// Bodies come with Content-Length or chunked.
func parseAnswer(b []byte) (used int, body []byte, status int, closing bool, err error) {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		if len(b) > 64<<10 {
			return 0, nil, 0, false, errors.New("answer header over 64 KiB")
		}
		return 0, nil, 0, false, nil
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return 0, nil, 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, nil, 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		}
	}
	p := end + len(crlf2)
	switch {
	case chunked:
		var out []byte
		for {
			i := bytes.Index(b[p:], []byte("\r\n"))
			if i < 0 {
				return 0, nil, 0, false, nil
			}
			n, perr := strconv.ParseInt(string(bytes.TrimSpace(b[p:p+i])), 16, 32)
			if perr != nil || n < 0 {
				return 0, nil, 0, false, fmt.Errorf("bad chunk size %q", b[p:p+i])
			}
			p += i + 2
			if n == 0 {
				if len(b) < p+2 {
					return 0, nil, 0, false, nil
				}
				return p + 2, out, status, closing, nil
			}
			if len(b) < p+int(n)+2 {
				return 0, nil, 0, false, nil
			}
			out = append(out, b[p:p+int(n)]...)
			p += int(n) + 2
		}
	case length >= 0:
		if len(b) < p+length {
			return 0, nil, 0, false, nil
		}
		return p + length, b[p : p+length], status, closing, nil
	}
	return 0, nil, 0, false, errors.New("answer without Content-Length or chunked body")
}

// timerfd: package syscall has no wrapper, the numbers are Linux's.
const (
	clockMonotonic = 1
	tfdNonblock    = syscall.O_NONBLOCK
	tfdCloexec     = syscall.O_CLOEXEC
)

func timerfdCreate() (int, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return -1, fmt.Errorf("timerfd_create: %w", errno)
	}
	return int(fd), nil
}

// timerfdSet arms the timer to fire once after d ns (at once if d <= 0).
func timerfdSet(fd int, d int64) error {
	d = max(d, 1)                            // 0 would disarm it
	spec := [4]int64{0, 0, d / 1e9, d % 1e9} // it_interval, it_value
	_, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("timerfd_settime: %w", errno)
	}
	return nil
}
