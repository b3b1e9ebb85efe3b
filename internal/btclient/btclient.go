// Package btclient builds anacrolix/torrent clients with settings that
// avoid the library's known traps (see shared notes): a seeder that stalls
// after ~2 MiB with the default request-data allocation, Seed off by
// default, a fixed default port, a process-wide upload limiter, UPnP, and
// the library's web seed competing with peers as an equal source.
package btclient

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/peertls"
)

// Peer ID prefixes (Azureus style, BEP 20) let swarmship processes
// recognise each other: agents share origin work only among agents, and the
// tracker keeps the origin seeder away from agents. The client codes SH
// (agent) and SO (origin) are in none of the known client lists
// (libtorrent, Transmission, Vuze/BiglyBT), so foreign clients show them
// as "SH 0.1.0" rather than as another client; "SS" was SwarmScope's.
// The four digits are the peer protocol generation (0.1.0.0). Agents match
// the whole prefix, so they change only when agents of different
// generations must stop treating each other as agents.
const (
	AgentPeerIDPrefix  = "-SH0100-"
	OriginPeerIDPrefix = "-SO0100-"
)

// Config is what differs between swarmship's clients.
type Config struct {
	PeerIDPrefix string // AgentPeerIDPrefix or OriginPeerIDPrefix
	ListenHost   string // "" = all interfaces
	ListenPort   int    // 0 = a free port
	DataDir      string // default storage directory (unused when every torrent has its own storage)
	MaxConns     int    // established connections per torrent; 0 = library default
	// Upload and Download limit the client; nil means unlimited. Callers
	// keep the limiters to change limits at runtime: Upload must come from
	// UploadLimiter and change with SetUploadRate (its burst is the
	// request-length cap); Download changes with SetLimit.
	Upload, Download *rate.Limiter
	Logger           *slog.Logger
	// NoPeers accepts no peer connections and shares no peers (origin-only
	// mode for networks that may talk only to the origin).
	NoPeers bool
	// NoPEX turns off peer exchange (locality-restricted agents).
	NoPEX bool
	// NoUpload serves no piece data to anyone (the origin's rendezvous
	// client, which only introduces peers).
	NoUpload bool
	// TLS, if set (peertls.Load), makes every peer connection mutual TLS:
	// the plain TCP and uTP sockets and the DHT are off, and ListenHost and
	// ListenPort apply to the TLS listener. The listener closes with the
	// client.
	TLS *tls.Config
	// TLSLog gets a line for peers refused at the TLS handshake (a few a
	// second at most); nil: not logged.
	TLSLog *slog.Logger
	// TrackerRequest, if set, edits each HTTP tracker request before it is
	// sent (the agent puts its token in an Authorization header there,
	// never in the announce URL; the origin's seeder its credential).
	TrackerRequest func(*http.Request) error
	// TrackerTLS, if set, verifies https trackers with this config (root
	// CAs, client certificate); the library alone skips verification. Set
	// it only when the tracker URLs are https (see trackertls.go).
	TrackerTLS *tls.Config
	// WriteStall overrides the package's WriteStall (tests); 0: WriteStall.
	WriteStall time.Duration
	// UTP adds uTP (BEP 29) to TCP, plain or under TLS, on the same port:
	// peers behind NAT can then reach each other through a hole punched by
	// a peer both are connected to (BEP 55, which the library always
	// offers and answers). Needs a listener (not NoPeers); with Relay, uTP
	// only accepts (nothing is dialled directly).
	UTP bool
	// Relay, if set, carries every outgoing peer connection (relay mode:
	// the tracker hands out only relay handles, and nothing is dialled
	// directly) and accepts the connections relayed to this client,
	// besides the usual listener. See internal/relay.
	Relay Relay
	// DSCP, if set (ParseDSCP, 0-63), marks every peer packet, both
	// directions, TCP and uTP, plain or TLS: the IPv4 TOS byte and the
	// IPv6 traffic class of each peer socket (shape.go).
	DSCP *int
	// WrapPeerConn, if set, wraps every peer connection below TLS, dialled
	// or accepted (the agent's WAN limiter); relayed ones too.
	WrapPeerConn func(net.Conn) net.Conn
	// Callbacks, if set, are the library's event hooks (the agent's
	// contribution ledger); they run under the client's lock.
	Callbacks *torrent.Callbacks
}

// Relay is a relay transport (internal/relay.Client).
type Relay interface {
	torrent.Dialer
	torrent.Listener
}

// MaxRequestLength caps one peer request. BEP 3 blocks are 16 KiB and
// every client we interoperate with (anacrolix, libtorrent, Transmission,
// aria2) asks for 16 KiB; a peer asking for more is refused (or dropped
// when it lacks the fast extension) instead of making the agent read
// whole pieces into memory for it.
const MaxRequestLength = 16 << 10

// maxRequestData is the library's per-connection budget of request data
// read ahead for a peer. It is exactly what a connection can hold (the
// library queues at most 1024 requests per peer, each at most
// MaxRequestLength): every request's reservation fits, so the seeder
// deadlock of a small budget (a request server waiting on a reservation
// behind requests it has not served; shared notes) cannot happen, and a
// peer that asks and never reads pins at most 16 MiB, not 64. All
// connections together are bounded by a ServeBudget (servebudget.go).
const maxRequestData = 1024 * MaxRequestLength

// Unmetered is the upload rate used for "unlimited". It is finite on
// purpose: the library checks request lengths against the upload
// limiter's burst only when the limit is not rate.Inf.
const Unmetered = rate.Limit(1 << 40)

// UploadLimiter returns an upload limiter that does not limit but caps
// peer requests at MaxRequestLength; change it with SetUploadRate only.
func UploadLimiter() *rate.Limiter { return rate.NewLimiter(Unmetered, MaxRequestLength) }

// SetUploadRate sets an UploadLimiter to bytesPerSec (0: unlimited). The
// burst stays MaxRequestLength: it is the library's request-length cap.
func SetUploadRate(l *rate.Limiter, bytesPerSec float64) {
	if bytesPerSec <= 0 {
		l.SetLimit(Unmetered)
	} else {
		l.SetLimit(rate.Limit(bytesPerSec))
	}
	l.SetBurst(MaxRequestLength)
}

// Unlimited returns a limiter that does not limit but can be throttled
// later with SetLimit. It has an explicit burst: a zero burst broke later
// SetLimit calls in a probe.
func Unlimited() *rate.Limiter { return rate.NewLimiter(rate.Inf, 64<<20) }

// keepAliveTimeout bounds how long a connection's writer sleeps without a
// wake-up. anacrolix/torrent v1.59.1's writer fills its buffer under the
// client lock, drops the lock, and only then waits for its signal: a
// wake-up in between (the next round of requests, a block read for the
// peer, an upload limit raised) is lost until this timer fires. With the
// library's default of a minute, a leecher sat idle for ~50 s in 1 of 5
// benchmark runs (issue 14; upstream anacrolix/torrent#1070, fixed after
// v1.59.1). A second costs a 4-byte keep-alive per idle second. Not
// closed entirely: the library re-arms the timer only after a write, so a
// connection of no use to either side when the timer fires (no keep-alive
// written) waits on events alone until its next write.
const keepAliveTimeout = time.Second

// New starts a client.
func New(c Config) (*torrent.Client, error) {
	cc, err := clientConfig(&c)
	if err != nil {
		return nil, err
	}
	cl, err := torrent.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("start BitTorrent client: %w", err)
	}
	return attachTransport(cl, cc, c)
}

// clientConfig is the library configuration for c; it fills in c's
// limiters when they are nil.
func clientConfig(c *Config) (*torrent.ClientConfig, error) {
	cc := torrent.NewDefaultClientConfig()
	cc.Seed = true
	cc.KeepAliveTimeout = keepAliveTimeout
	cc.ListenPort = c.ListenPort
	host := c.ListenHost
	cc.ListenHost = func(string) string { return host }
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		cc.DisableIPv6 = true
	}
	cc.NoDHT = true
	cc.DisableUTP = true
	cc.NoDefaultPortForwarding = true
	cc.DisableWebseeds = true
	cc.MaxAllocPeerRequestDataPerConn = maxRequestData
	// The default 64 MiB budget of unverified bytes is spent first on the
	// rarest pieces, which nobody has early in a rollout (the origin shards
	// come over HTTP): for releases over 64 MiB, agents requested nothing
	// from peers for the first ~25 s in the branch testbed. Unbounded.
	cc.MaxUnverifiedBytes = 0
	cc.DataDir = c.DataDir
	cc.HttpRequestDirector = c.TrackerRequest
	// Every torrent gets its own storage; the default one must not leave a
	// piece-completion database in DataDir (or the working directory).
	cc.DefaultStorage = NewFileStorage(c.DataDir, storage.NewMapPieceCompletion())
	if c.NoPEX {
		cc.DisablePEX = true
	}
	if c.Callbacks != nil {
		cc.Callbacks = *c.Callbacks
	}
	if c.NoUpload {
		cc.NoUpload = true
	}
	if c.NoPeers {
		cc.AcceptPeerConnections = false
		cc.DisablePEX = true
	}
	// Plain peers go through our own TCP listener and dialer (see
	// WriteStall); with TLS, through peertls's.
	cc.DisableTCP = true
	if c.TLS != nil {
		cc.DisableUTP = true
		cc.NoDHT = true
		// TLS already hides the handshake: skip MSE's key exchange.
		cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{}
	}
	if c.Relay != nil {
		// Relay mode: no socket of the library's own (uTP, DHT) may dial
		// or expose an address; the relay is the only way in and out.
		cc.DisableUTP = true
		cc.NoDHT = true
		cc.DisablePEX = true
	}
	if c.TrackerTLS != nil {
		tt, err := newTrackerTLS(c.TrackerTLS, c.TLSLog)
		if err != nil {
			return nil, err
		}
		cc.TrackerDialContext = tt.DialContext
	}
	if c.MaxConns > 0 {
		cc.EstablishedConnsPerTorrent = c.MaxConns
	}
	// The library dials 10 peers a second. Addresses that refuse (fake
	// announcers that slipped under the tracker's caps, agents gone since
	// their last announce) then delay the real peers of a swarm by seconds
	// at the start, when the offload divides the work; half-open
	// connections stay bounded by HalfOpenConnsPerTorrent (25).
	cc.DialRateLimiter = rate.NewLimiter(50, 50)
	if c.Upload == nil {
		c.Upload = UploadLimiter()
	}
	if c.Upload.Limit() == rate.Inf || c.Upload.Burst() > MaxRequestLength {
		return nil, fmt.Errorf("btclient: the upload limiter must come from UploadLimiter (a limit of rate.Inf or a burst over %d bytes turns off the request-length cap)", MaxRequestLength)
	}
	if c.Download == nil {
		c.Download = Unlimited()
	}
	cc.UploadRateLimiter = c.Upload
	cc.DownloadRateLimiter = c.Download
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := range id {
		id[i] = alnum[int(id[i])%len(alnum)]
	}
	cc.PeerID = c.PeerIDPrefix + string(id)
	cc.Logger = alog.Default.WithFilterLevel(alog.Critical)
	if c.Logger != nil {
		cc.Slogger = c.Logger
	} else {
		cc.Slogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cc, nil
}

// attachTransport gives cl its peer listener and dialer: plain TCP or
// mutual TLS, both with the write-stall deadline. cl is closed on error.
func attachTransport(cl *torrent.Client, cc *torrent.ClientConfig, c Config) (*torrent.Client, error) {
	host := c.ListenHost
	stall := c.WriteStall
	if stall <= 0 {
		stall = WriteStall
	}
	if c.UTP && c.NoPeers {
		cl.Close()
		return nil, errNoUTP
	}
	shape := newPeerShape(c)
	var socks peerSockets
	if !c.NoPeers { // NoPeers accepts nothing: no listener at all
		var err error
		if socks, err = listenPeers(host, c.ListenPort, cc.DisableIPv6, c.UTP); err != nil {
			cl.Close()
			return nil, err
		}
		if err := errors.Join(shape.markListener(socks.tcp), shape.markUTP(socks.utp)); err != nil {
			socks.Close()
			cl.Close()
			return nil, err
		}
	}
	if c.TLS != nil {
		opts := []peertls.Option{peertls.WithWrap(func(c net.Conn) net.Conn { tunePeerConn(c); return newStallConn(c, stall) })}
		if c.TLSLog != nil {
			opts = append(opts, peertls.WithLogger(c.TLSLog))
		}
		if c.Relay != nil {
			opts = append(opts, peertls.WithoutDialer())
		}
		addr := ""
		if socks.tcp != nil {
			addr = socks.tcp.Addr().String()
		}
		// TCP first: the client advertises its first listener's port.
		if _, err := peertls.Attach(cl, c.TLS, addr, append(opts, peertls.WithTransport("tcp", shape.listener(socks.tcp), tlsTCPDialer{shape}))...); err != nil {
			socks.Close()
			cl.Close()
			return nil, err
		}
		if socks.utp != nil {
			if _, err := peertls.Attach(cl, c.TLS, "", append(opts, peertls.WithTransport("udp", shape.listener(socks.utp), utpDialer{s: socks.utp, shape: shape}))...); err != nil {
				socks.Close()
				cl.Close()
				return nil, err
			}
		}
		attachRelay(cl, c.Relay, shape)
		return cl, nil
	}
	if socks.tcp != nil {
		go func() {
			<-cl.Closed()
			socks.Close()
		}()
		cl.AddListener(&tcpListener{Listener: shape.listener(socks.tcp), stall: stall, hold: cl.Closed()})
		if socks.utp != nil {
			cl.AddListener(&tcpListener{Listener: shape.listener(socks.utp), stall: stall, hold: cl.Closed()})
			if c.Relay == nil {
				cl.AddDialer(utpDialer{s: socks.utp, stall: stall, shape: shape})
			}
		}
	}
	if c.Relay == nil {
		cl.AddDialer(tcpDialer{stall: stall, shape: shape})
	}
	attachRelay(cl, c.Relay, shape)
	return cl, nil
}

// attachRelay makes r the client's only dialer and a second listener.
func attachRelay(cl *torrent.Client, r Relay, shape peerShape) {
	if r == nil {
		return
	}
	r = shapedRelay{Relay: r, s: shape}
	cl.AddDialer(r)
	cl.AddListener(r)
}

// TrustedCompletion reports every piece complete. The origin uses it for
// payload it published itself and has checked against the signed manifest,
// so that it seeds at once instead of re-hashing gigabytes on start.
type TrustedCompletion struct{}

// Get implements storage.PieceCompletion.
func (TrustedCompletion) Get(metainfo.PieceKey) (storage.Completion, error) {
	return storage.Completion{Complete: true, Ok: true}, nil
}

// Set implements storage.PieceCompletion; completion never changes.
func (TrustedCompletion) Set(metainfo.PieceKey, bool) error { return nil }

// Close implements storage.PieceCompletion.
func (TrustedCompletion) Close() error { return nil }

// SharedCompletion wraps a piece completion used by several storages so
// that closing one storage does not close it for the others; the owner
// closes the wrapped value itself.
type SharedCompletion struct{ storage.PieceCompletion }

// Close does nothing; see SharedCompletion.
func (SharedCompletion) Close() error { return nil }
