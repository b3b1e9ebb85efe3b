// Package btclient builds anacrolix/torrent clients with settings that
// avoid the library's known traps (see shared notes): a seeder that stalls
// after ~2 MiB with the default request-data allocation, Seed off by
// default, a fixed default port, a process-wide upload limiter, UPnP, and
// the library's web seed competing with peers as an equal source.
package btclient

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/internal/peertls"
)

// Peer ID prefixes (Azureus style) let swarmship processes recognise each
// other: agents share origin work only among agents, and the tracker keeps
// the origin seeder away from agents.
const (
	AgentPeerIDPrefix  = "-SS0100-"
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
	// keep the limiters to change limits at runtime (SetLimit).
	Upload, Download *rate.Limiter
	Logger           *slog.Logger
	// NoPeers accepts no peer connections and shares no peers (origin-only
	// mode for networks that may talk only to the origin).
	NoPeers bool
	// NoPEX turns off peer exchange (locality-restricted agents).
	NoPEX bool
	// TLS, if set (peertls.Load), makes every peer connection mutual TLS:
	// the plain TCP and uTP sockets and the DHT are off, and ListenHost and
	// ListenPort apply to the TLS listener. The listener closes with the
	// client.
	TLS *tls.Config
	// TLSLog gets a line for peers refused at the TLS handshake (a few a
	// second at most); nil: not logged.
	TLSLog *slog.Logger
	// TrackerTLS, if set, verifies https trackers with this config (root
	// CAs, client certificate); the library alone skips verification. Set
	// it only when the tracker URLs are https (see trackertls.go).
	TrackerTLS *tls.Config
}

// Unlimited returns a limiter that does not limit but can be throttled
// later with SetLimit. It has an explicit burst: a zero burst broke later
// SetLimit calls in a probe.
func Unlimited() *rate.Limiter { return rate.NewLimiter(rate.Inf, 64<<20) }

// New starts a client.
func New(c Config) (*torrent.Client, error) {
	cc := torrent.NewDefaultClientConfig()
	cc.Seed = true
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
	cc.MaxAllocPeerRequestDataPerConn = 64 << 20
	// The default 64 MiB budget of unverified bytes is spent first on the
	// rarest pieces, which nobody has early in a rollout (the origin shards
	// come over HTTP): for releases over 64 MiB, agents requested nothing
	// from peers for the first ~25 s in the branch testbed. Unbounded.
	cc.MaxUnverifiedBytes = 0
	cc.DataDir = c.DataDir
	// Every torrent gets its own storage; the default one must not leave a
	// piece-completion database in DataDir (or the working directory).
	cc.DefaultStorage = NewFileStorage(c.DataDir, storage.NewMapPieceCompletion())
	if c.NoPEX {
		cc.DisablePEX = true
	}
	if c.NoPeers {
		cc.AcceptPeerConnections = false
		cc.DisablePEX = true
	}
	if c.TLS != nil {
		cc.DisableTCP = true
		cc.DisableUTP = true
		cc.NoDHT = true
		// TLS already hides the handshake: skip MSE's key exchange.
		cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{}
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
	if c.Upload == nil {
		c.Upload = Unlimited()
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
	cl, err := torrent.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("start BitTorrent client: %w", err)
	}
	if c.TLS != nil {
		addr := net.JoinHostPort(host, strconv.Itoa(c.ListenPort))
		if c.NoPeers {
			addr = "" // accepts nothing: no listener at all
		}
		var opts []peertls.Option
		if c.TLSLog != nil {
			opts = append(opts, peertls.WithLogger(c.TLSLog))
		}
		if _, err := peertls.Attach(cl, c.TLS, addr, opts...); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return cl, nil
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
