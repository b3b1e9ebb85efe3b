package mediaserve

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/release"
)

// Config is the agent's `media:` section: an HTTP server for the site's
// players. It is off unless Listen is set.
type Config struct {
	// Listen is host:port of the media server ("" or "off": none).
	Listen string `yaml:"listen"`
	// Releases are the release names served. Empty: the agent's
	// subscriptions whose manifest lists an HLS or DASH playlist (.m3u8,
	// .mpd), so that turning the server on does not also publish software
	// releases to the LAN.
	Releases []string `yaml:"releases"`
	// Allow are the client networks (CIDRs) served; others are refused at
	// accept. Default: loopback and the private ranges (RFC 1918, IPv6
	// ULA, link-local), where a site's players live: a media server
	// listening on every interface must not become an open one.
	Allow []string `yaml:"allow"`
	// AllowOrigins are the web origins whose pages may read media
	// cross-origin (CORS), e.g. a signage app's origin, or "*". Empty:
	// no CORS header; pages served by this server itself need none.
	AllowOrigins []string `yaml:"allow_origins"`
	// MaxConns bounds open connections in all (new ones are closed).
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerClient bounds one client address's open connections.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// HeaderTimeout bounds reading a request's headers.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SendTimeout ends a response whose client takes no bytes this long
	// (a player that stopped reading holds nothing for longer).
	SendTimeout time.Duration `yaml:"send_timeout"`
	// WaitTimeout is how long a request for a file still downloading
	// waits for its pieces (and its first hash, which goes on after)
	// before it is answered 503 (Retry-After).
	WaitTimeout time.Duration `yaml:"wait_timeout"`
}

// DefaultAllow are the client networks served when Allow is empty.
var DefaultAllow = []string{
	"127.0.0.0/8", "::1/128", // loopback: a player on the agent's own machine
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918
	"fc00::/7",                    // IPv6 unique local
	"169.254.0.0/16", "fe80::/10", // link-local
	"100.64.0.0/10", // carrier-grade NAT / shared space, common on store LANs behind a CGN
}

// Enabled reports whether the server listens.
func (c Config) Enabled() bool { return c.Listen != "" && c.Listen != "off" }

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if len(c.Allow) == 0 {
		c.Allow = DefaultAllow
	}
	if c.MaxConns == 0 {
		c.MaxConns = 512
	}
	if c.MaxConnsPerClient == 0 {
		// A browser opens up to 6 connections per host; a few players
		// behind one address (NAT, a PC with several screens) fit.
		c.MaxConnsPerClient = 32
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 30 * time.Second
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 20 * time.Second
	}
	return c
}

// Validate checks the section after defaults (errors name the field).
func (c Config) Validate() error {
	if c.Enabled() {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fielderr.New("listen", "%q: want host:port or off", c.Listen)
		}
	}
	for i, n := range c.Releases {
		if err := release.ValidateName("release", n); err != nil {
			return fielderr.New(fielderr.Index("releases", i), "%v", err)
		}
	}
	if _, err := c.prefixes(); err != nil {
		return err
	}
	for i, o := range c.AllowOrigins {
		if o != "*" && (!strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.Count(o, "/") != 2) {
			return fielderr.New(fielderr.Index("allow_origins", i), "%q: want an origin like https://player.example or *", o)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_conns", c.MaxConns}, {"max_conns_per_client", c.MaxConnsPerClient}} {
		if f.v < 1 {
			return fielderr.New(f.name, "must be at least 1")
		}
	}
	if c.MaxConnsPerClient > c.MaxConns {
		return fielderr.New("max_conns_per_client", "%d is more than max_conns %d", c.MaxConnsPerClient, c.MaxConns)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"header_timeout", c.HeaderTimeout}, {"idle_timeout", c.IdleTimeout}, {"send_timeout", c.SendTimeout}, {"wait_timeout", c.WaitTimeout}} {
		if f.v < 0 {
			return fielderr.New(f.name, "must not be negative")
		}
	}
	return nil
}

// prefixes parses Allow.
func (c Config) prefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.Allow))
	for i, s := range c.Allow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fielderr.New(fielderr.Index("allow", i), "%q is not a CIDR (e.g. 10.20.0.0/16)", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
