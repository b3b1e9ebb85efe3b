package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClientConfig is an agent's side of the relay.
type ClientConfig struct {
	// URL is the origin's base URL ("https://origin.example:7070", maybe
	// with a path prefix); the relay paths are appended.
	URL    string
	PeerID [20]byte
	// Tenant and Site identify the agent when the origin runs without
	// tokens (dev mode); with tokens the token's claims count.
	Tenant, Site string
	// Authorize adds the agent's token to each request (never the URL).
	Authorize func(*http.Request) error
	// TLS verifies an https origin; nil: the system roots.
	TLS *tls.Config
	// PeerTLS, if set, runs the peer TLS handshake end to end over each
	// relayed connection, so the relay carries only ciphertext.
	PeerTLS *tls.Config
	Log     *slog.Logger
}

// Client is a relay-mode agent's connection to its origin's relay: a
// torrent.Dialer for handles and a torrent.Listener for connections
// relayed to it. Run keeps its control connection up.
type Client struct {
	cfg    ClientConfig
	base   *url.URL
	self   netip.AddrPort
	log    *slog.Logger
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	hold   <-chan struct{}
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.Mutex
	status ClientStatus
	resume string // the relay's proof that this agent owns its handle

	sent, received atomic.Int64
}

// ClientStatus is the control connection's state, for the agent's status.
type ClientStatus struct {
	Handle    string    `json:"handle"` // the address other agents know this one by
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Bytes     int64     `json:"bytes"` // sent and received through the relay
}

// Timeouts of the client.
const (
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	maxBackoff       = time.Minute
)

// NewClient returns a client; call Run to register with the relay.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("relay: %q is not an http(s) origin URL", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{cfg: cfg, base: u, self: HandleFor(cfg.Tenant, cfg.PeerID), log: log, conns: make(chan net.Conn), done: make(chan struct{}), ctx: ctx, cancel: cancel}, nil
}

// SetPeerID sets the agent's peer ID (known once its torrent client
// exists); call it before Run and before the first Dial.
func (c *Client) SetPeerID(id [20]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.PeerID = id
	c.self = HandleFor(c.cfg.Tenant, id)
	c.resume = ""
}

func (c *Client) ids() ([20]byte, netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.PeerID, c.self
}

// Hold makes Accept after Close wait for ch (the torrent client's Closed
// channel): the library's accept loop retries errors until its client
// closes.
func (c *Client) Hold(ch <-chan struct{}) { c.hold = ch }

// Status returns the control connection's state.
func (c *Client) Status() ClientStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.Handle = c.self.String()
	st.Bytes = c.sent.Load() + c.received.Load()
	return st
}

func (c *Client) setStatus(connected bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if connected != c.status.Connected {
		c.status.Since = time.Now()
	}
	c.status.Connected = connected
	if err != nil {
		c.status.LastError = err.Error()
	}
}

// Run keeps the control connection up until ctx ends or Close, with
// exponential back-off (1 s to 1 min) between failed attempts.
func (c *Client) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	backoff := time.Second
	for {
		start := time.Now()
		err := c.control(ctx)
		c.setStatus(false, err)
		if ctx.Err() != nil || c.closed() {
			return
		}
		if time.Since(start) > maxBackoff {
			backoff = time.Second // it was up a while: a fresh failure
		}
		c.log.Warn("relay control connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		case <-c.done:
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Client) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// control runs one control connection until it fails.
func (c *Client) control(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, dialTimeout)
	c.mu.Lock()
	q := url.Values{}
	if c.resume != "" {
		q.Set("resume", c.resume)
	}
	c.mu.Unlock()
	conn, br, err := c.open(octx, PathControl, q)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		select {
		case <-c.done:
		case <-ctx.Done():
		case <-quit:
		}
		conn.Close()
	}()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * PingEvery))
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("relay control: %w", err)
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ok":
			if len(f) >= 3 {
				c.mu.Lock()
				c.resume = f[2]
				c.mu.Unlock()
			}
			c.setStatus(true, nil)
		case len(f) == 3 && f[0] == "connect":
			from, ok := ParseHandle(f[2])
			if !ok {
				continue
			}
			// Add must not race Close's Wait: take the lock Close
			// closes done under, and stop once it has.
			c.mu.Lock()
			if c.closed() {
				c.mu.Unlock()
				return errors.New("relay: closed")
			}
			c.wg.Add(1)
			c.mu.Unlock()
			go func() {
				defer c.wg.Done()
				c.accept(f[1], from)
			}()
		}
	}
}

// accept opens the data connection of a session and hands it to Accept.
func (c *Client) accept(session string, from netip.AddrPort) {
	ctx, cancel := context.WithTimeout(c.ctx, dialTimeout+handshakeTimeout)
	defer cancel()
	conn, br, err := c.open(ctx, PathAccept, url.Values{"session": {session}})
	if err != nil {
		c.log.Debug("relay accept failed", "err", err)
		return
	}
	nc := c.wrap(conn, br, from)
	if c.cfg.PeerTLS != nil {
		tc := tls.Server(nc, c.cfg.PeerTLS)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			c.log.Info("relayed peer refused at TLS handshake", "remote", from.String(), "err", err)
			return
		}
		nc = tc
	}
	// The torrent client takes connections as fast as it can; one that
	// is not taken in time (a client that stopped accepting) is dropped
	// rather than held.
	t := time.NewTimer(handshakeTimeout)
	defer t.Stop()
	select {
	case c.conns <- nc:
	case <-c.done:
		nc.Close()
	case <-t.C:
		nc.Close()
	}
}

// DialerNetwork is "tcp": handles travel as TCP addresses.
func (c *Client) DialerNetwork() string { return "tcp" }

// Dial connects to the agent with the handle addr through the relay.
func (c *Client) Dial(ctx context.Context, addr string) (net.Conn, error) {
	h, ok := ParseHandle(addr)
	if !ok {
		return nil, fmt.Errorf("relay mode: %s is not a relay handle (relay-mode agents dial only through the relay)", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+DefaultConnectTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	conn, br, err := c.open(ctx, PathDial, url.Values{"handle": {h.String()}})
	if err != nil {
		return nil, err
	}
	nc := c.wrap(conn, br, h)
	if c.cfg.PeerTLS != nil {
		tc := tls.Client(nc, c.cfg.PeerTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("relay: peer TLS with %s: %w", h, err)
		}
		return tc, nil
	}
	return nc, nil
}

// Accept returns the next connection relayed to this agent.
func (c *Client) Accept() (net.Conn, error) {
	select {
	case nc := <-c.conns:
		return nc, nil
	case <-c.done:
	}
	if c.hold != nil {
		<-c.hold
	}
	return nil, net.ErrClosed
}

// Addr is this agent's own handle.
func (c *Client) Addr() net.Addr {
	_, self := c.ids()
	return handleAddr(self)
}

// Close stops the control connection and pending accepts.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
		c.cancel()
	})
	c.wg.Wait()
	return nil
}

// open makes an upgraded HTTP/1.1 request to the relay; the returned
// reader holds what the relay sent after its 101.
func (c *Client) open(ctx context.Context, path string, q url.Values) (net.Conn, *bufio.Reader, error) {
	if q == nil {
		q = url.Values{}
	}
	pid, _ := c.ids()
	q.Set("peer_id", hex.EncodeToString(pid[:]))
	if c.cfg.Tenant != "" {
		q.Set("tenant", c.cfg.Tenant)
	}
	if c.cfg.Site != "" {
		q.Set("site", c.cfg.Site)
	}
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	if c.cfg.Authorize != nil {
		if err := c.cfg.Authorize(req); err != nil {
			return nil, nil, err
		}
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: %w", err)
	}
	if u.Scheme == "https" {
		tc := &tls.Config{}
		if c.cfg.TLS != nil {
			tc = c.cfg.TLS.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		tc.NextProtos = []string{"http/1.1"} // an upgrade needs HTTP/1.1
		tlc := tls.Client(conn, tc)
		if err := tlc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("relay: %w", err)
		}
		conn = tlc
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	br, err := func() (*bufio.Reader, error) {
		if err := req.Write(conn); err != nil {
			return nil, err
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, &RefusedError{Status: resp.StatusCode, Msg: strings.TrimSpace(string(body))}
		}
		return br, nil
	}()
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("relay %s: %w", path, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// RefusedError is the relay's refusal of a request.
type RefusedError struct {
	Status int
	Msg    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused (%d %s): %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// IsRefused reports whether err is a relay refusal with that status.
func IsRefused(err error, status int) bool {
	var re *RefusedError
	return errors.As(err, &re) && re.Status == status
}

// wrap gives a relayed connection the handles as addresses and counts
// its bytes.
func (c *Client) wrap(conn net.Conn, br *bufio.Reader, remote netip.AddrPort) net.Conn {
	_, self := c.ids()
	return &relayConn{Conn: conn, r: br, local: handleAddr(self), remote: handleAddr(remote), c: c}
}

type relayConn struct {
	net.Conn
	r             *bufio.Reader
	local, remote net.Addr
	c             *Client
}

func (rc *relayConn) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.c.received.Add(int64(n))
	return n, err
}

func (rc *relayConn) Write(p []byte) (int, error) {
	n, err := rc.Conn.Write(p)
	rc.c.sent.Add(int64(n))
	return n, err
}

func (rc *relayConn) LocalAddr() net.Addr  { return rc.local }
func (rc *relayConn) RemoteAddr() net.Addr { return rc.remote }
