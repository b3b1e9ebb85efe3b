// Package peertls runs BitTorrent peer connections over mutual TLS 1.3.
//
// Every agent and origin of an enterprise holds a certificate signed by
// the enterprise CA. A peer connection is accepted or made only when both
// ends present such a certificate and both belong to the same tenant; a
// peer without a certificate, with one from another CA, or of another
// tenant is refused during the TLS handshake, before a byte of the
// BitTorrent protocol is exchanged.
//
// # Certificate convention
//
// A peer certificate names its tenant and site (and optionally its region)
// in exactly one URI subject alternative name:
//
//	swarmship://tenant/<tenant>/site/<site>
//	swarmship://tenant/<tenant>/site/<site>/region/<region>
//
// Values follow the catalog's name rules (letters, digits, '.', '_', '+',
// '-'; see release.ValidateName). Peers are dialled by IP address, so host
// names in the certificate are not checked; the identity is the URI SAN.
// Because every peer is both a TLS client (when it dials) and a TLS server
// (when it accepts), leaf certificates need both extended key usages,
// serverAuth and clientAuth. With openssl:
//
//	subjectAltName = URI:swarmship://tenant/acme/site/berlin-01/region/eu
//	extendedKeyUsage = serverAuth, clientAuth
//
// The CA file may hold several certificates (during a CA rotation); the
// certificate file may carry intermediates after the leaf. The key file
// must be readable by its owner only (chmod 600).
//
// # Wiring
//
// Load turns a Config into a *tls.Config; Open into a Source whose config
// follows the files, for certificate renewal without a restart. Attach
// plugs either into an anacrolix client with Client.AddListener and
// Client.AddDialer; the client must be created with DisableTCP,
// DisableUTP and NoDHT so that no plain socket exists (internal/btclient
// does this when given a TLS config). The listener completes the TLS handshake before the client sees
// a connection, so unauthenticated peers never reach the BitTorrent code.
package peertls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/certreload"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/release"
)

// Modes of Config.Mode.
const (
	ModeOff      = "off"      // plain peer connections (the default)
	ModeRequired = "required" // only mutual-TLS peer connections
)

// URIScheme is the scheme of the identity SAN.
const URIScheme = "swarmship"

// Config is the peer_tls section of agent and origin configs.
type Config struct {
	CA   string `yaml:"ca"`   // PEM file: the enterprise CA certificate(s)
	Cert string `yaml:"cert"` // PEM file: this peer's certificate (+ intermediates)
	Key  string `yaml:"key"`  // PEM file: its private key, mode 0600
	Mode string `yaml:"mode"` // "off" (default) or "required"
}

// Enabled reports whether peer connections must use mutual TLS.
func (c Config) Enabled() bool { return c.Mode == ModeRequired }

// Validate checks the settings without reading files; errors name the
// field (internal/fielderr).
func (c Config) Validate() error {
	switch c.Mode {
	case ModeRequired:
		for _, f := range []struct{ name, v string }{{"ca", c.CA}, {"cert", c.Cert}, {"key", c.Key}} {
			if f.v == "" {
				return fielderr.New(f.name, "%s is required with mode %s", f.name, ModeRequired)
			}
		}
	case "":
		// Files without a mode are most likely a forgotten mode: refuse
		// rather than run in plain text believing TLS is on. An explicit
		// "off" keeps them (certificates rolled out before the switch).
		if c.CA != "" || c.Cert != "" || c.Key != "" {
			return fielderr.New("mode", "ca/cert/key are set but mode is not: set mode: %s (or %s)", ModeRequired, ModeOff)
		}
	case ModeOff:
	default:
		return fielderr.New("mode", "mode %q: want %s or %s", c.Mode, ModeOff, ModeRequired)
	}
	return nil
}

// Identity is who a certificate speaks for.
type Identity struct {
	Tenant string
	Site   string
	Region string // optional
}

// URI is the identity's subject alternative name.
func (id Identity) URI() *url.URL {
	p := "/" + url.PathEscape(id.Tenant) + "/site/" + url.PathEscape(id.Site)
	if id.Region != "" {
		p += "/region/" + url.PathEscape(id.Region)
	}
	return &url.URL{Scheme: URIScheme, Host: "tenant", Path: p}
}

func (id Identity) String() string { return id.URI().String() }

// IdentityFromCert reads the identity SAN of a certificate. It does not
// verify the certificate.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range c.URIs {
		if u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q has no %s:// URI SAN naming its tenant and site", c.Subject.CommonName, URIScheme)
	case 1:
	default:
		return Identity{}, fmt.Errorf("certificate %q has %d %s:// URI SANs, want one", c.Subject.CommonName, len(found), URIScheme)
	}
	return parseIdentityURI(found[0])
}

func parseIdentityURI(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("identity SAN %q: %s (want %s://tenant/<tenant>/site/<site>[/region/<region>])", u.String(), why, URIScheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" || u.Opaque != "" {
		return bad("unexpected user, port, query or fragment")
	}
	parts := append([]string{u.Host}, strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")...)
	if len(parts)%2 != 0 {
		return bad("keys and values do not pair up")
	}
	var id Identity
	seen := map[string]bool{}
	for i := 0; i < len(parts); i += 2 {
		key := parts[i]
		val, err := url.PathUnescape(parts[i+1])
		if err != nil {
			return bad(err.Error())
		}
		if seen[key] {
			return bad(key + " appears twice")
		}
		seen[key] = true
		if err := release.ValidateName(key, val); err != nil {
			return bad(err.Error())
		}
		switch key {
		case "tenant":
			id.Tenant = val
		case "site":
			id.Site = val
		case "region":
			id.Region = val
		default:
			return bad("unknown key " + key)
		}
	}
	if parts[0] != "tenant" || id.Site == "" {
		return bad("tenant must come first and site is required")
	}
	return id, nil
}

// Load reads the CA, certificate and key of c and returns a TLS config
// for peer connections (TLS 1.3 only, client certificates required and
// verified against the CA, peers of another tenant refused) and this
// peer's identity. With mode off it returns a nil config. The config is
// fixed; Open returns one that follows changes of the files.
func Load(c Config) (*tls.Config, Identity, error) {
	if err := c.Validate(); err != nil {
		return nil, Identity{}, err
	}
	if !c.Enabled() {
		return nil, Identity{}, nil
	}
	m, err := loadMaterial(c)
	if err != nil {
		return nil, Identity{}, err
	}
	return m.tc, m.id, nil
}

// material is one loaded set of CA, certificate and key.
type material struct {
	tc   *tls.Config // NewConfig of it
	id   Identity
	leaf *x509.Certificate
}

// Source is the peer TLS material of a running agent or origin, read again
// when the CA, certificate or key file changes (checked on new connections,
// at most every certreload.CheckEvery) and on Reload (SIGHUP). A new set
// that does not load, or names another tenant, keeps the old one in force
// and is logged. Connections already open keep the certificate they were
// made with; new ones present and check against the new files.
type Source struct {
	files *certreload.Files[*material]
	tc    *tls.Config
}

// Open is Load for a long-running process: the returned Source's TLS
// config follows the files. With mode off it returns nil (whose methods
// return nothing). log gets reloads and failed ones (nil: slog.Default).
func Open(c Config, log *slog.Logger) (*Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	var tenant string
	files, err := certreload.Open("peer TLS certificate", []string{c.CA, c.Cert, c.Key}, func() (*material, error) {
		m, err := loadMaterial(c)
		if err == nil && tenant != "" && m.id.Tenant != tenant {
			// The tenant is the trust boundary and the process was set up
			// for it; changing it takes a restart.
			return nil, fmt.Errorf("cert %s is for tenant %q, the running one is for %q: restart to change tenants", c.Cert, m.id.Tenant, tenant)
		}
		return m, err
	}, log)
	if err != nil {
		return nil, err
	}
	tenant = files.Current().id.Tenant
	s := &Source{files: files}
	s.tc = &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Server side: the whole config of the current files (their
		// certificate, their CA for client certificates).
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.files.Current().tc, nil
		},
		// Client side: as NewConfig, with the current certificate and CA.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &s.files.Current().tc.Certificates[0], nil
		},
		InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.files.Current().tc.VerifyConnection(cs)
		},
		SessionTicketsDisabled: true,
	}
	return s, nil
}

// TLS is the config for peer connections (Attach, btclient.Config.TLS);
// it stays the same object while the material behind it changes.
func (s *Source) TLS() *tls.Config {
	if s == nil {
		return nil
	}
	return s.tc
}

// Identity is the identity of the certificate in force.
func (s *Source) Identity() Identity {
	if s == nil {
		return Identity{}
	}
	return s.files.Current().id
}

// Leaf is the certificate in force.
func (s *Source) Leaf() *x509.Certificate {
	if s == nil {
		return nil
	}
	return s.files.Current().leaf
}

// Reload reads the files now (SIGHUP); on error the old material stays.
func (s *Source) Reload() error {
	if s == nil {
		return nil
	}
	return s.files.Reload()
}

// SetCheckEvery changes how often the files are looked at (tests).
func (s *Source) SetCheckEvery(d time.Duration) {
	if s != nil {
		s.files.SetCheckEvery(d)
	}
}

// Describe names the certificate in reload logs.
func (m *material) Describe() []any {
	return []any{"identity", m.id.String(), "serial", m.leaf.SerialNumber.String(), "not_after", m.leaf.NotAfter}
}

// loadMaterial reads and checks the files of c (mode required).
func loadMaterial(c Config) (*material, error) {
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("ca: %s holds no PEM certificate", c.CA)
	}
	if err := checkKeyMode(c.Key); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("cert/key: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cert: %w", err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("cert: intermediate: %w", err)
		}
		inter.AddCert(ic)
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			return nil, fmt.Errorf("cert %s does not verify against ca %s for both serverAuth and clientAuth: %w", c.Cert, c.CA, err)
		}
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("cert %s: %w", c.Cert, err)
	}
	return &material{tc: NewConfig(roots, cert, id), id: id, leaf: leaf}, nil
}

// NewConfig builds the peer TLS config from material already loaded; self
// is the identity of cert. Load is the usual way in.
func NewConfig(roots *x509.CertPool, cert tls.Certificate, self Identity) *tls.Config {
	v := &verifier{roots: roots, self: self}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// Peers are dialled by IP and certificates name no hosts, so the
		// library's host-name check is off on the client side;
		// VerifyConnection verifies the chain against RootCAs instead and
		// checks the tenant, on both sides.
		InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
		VerifyConnection:   v.verify,
		// No resumption: every connection presents and checks certificates.
		SessionTicketsDisabled: true,
	}
}

type verifier struct {
	roots *x509.CertPool
	self  Identity
}

// verify runs on both sides after the certificate exchange.
func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if len(cs.VerifiedChains) == 0 {
		// Client side (InsecureSkipVerify): verify the server's chain. The
		// server side was verified by crypto/tls (ClientAuth).
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if id.Tenant != v.self.Tenant {
		return fmt.Errorf("peer %s belongs to tenant %q, not %q", id, id.Tenant, v.self.Tenant)
	}
	return nil
}

func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %v: it must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}

// Defaults of the transport.
const (
	DialTimeout         = 10 * time.Second
	HandshakeTimeout    = 10 * time.Second
	MaxPendingHandshake = 256 // concurrent server handshakes per listener
)

// Dialer dials peers over TLS for an anacrolix client (torrent.Dialer).
// The TLS handshake completes inside Dial.
type Dialer struct {
	TLS     *tls.Config
	Timeout time.Duration // connect and handshake; 0 = DialTimeout
	// Wrap, if set, wraps each handshaken connection (see WithWrap).
	Wrap func(net.Conn) net.Conn
	// Net, if set, makes the connection TLS runs over (a uTP socket, see
	// WithTransport), on network Network; nil: TCP.
	Net     NetDialer
	Network string
}

// NetDialer makes the connections TLS runs over.
type NetDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialerNetwork is the network dialled: "tcp" unless Network says
// otherwise. Peer addresses from trackers and PEX are host:port pairs
// that every network of the client shares (one port for TCP and uTP).
func (d Dialer) DialerNetwork() string {
	if d.Network == "" {
		return "tcp"
	}
	return d.Network
}

// Dial connects to addr and completes the TLS handshake.
func (d Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nd := d.Net
	if nd == nil {
		nd = &net.Dialer{}
	}
	raw, err := nd.DialContext(ctx, d.DialerNetwork(), addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, d.TLS)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if d.Wrap == nil {
		return c, nil
	}
	return d.Wrap(c), nil
}

// Listener accepts TCP connections and hands out only those whose TLS
// handshake succeeded (torrent.Listener). Handshakes run concurrently, at
// most MaxPendingHandshake at a time, each bounded by HandshakeTimeout.
type Listener struct {
	ln       net.Listener
	tc       *tls.Config
	conns    chan net.Conn
	done     chan struct{}
	hold     <-chan struct{} // Accept after Close waits for this (see Attach)
	ctx      context.Context
	cancel   context.CancelFunc
	once     sync.Once
	wg       sync.WaitGroup
	accepted atomic.Int64
	refused  atomic.Int64
	onRefuse func(net.Addr, error)
	wrap     func(net.Conn) net.Conn // see WithWrap
}

// Listen listens on a TCP address ("host:port") for TLS peers.
func Listen(addr string, tc *tls.Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(ln, tc), nil
}

// Serve accepts TLS peers on ln (TCP, or a uTP socket); closing the
// returned Listener closes ln.
func Serve(ln net.Listener, tc *tls.Config) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, tc: tc, conns: make(chan net.Conn), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.serve()
	return l
}

func (l *Listener) serve() {
	defer l.wg.Done()
	sem := make(chan struct{}, MaxPendingHandshake)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case sem <- struct{}{}:
		case <-l.done:
			c.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-sem }()
			l.handshake(c)
		}()
	}
}

func (l *Listener) handshake(c net.Conn) {
	tc := tls.Server(c, l.tc)
	ctx, cancel := context.WithTimeout(l.ctx, HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.Close()
		l.refused.Add(1)
		if l.onRefuse != nil {
			l.onRefuse(c.RemoteAddr(), err)
		}
		return
	}
	l.accepted.Add(1)
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// Accept returns the next connection whose TLS handshake succeeded.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		if l.wrap != nil {
			c = l.wrap(c)
		}
		return c, nil
	case <-l.done:
	}
	if l.hold != nil {
		// The anacrolix accept loop retries on errors until its client is
		// closed; make it wait instead of spinning.
		<-l.hold
	}
	return nil, net.ErrClosed
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Port is the port listened on.
func (l *Listener) Port() int {
	switch a := l.ln.Addr().(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	return 0
}

// Accepted and Refused count completed and failed TLS handshakes.
func (l *Listener) Accepted() int64 { return l.accepted.Load() }

// Refused counts connections dropped at the TLS handshake: no or an
// untrusted certificate, another tenant, not TLS at all, or too slow.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Close stops listening, aborts pending handshakes and waits for them.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
	})
	return err
}

// Transport is what Attach added to a client.
type Transport struct {
	Listener *Listener // nil when attached without a listen address
	Dialer   Dialer
}

// Option tunes Attach.
type Option func(*options)

type options struct {
	log      *slog.Logger
	wrap     func(net.Conn) net.Conn
	noDialer bool
	ln       net.Listener
	nd       NetDialer
	network  string
}

// WithoutDialer adds only the listener: another dialer (a relay) makes
// every outgoing connection and runs the TLS handshake itself.
func WithoutDialer() Option { return func(o *options) { o.noDialer = true } }

// WithWrap hands the client every connection (accepted or dialled, after
// its TLS handshake) through wrap; internal/btclient adds a write-stall
// deadline there.
func WithWrap(wrap func(net.Conn) net.Conn) Option { return func(o *options) { o.wrap = wrap } }

// WithLogger logs refused handshakes (at most a few lines a second).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTransport runs TLS over another transport than TCP: accepted
// connections come from ln (nil: none; the listen address is then
// ignored) and dialled ones from d on network (internal/btclient passes a
// uTP socket as both, so that its UDP port both listens and dials, as
// hole punching needs).
func WithTransport(network string, ln net.Listener, d NetDialer) Option {
	return func(o *options) { o.network, o.ln, o.nd = network, ln, d }
}

// Attach makes cl talk to peers over mutual TLS: it listens on listenAddr
// ("host:port"; "" for none) with a TLS listener given to cl.AddListener
// and adds a TLS dialer with cl.AddDialer. cl must have been created with
// DisableTCP, DisableUTP and NoDHT, or it also keeps its plain sockets.
// The listener is closed when cl closes; the returned Transport (an
// io.Closer) may close it earlier.
func Attach(cl *torrent.Client, tc *tls.Config, listenAddr string, opts ...Option) (*Transport, error) {
	if tc == nil {
		return nil, errors.New("peertls: nil TLS config")
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	t := &Transport{Dialer: Dialer{TLS: tc, Wrap: o.wrap, Net: o.nd, Network: o.network}}
	if o.nd != nil {
		listenAddr = ""
		if o.ln != nil {
			listenAddr = o.ln.Addr().String()
		}
	}
	if listenAddr != "" {
		var ln *Listener
		if o.ln != nil {
			ln = Serve(o.ln, tc)
		} else {
			var err error
			if ln, err = Listen(listenAddr, tc); err != nil {
				return nil, fmt.Errorf("peer TLS listener: %w", err)
			}
		}
		ln.hold = cl.Closed()
		ln.wrap = o.wrap
		if o.log != nil {
			lim := rate.NewLimiter(2, 10)
			var dropped atomic.Int64
			ln.onRefuse = func(a net.Addr, err error) {
				if !lim.Allow() {
					dropped.Add(1)
					return
				}
				o.log.Warn("peer refused at TLS handshake", "remote", a.String(), "err", err, "unlogged_before", dropped.Swap(0))
			}
		}
		t.Listener = ln
		go func() {
			<-cl.Closed()
			ln.Close()
		}()
		cl.AddListener(ln)
	}
	if !o.noDialer {
		cl.AddDialer(t.Dialer)
	}
	return t, nil
}

var _ torrent.Listener = (*Listener)(nil)
var _ torrent.Dialer = Dialer{}
