package relay

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/internal/lograte"
)

// Paths, matched as suffixes so the relay can be mounted under a prefix.
const (
	PathControl = "/relay/control"
	PathDial    = "/relay/dial"
	PathAccept  = "/relay/accept"
)

// Protocol is the Upgrade token of relay connections.
const Protocol = "swarmship-relay"

// PingEvery is how often the relay writes "ping" on an idle control
// connection; an agent that hears nothing for 3 pings reconnects.
const PingEvery = 20 * time.Second

// ErrUnauthenticated marks an authentication failure (401, not 403).
var ErrUnauthenticated = errors.New("unauthenticated")

// Caller is who a relay request comes from, as the origin's
// authentication established it.
type Caller struct {
	Tenant string
	Site   string
	// Credential identifies the token (a hash, never the token) for the
	// per-token cap.
	Credential string
}

// AuthFunc authenticates a relay request. An error wrapping
// ErrUnauthenticated answers 401, any other 403.
type AuthFunc func(*http.Request) (Caller, error)

// Refusal reasons, the label of the refused metric.
const (
	ReasonUnauthorized = "unauthorized"
	ReasonMalformed    = "malformed"
	ReasonUnknown      = "unknown_handle" // nobody with that handle is connected
	ReasonByteCap      = "byte_cap"       // the tenant's bytes of the day are spent
	ReasonCut          = "byte_cap_cut"   // a running connection cut at the byte cap
	ReasonSessions     = "sessions"       // max_sessions or max_controls reached
	ReasonTokenCap     = "token_cap"      // max_conns_per_token reached
	ReasonConflict     = "conflict"       // handle registered by another credential
	ReasonNoAnswer     = "no_answer"      // the called agent did not answer in time
)

type ctlKey struct {
	tenant string
	handle netip.AddrPort
}

type siteKey struct{ tenant, site string }

// maxSiteCounters bounds the (tenant, site) byte counters; beyond it a
// tenant's new sites count as site "_other".
const maxSiteCounters = 10000

// Server is the relay endpoint of an origin (an http.Handler).
type Server struct {
	cfg  Config
	auth AuthFunc
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	controls map[ctlKey]*control
	// held remembers the resume secret of handles whose control ended,
	// for ownerHold: the agent reconnecting in that time gets its
	// handle back, nobody else does.
	held     map[ctlKey]heldHandle
	pending  map[string]*session
	sessions int // pending and spliced
	// per tenant: sessions and registered controls
	tenantSessions, tenantControls map[string]int
	perCred                        map[string]int // connections of every kind per credential
	budget                         map[string]*dayBudget
	bytes                          map[siteKey]*atomic.Int64
	refused                        map[string]int64
	live                           map[net.Conn]struct{} // hijacked connections, closed by Close
	closed                         bool

	total    atomic.Int64
	logLimit lograte.Limiter
}

type dayBudget struct {
	day  int64 // unix day (UTC)
	used int64
}

type control struct {
	caller Caller
	handle netip.AddrPort
	resume string      // proves a re-registration comes from the same agent
	out    chan string // "connect" lines
	done   chan struct{}
	once   sync.Once
}

func (c *control) stop() { c.once.Do(func() { close(c.done) }) }

type session struct {
	id     string
	caller Caller
	from   netip.AddrPort // the caller's handle: the accepted side's remote address
	target *control
	ready  chan net.Conn // the accepted side's hijacked connection (nil: it failed)
	done   chan struct{} // closed when the dialling side is done with it
}

// NewServer returns a relay server; cfg must have been validated.
func NewServer(cfg Config, auth AuthFunc, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg: cfg.WithDefaults(), auth: auth, log: log, now: time.Now,
		controls: map[ctlKey]*control{}, held: map[ctlKey]heldHandle{}, tenantSessions: map[string]int{}, tenantControls: map[string]int{}, pending: map[string]*session{},
		perCred: map[string]int{}, budget: map[string]*dayBudget{},
		bytes: map[siteKey]*atomic.Int64{}, refused: map[string]int64{},
		live: map[net.Conn]struct{}{},
	}
}

// ServeHTTP serves /relay/control, /relay/dial and /relay/accept.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request, Caller)
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, PathControl):
		serve = s.serveControl
	case strings.HasSuffix(p, PathDial):
		serve = s.serveDial
	case strings.HasSuffix(p, PathAccept):
		serve = s.serveAccept
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), Protocol) {
		s.refuse(w, r, ReasonMalformed, http.StatusUpgradeRequired, "relay: want Upgrade: "+Protocol)
		return
	}
	c, err := s.auth(r)
	if err != nil {
		status := http.StatusForbidden
		if errors.Is(err, ErrUnauthenticated) {
			status = http.StatusUnauthorized
		}
		s.refuse(w, r, ReasonUnauthorized, status, "relay: "+err.Error())
		return
	}
	if c.Credential == "" {
		c.Credential = "site:" + c.Tenant + "/" + c.Site
	}
	serve(w, r, c)
}

// refuse answers an HTTP error and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, reason string, status int, msg string) {
	s.mu.Lock()
	s.refused[reason]++
	s.mu.Unlock()
	if ok, dropped := s.logLimit.Allow(s.now()); ok {
		s.log.Info("relay refused", "reason", reason, "path", r.URL.Path, "remote", r.RemoteAddr, "err", msg, "unlogged_before", dropped)
	}
	if reason == ReasonByteCap {
		w.Header().Set("Retry-After", fmt.Sprint(int(s.untilTomorrow().Seconds())+1))
	}
	http.Error(w, msg, status)
}

func (s *Server) untilTomorrow() time.Duration {
	now := s.now().UTC()
	return now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now)
}

func parsePeerID(r *http.Request) ([20]byte, error) {
	var id [20]byte
	b, err := hex.DecodeString(r.URL.Query().Get("peer_id"))
	if err != nil || len(b) != len(id) {
		return id, errors.New("relay: peer_id must be 40 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

// take reserves one connection of credential c (and one session if
// session), or says why not; s.mu is held.
func (s *Server) takeLocked(c Caller, session bool) (string, int, string) {
	if s.closed {
		return ReasonSessions, http.StatusServiceUnavailable, "relay: shutting down"
	}
	if s.perCred[c.Credential] >= s.cfg.MaxConnsPerToken {
		return ReasonTokenCap, http.StatusTooManyRequests, fmt.Sprintf("relay: this token already holds %d relay connections (max_conns_per_token)", s.cfg.MaxConnsPerToken)
	}
	if session && s.sessions >= s.cfg.MaxSessions {
		return ReasonSessions, http.StatusServiceUnavailable, fmt.Sprintf("relay: busy, %d relayed connections (max_sessions)", s.cfg.MaxSessions)
	}
	if session && s.tenantSessions[c.Tenant] >= s.cfg.MaxSessionsPerTenant {
		return ReasonSessions, http.StatusServiceUnavailable, fmt.Sprintf("relay: busy, tenant %q has %d relayed connections (max_sessions_per_tenant)", c.Tenant, s.cfg.MaxSessionsPerTenant)
	}
	s.perCred[c.Credential]++
	if session {
		s.sessions++
		s.tenantSessions[c.Tenant]++
	}
	return "", 0, ""
}

func (s *Server) release(c Caller, session bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perCred[c.Credential]--; s.perCred[c.Credential] <= 0 {
		delete(s.perCred, c.Credential)
	}
	if session {
		s.sessions--
		if s.tenantSessions[c.Tenant]--; s.tenantSessions[c.Tenant] <= 0 {
			delete(s.tenantSessions, c.Tenant)
		}
	}
}

// hijack switches the request's connection to the relay protocol.
func (s *Server) hijack(w http.ResponseWriter) (net.Conn, error) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("relay needs HTTP/1.1: %w", err)
	}
	// The server's read and write timeouts would cut a long transfer.
	_ = conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+Protocol+"\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	// Agents send nothing before the 101, but keep what was read ahead.
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		conn = &prefixConn{Conn: conn, r: io.MultiReader(strings.NewReader(string(b)), conn)}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return nil, errors.New("relay closed")
	}
	s.live[conn] = struct{}{}
	s.mu.Unlock()
	return conn, nil
}

func (s *Server) forget(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.live, conn)
	s.mu.Unlock()
}

type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveControl registers a relay-mode agent and tells it, line by line,
// who wants to connect to it.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, c Caller) {
	pid, err := parsePeerID(r)
	if err != nil {
		s.refuse(w, r, ReasonMalformed, http.StatusBadRequest, err.Error())
		return
	}
	ctl := &control{caller: c, handle: HandleFor(c.Tenant, pid), out: make(chan string, 16), done: make(chan struct{})}
	key := ctlKey{c.Tenant, ctl.handle}
	s.mu.Lock()
	old := s.controls[key]
	// A handle derives from the peer ID, which every peer of the agent
	// sees: only the agent that registered it first (it holds the resume
	// secret) may register it again, live or lately gone.
	ctl.resume = s.resumeSecretLocked(key, old)
	switch {
	case old != nil && old.caller.Credential != c.Credential:
		s.mu.Unlock()
		s.refuse(w, r, ReasonConflict, http.StatusConflict, "relay: this handle is registered by another token")
		return
	case ctl.resume != "" && subtle.ConstantTimeCompare([]byte(ctl.resume), []byte(r.URL.Query().Get("resume"))) != 1:
		s.mu.Unlock()
		s.refuse(w, r, ReasonConflict, http.StatusConflict, "relay: this handle is held by another agent")
		return
	case old == nil && len(s.controls) >= s.cfg.MaxControls:
		s.mu.Unlock()
		s.refuse(w, r, ReasonSessions, http.StatusServiceUnavailable, fmt.Sprintf("relay: busy, %d agents registered (max_controls)", s.cfg.MaxControls))
		return
	case old == nil && s.tenantControls[c.Tenant] >= s.cfg.MaxControlsPerTenant:
		s.mu.Unlock()
		s.refuse(w, r, ReasonSessions, http.StatusServiceUnavailable, fmt.Sprintf("relay: busy, tenant %q has %d agents registered (max_controls_per_tenant)", c.Tenant, s.cfg.MaxControlsPerTenant))
		return
	}
	if reason, status, msg := s.takeLocked(c, false); reason != "" {
		s.mu.Unlock()
		s.refuse(w, r, reason, status, msg)
		return
	}
	if old != nil {
		old.stop() // the same agent reconnecting: the newer connection wins
	}
	if ctl.resume == "" {
		ctl.resume = newResumeSecret()
	}
	delete(s.held, key)
	if old == nil {
		s.tenantControls[c.Tenant]++
	}
	s.controls[key] = ctl
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.controls[key] == ctl {
			delete(s.controls, key)
			if s.tenantControls[c.Tenant]--; s.tenantControls[c.Tenant] <= 0 {
				delete(s.tenantControls, c.Tenant)
			}
			s.holdLocked(key, ctl.resume)
		}
		s.mu.Unlock()
		ctl.stop()
		s.release(c, false)
	}()
	conn, err := s.hijack(w)
	if err != nil {
		return
	}
	defer s.forget(conn)
	go func() {
		// The agent sends nothing; a read ends when it goes away.
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1<<10))
		ctl.stop()
	}()
	ping := time.NewTicker(PingEvery)
	defer ping.Stop()
	if !writeLine(conn, "ok "+ctl.handle.String()+" "+ctl.resume) {
		return
	}
	for {
		var line string
		select {
		case line = <-ctl.out:
		case <-ping.C:
			line = "ping"
		case <-ctl.done:
			return
		}
		if !writeLine(conn, line) {
			return
		}
	}
}

func writeLine(conn net.Conn, line string) bool {
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(conn, line+"\n")
	return err == nil
}

// ownerHold is how long a handle stays reserved for its agent after its
// control ends: longer than the agent's longest reconnect back-off.
const ownerHold = 5 * time.Minute

type heldHandle struct {
	resume string
	until  time.Time
}

// resumeSecretLocked is the secret a registration of key must present,
// "" when the handle is free.
func (s *Server) resumeSecretLocked(key ctlKey, live *control) string {
	if live != nil {
		return live.resume
	}
	if h, ok := s.held[key]; ok && s.now().Before(h.until) {
		return h.resume
	}
	return ""
}

// holdLocked reserves key for ownerHold, dropping expired holds; bounded
// by MaxControls (past it the handle is simply free again).
func (s *Server) holdLocked(key ctlKey, resume string) {
	now := s.now()
	if len(s.held) >= s.cfg.MaxControls {
		for k, h := range s.held {
			if !now.Before(h.until) {
				delete(s.held, k)
			}
		}
	}
	if len(s.held) < s.cfg.MaxControls {
		s.held[key] = heldHandle{resume, now.Add(ownerHold)}
	}
}

func newResumeSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveDial connects the caller to the agent with the handle it names.
func (s *Server) serveDial(w http.ResponseWriter, r *http.Request, c Caller) {
	pid, err := parsePeerID(r)
	if err != nil {
		s.refuse(w, r, ReasonMalformed, http.StatusBadRequest, err.Error())
		return
	}
	to, ok := ParseHandle(r.URL.Query().Get("handle"))
	if !ok {
		s.refuse(w, r, ReasonMalformed, http.StatusBadRequest, "relay: handle must be a relay address (240.x.y.z:port)")
		return
	}
	if !s.allowBytes(c.Tenant) {
		s.refuse(w, r, ReasonByteCap, http.StatusTooManyRequests, fmt.Sprintf("relay: tenant %q has used its relay allowance of %s for today (max_bytes_per_day); peers and the origin remain", c.Tenant, s.cfg.MaxBytesPerDay))
		return
	}
	sess := &session{id: newID(), caller: c, from: HandleFor(c.Tenant, pid), ready: make(chan net.Conn, 1), done: make(chan struct{})}
	s.mu.Lock()
	// Tenant scoping: only agents of the caller's own tenant are found.
	target := s.controls[ctlKey{c.Tenant, to}]
	if target == nil {
		s.mu.Unlock()
		s.refuse(w, r, ReasonUnknown, http.StatusNotFound, "relay: no agent with this handle is connected to this relay")
		return
	}
	if reason, status, msg := s.takeLocked(c, true); reason != "" {
		s.mu.Unlock()
		s.refuse(w, r, reason, status, msg)
		return
	}
	sess.target = target
	s.pending[sess.id] = sess
	s.mu.Unlock()
	defer s.release(c, true)

	select {
	case target.out <- "connect " + sess.id + " " + sess.from.String():
	default:
		s.dropPending(sess.id)
		s.refuse(w, r, ReasonSessions, http.StatusServiceUnavailable, "relay: the agent has too many connections being set up")
		return
	}
	timer := time.NewTimer(s.cfg.ConnectTimeout)
	defer timer.Stop()
	var other net.Conn
	select {
	case other = <-sess.ready:
	case <-timer.C:
	case <-r.Context().Done():
	}
	if other == nil && !s.dropPending(sess.id) {
		other = <-sess.ready // the acceptor took it just now: it delivers
	}
	if other == nil {
		s.refuse(w, r, ReasonNoAnswer, http.StatusGatewayTimeout, "relay: the agent did not answer")
		return
	}
	defer close(sess.done)
	defer s.forget(other)
	conn, err := s.hijack(w)
	if err != nil {
		return
	}
	defer s.forget(conn)
	s.splice(conn, c, other, target.caller)
}

// dropPending removes a pending session; false if an acceptor took it.
func (s *Server) dropPending(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return false
	}
	delete(s.pending, id)
	return true
}

// serveAccept is the called agent's side of a session.
func (s *Server) serveAccept(w http.ResponseWriter, r *http.Request, c Caller) {
	pid, err := parsePeerID(r)
	if err != nil {
		s.refuse(w, r, ReasonMalformed, http.StatusBadRequest, err.Error())
		return
	}
	id := r.URL.Query().Get("session")
	s.mu.Lock()
	sess := s.pending[id]
	if sess == nil || sess.target.caller.Tenant != c.Tenant || sess.target.handle != HandleFor(c.Tenant, pid) {
		s.mu.Unlock()
		s.refuse(w, r, ReasonUnknown, http.StatusNotFound, "relay: no such session for this agent")
		return
	}
	if reason, status, msg := s.takeLocked(c, false); reason != "" {
		s.mu.Unlock()
		s.refuse(w, r, reason, status, msg)
		return
	}
	delete(s.pending, id)
	s.mu.Unlock()
	conn, err := s.hijack(w)
	if err != nil {
		s.release(c, false)
		sess.ready <- nil
		return
	}
	sess.ready <- conn
	// The dialling side owns both connections from here; this side's
	// per-token slot is held until its splice ends.
	<-sess.done
	s.release(c, false)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// allowBytes reports whether tenant may start a relayed connection.
func (s *Server) allowBytes(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.budget[tenant] // read only: a refused caller adds no entry
	return b == nil || b.day != s.now().Unix()/86400 || b.used < int64(s.cfg.MaxBytesPerDay)
}

func (s *Server) budgetLocked(tenant string) *dayBudget {
	day := s.now().Unix() / 86400
	b := s.budget[tenant]
	if b == nil {
		b = &dayBudget{day: day}
		s.budget[tenant] = b
	}
	if b.day != day {
		b.day, b.used = day, 0
	}
	return b
}

// spend reserves up to n bytes sent toward an agent of to and returns
// how many may be forwarded: fewer than n when the tenant's allowance
// runs out. Charging before forwarding keeps the daily cap exact.
func (s *Server) spend(to Caller, n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.budgetLocked(to.Tenant)
	if left := int64(s.cfg.MaxBytesPerDay) - b.used; int64(n) > left {
		n = int(max(left, 0))
	}
	if n == 0 {
		return 0
	}
	b.used += int64(n)
	s.total.Add(int64(n))
	k := siteKey{to.Tenant, to.Site}
	ctr := s.bytes[k]
	if ctr == nil && len(s.bytes) >= maxSiteCounters {
		// Sites named by tenant-wide tokens are the agents' word: bound
		// the metric's label values.
		k.site = "_other"
		ctr = s.bytes[k]
	}
	if ctr == nil {
		ctr = new(atomic.Int64)
		s.bytes[k] = ctr
	}
	ctr.Add(int64(n))
	return n
}

// splice copies between a (the caller) and b (the called agent) until
// either side closes, both are idle for IdleTimeout, or the tenant's
// allowance runs out; closing one side closes the other.
func (s *Server) splice(a net.Conn, ac Caller, b net.Conn, bc Caller) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var cut atomic.Bool
	var wg sync.WaitGroup
	pump := func(dst net.Conn, to Caller, src net.Conn) {
		defer wg.Done()
		defer a.Close()
		defer b.Close()
		buf := make([]byte, 32<<10)
		for {
			_ = src.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				ok := s.spend(to, n)
				if ok > 0 {
					_ = dst.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
					if _, werr := dst.Write(buf[:ok]); werr != nil {
						return
					}
				}
				if ok < n {
					// Counted before both sides close, so whoever sees
					// the cut also sees it in Stats.
					if cut.CompareAndSwap(false, true) {
						s.mu.Lock()
						s.refused[ReasonCut]++
						s.mu.Unlock()
					}
					return
				}
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < s.cfg.IdleTimeout {
					continue // the other direction is busy
				}
				return
			}
		}
	}
	wg.Add(2)
	go pump(b, bc, a)
	go pump(a, ac, b)
	wg.Wait()
}

// Stats is what the relay has done, for the dashboard and /metrics.
type Stats struct {
	Bytes    int64            `json:"bytes"`    // sent toward agents, all tenants
	Sessions int              `json:"sessions"` // relayed connections now (and being set up)
	Controls int              `json:"controls"` // agents registered now
	Refused  map[string]int64 `json:"refused,omitempty"`
}

// Stats returns the current figures.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Bytes: s.total.Load(), Sessions: s.sessions, Controls: len(s.controls), Refused: map[string]int64{}}
	for k, v := range s.refused {
		st.Refused[k] = v
	}
	return st
}

// SiteBytes is the bytes sent toward one tenant's site.
type SiteBytes struct {
	Tenant, Site string
	Bytes        int64
}

// BytesBySite lists bytes sent toward each tenant and site.
func (s *Server) BytesBySite() []SiteBytes {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SiteBytes, 0, len(s.bytes))
	for k, v := range s.bytes {
		out = append(out, SiteBytes{k.tenant, k.site, v.Load()})
	}
	return out
}

// Close ends every relay connection; later requests are refused.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]net.Conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	ctls := make([]*control, 0, len(s.controls))
	for _, c := range s.controls {
		ctls = append(ctls, c)
	}
	s.mu.Unlock()
	for _, c := range ctls {
		c.stop()
	}
	for _, c := range conns {
		c.Close()
	}
}
