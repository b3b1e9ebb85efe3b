package relay

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testAuth admits "Bearer <tenant>/<site>" and refuses anything else.
func testAuth(r *http.Request) (Caller, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tenant, site, ok2 := strings.Cut(tok, "/")
	if !ok || !ok2 {
		return Caller{}, ErrUnauthenticated
	}
	return Caller{Tenant: tenant, Site: site, Credential: tok}, nil
}

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Mode = ModeOn
	s := NewServer(cfg.WithDefaults(), testAuth, nil)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return s, hs.URL
}

func startClient(t *testing.T, url, tenant, site string, id byte) *Client {
	t.Helper()
	var pid [20]byte
	pid[0] = id
	c, err := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: tenant, Site: site, Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tenant+"/"+site)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		c.Close()
		<-done
	})
	waitFor(t, "control connection", func() bool { return c.Status().Connected })
	return c
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relayPair connects a to b through the relay and returns both ends,
// failing (never hanging) when either side does not get its end.
func relayPair(t testing.TB, a, b *Client) (ca, cb net.Conn) {
	t.Helper()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := b.Accept()
		ch <- accepted{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, err := a.Dial(ctx, b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return ca, r.c
	case <-ctx.Done():
		t.Fatal("relayed connection not accepted within 30 s")
	}
	return nil, nil
}

func TestRelaySplicesAndCounts(t *testing.T) {
	s, url := startServer(t, Config{})
	a := startClient(t, url, "acme", "berlin", 1)
	b := startClient(t, url, "acme", "paris", 2)

	ca, cb := relayPair(t, a, b)
	if got, want := cb.RemoteAddr().String(), a.Addr().String(); got != want {
		t.Errorf("accepted side sees %s, want the caller's handle %s", got, want)
	}
	if got, want := ca.RemoteAddr().String(), b.Addr().String(); got != want {
		t.Errorf("dialling side sees %s, want %s", got, want)
	}
	msg := strings.Repeat("x", 100000)
	go func() { _, _ = io.WriteString(ca, msg) }()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(cb, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != msg {
		t.Fatal("bytes changed on the way")
	}
	if _, err := io.WriteString(cb, "pong"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ca, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("reply: %q %v", buf[:4], err)
	}
	waitFor(t, "byte count", func() bool { return s.Stats().Bytes == int64(len(msg)+4) })
	sites := map[string]int64{}
	for _, sb := range s.BytesBySite() {
		sites[sb.Tenant+"/"+sb.Site] = sb.Bytes
	}
	if sites["acme/paris"] != int64(len(msg)) || sites["acme/berlin"] != 4 {
		t.Errorf("bytes by site: %v", sites)
	}
	// Closing one side closes the other.
	ca.Close()
	_ = cb.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := cb.Read(buf); err == nil {
		t.Error("the other side is still open")
	}
	waitFor(t, "sessions to end", func() bool { return s.Stats().Sessions == 0 })
}

func TestRelayRefusesStrangersOtherTenantsAndOverCap(t *testing.T) {
	s, url := startServer(t, Config{MaxBytesPerDay: 1000})
	b := startClient(t, url, "acme", "paris", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// No token.
	var pid [20]byte
	stranger, err := NewClient(ClientConfig{URL: url, PeerID: pid})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Dial(ctx, b.Addr().String()); !IsRefused(err, http.StatusUnauthorized) {
		t.Errorf("stranger dial: %v, want 401", err)
	}
	if err := stranger.control(ctx); !IsRefused(err, http.StatusUnauthorized) {
		t.Errorf("stranger control: %v, want 401", err)
	}
	// Another tenant does not find acme's agent.
	other := startClient(t, url, "globex", "paris", 3)
	if _, err := other.Dial(ctx, b.Addr().String()); !IsRefused(err, http.StatusNotFound) {
		t.Errorf("other tenant's dial: %v, want 404", err)
	}
	// Not a handle: refused by the dialer itself.
	if _, err := other.Dial(ctx, "127.0.0.1:1"); err == nil {
		t.Error("dialled a real address")
	}

	// Over the byte cap: the running connection is cut, the next refused.
	a := startClient(t, url, "acme", "berlin", 1)
	go func() {
		if c, err := b.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	ca, err := a.Dial(ctx, b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = ca.Write(make([]byte, 4000))
	_ = ca.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := ca.Read(make([]byte, 1)); err == nil {
		t.Error("connection not cut at the cap")
	}
	ca.Close()
	if _, err := a.Dial(ctx, b.Addr().String()); !IsRefused(err, http.StatusTooManyRequests) || !strings.Contains(err.Error(), "max_bytes_per_day") {
		t.Errorf("dial over the cap: %v, want 429 naming max_bytes_per_day", err)
	}
	st := s.Stats()
	if st.Refused[ReasonUnauthorized] < 2 || st.Refused[ReasonUnknown] < 1 || st.Refused[ReasonByteCap] < 1 || st.Refused[ReasonCut] < 1 {
		t.Errorf("refusals counted: %v", st.Refused)
	}
	// Charged before forwarding: the cap is exact.
	if st.Bytes != 1000 {
		t.Errorf("relay carried %d bytes for a cap of 1000", st.Bytes)
	}
}

func TestRelayTokenCap(t *testing.T) {
	s, url := startServer(t, Config{MaxConnsPerToken: 1})
	b := startClient(t, url, "acme", "paris", 2)
	// b's token holds its one connection (the control): a second agent
	// with the same token is refused.
	var pid [20]byte
	pid[0] = 9
	c, _ := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: "acme", Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer acme/paris")
		return nil
	}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Dial(ctx, b.Addr().String()); !IsRefused(err, http.StatusTooManyRequests) {
		t.Errorf("dial over the token cap: %v, want 429", err)
	}
	if s.Stats().Refused[ReasonTokenCap] != 1 {
		t.Errorf("refusals: %v", s.Stats().Refused)
	}
}

func TestHandles(t *testing.T) {
	var pid [20]byte
	h := HandleFor("acme", pid)
	if !IsHandle(h) || h.Port() == 0 {
		t.Fatalf("handle %s", h)
	}
	if HandleFor("globex", pid) == h {
		t.Error("tenants share a handle")
	}
	if got, ok := ParseHandle(h.String()); !ok || got != h {
		t.Errorf("parse %s: %s %v", h, got, ok)
	}
	if _, ok := ParseHandle("10.0.0.1:80"); ok {
		t.Error("a real address parsed as a handle")
	}
}

// swappable lets a test replace the relay behind one listener, as an
// origin restart does.
type swappable struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

func TestClientReconnectsAfterRelayRestart(t *testing.T) {
	cfg := Config{Mode: ModeOn}.WithDefaults()
	s1 := NewServer(cfg, testAuth, nil)
	sw := &swappable{h: s1}
	hs := httptest.NewServer(sw)
	t.Cleanup(hs.Close)
	c := startClient(t, hs.URL, "acme", "paris", 1)
	if s1.Stats().Controls != 1 {
		t.Fatalf("controls %d", s1.Stats().Controls)
	}
	// The "restart": the old relay drops every connection, a new one serves.
	s2 := NewServer(cfg, testAuth, nil)
	t.Cleanup(s2.Close)
	sw.mu.Lock()
	sw.h = s2
	sw.mu.Unlock()
	s1.Close()
	waitFor(t, "the agent to register again", func() bool { return s2.Stats().Controls == 1 && c.Status().Connected })
	if c.Status().LastError == "" {
		t.Error("the lost connection left no error in the status")
	}
}

func TestRelayClosesIdleConnections(t *testing.T) {
	s, url := startServer(t, Config{IdleTimeout: time.Second})
	a := startClient(t, url, "acme", "berlin", 1)
	b := startClient(t, url, "acme", "paris", 2)
	ca, _ := relayPair(t, a, b)
	// Neither side sends: the relay closes both within a few idle periods.
	_ = ca.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := ca.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte nobody sent")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the relay kept an idle connection open for 30 s")
	}
	waitFor(t, "sessions to end", func() bool { return s.Stats().Sessions == 0 })
}

func TestRelayHandleHeldByAnotherTokenIsRefused(t *testing.T) {
	s, url := startServer(t, Config{})
	startClient(t, url, "acme", "paris", 1)
	// Same tenant and peer ID (so the same handle), another token.
	var pid [20]byte
	pid[0] = 1
	c, err := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: "acme", Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer acme/berlin")
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.control(ctx); !IsRefused(err, http.StatusConflict) {
		t.Errorf("taking over another token's handle: %v, want 409", err)
	}
	if s.Stats().Controls != 1 || s.Stats().Refused[ReasonConflict] != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
}

// BenchmarkRelayThroughput: bytes a second through one relayed
// connection on loopback (go test -run X -bench RelayThroughput ./internal/relay/).
func BenchmarkRelayThroughput(b *testing.B) {
	url := startServerB(b)
	a := startClientB(b, url, 1)
	c := startClientB(b, url, 2)
	ca, cb := relayPair(b, a, c)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := ca.Write(buf); err != nil {
				return
			}
		}
	}()
	rbuf := make([]byte, len(buf))
	for i := 0; i < b.N; i++ {
		if _, err := io.ReadFull(cb, rbuf); err != nil {
			b.Fatal(err)
		}
	}
}

func startServerB(b *testing.B) string {
	s := NewServer(Config{Mode: ModeOn}.WithDefaults(), testAuth, nil)
	hs := httptest.NewServer(s)
	b.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return hs.URL
}

func startClientB(b *testing.B, url string, id byte) *Client {
	var pid [20]byte
	pid[0] = id
	c, err := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: "acme", Site: "s", Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer acme/s")
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go c.Run(ctx)
	b.Cleanup(func() {
		cancel()
		c.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); !c.Status().Connected; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no control connection")
		}
	}
	return c
}

// A tenant-mate with the same token that learned an agent's peer ID
// cannot take its handle, neither while the agent is registered nor in
// the moments it reconnects; the agent itself gets it back.
func TestRelayHandleNotTakenOverByTenantMate(t *testing.T) {
	s, url := startServer(t, Config{})
	var later atomic.Int64 // how far the relay's clock is moved on
	s.now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	newClient := func() *Client {
		var pid [20]byte
		pid[0] = 5
		c, err := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: "acme", Authorize: func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer acme/paris")
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	owner, mate := newClient(), newClient()
	register := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = owner.control(ctx)
		}()
		waitFor(t, "the owner to register", func() bool {
			owner.mu.Lock()
			defer owner.mu.Unlock()
			return s.Stats().Controls == 1 && owner.resume != ""
		})
		return func() {
			cancel()
			<-done
			waitFor(t, "the owner's control to end", func() bool { return s.Stats().Controls == 0 })
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stop := register()
	if err := mate.control(ctx); !IsRefused(err, http.StatusConflict) {
		t.Errorf("takeover of a live handle: %v, want 409", err)
	}
	stop()
	if err := mate.control(ctx); !IsRefused(err, http.StatusConflict) {
		t.Errorf("takeover while the owner reconnects: %v, want 409", err)
	}
	stop = register() // the owner presents its resume secret
	stop()
	if got := s.Stats().Refused[ReasonConflict]; got != 2 {
		t.Errorf("conflicts counted: %d, want 2", got)
	}
	// An owner gone for longer than its reconnect back-off frees the handle.
	later.Store(int64(ownerHold + time.Minute))
	go func() { _ = mate.control(ctx) }()
	waitFor(t, "the handle, long free, to be registered", func() bool { return s.Stats().Controls == 1 })
}

// One tenant filling its share leaves room for the others.
func TestRelayPerTenantCaps(t *testing.T) {
	s, url := startServer(t, Config{MaxControls: 8, MaxControlsPerTenant: 2, MaxSessionsPerTenant: 1})
	a := startClient(t, url, "acme", "berlin", 1)
	b := startClient(t, url, "acme", "paris", 2)
	var pid [20]byte
	pid[0] = 3
	third, err := NewClient(ClientConfig{URL: url, PeerID: pid, Tenant: "acme", Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer acme/rome")
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := third.control(ctx); !IsRefused(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), "max_controls_per_tenant") {
		t.Errorf("acme's third agent: %v, want 503 naming max_controls_per_tenant", err)
	}
	// Another tenant still registers and connects.
	g1 := startClient(t, url, "globex", "berlin", 4)
	g2 := startClient(t, url, "globex", "paris", 5)

	relayPair(t, a, b) // acme's one session
	if _, err := b.Dial(ctx, a.Addr().String()); !IsRefused(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), "max_sessions_per_tenant") {
		t.Errorf("acme's second session: %v, want 503 naming max_sessions_per_tenant", err)
	}
	relayPair(t, g1, g2)
	if st := s.Stats(); st.Controls != 4 || st.Sessions != 2 {
		t.Errorf("stats %+v, want 4 controls and 2 sessions", st)
	}
}
