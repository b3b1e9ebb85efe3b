package relay

import (
	"time"

	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/fielderr"
)

// Modes of Config.Mode.
const (
	ModeOff = "off" // the default: /relay/* answers 404
	ModeOn  = "on"
)

// Config is the origin's relay section. Zero values mean the defaults.
type Config struct {
	// Mode "on" serves the relay; "off" (default) does not: relaying
	// costs the origin twice the bytes it carries, so it is opted into.
	Mode string `yaml:"mode"`
	// MaxBytesPerDay caps what the relay carries per tenant and UTC day
	// (both directions together); beyond it new connections are refused
	// and running ones are cut. Default 50 GiB.
	MaxBytesPerDay bytesize.Size `yaml:"max_bytes_per_day"`
	// MaxSessions caps relayed connections (and those being set up) in
	// all; default 4096.
	MaxSessions int `yaml:"max_sessions"`
	// MaxControls caps agents registered (control connections); default 10000.
	MaxControls int `yaml:"max_controls"`
	// MaxSessionsPerTenant and MaxControlsPerTenant cap one tenant's
	// share of MaxSessions and MaxControls, so that one tenant cannot
	// make the relay busy for the others; default a quarter of each.
	MaxSessionsPerTenant int `yaml:"max_sessions_per_tenant"`
	MaxControlsPerTenant int `yaml:"max_controls_per_tenant"`
	// MaxConnsPerToken caps one credential's connections of every kind
	// (control, dialled and accepted); default 512: a site token is
	// shared by the site's agents, each holding a control connection
	// and both ends of its relayed peers. Without tokens the credential
	// is the tenant and site.
	MaxConnsPerToken int `yaml:"max_conns_per_token"`
	// IdleTimeout closes a relayed connection with no byte either way for
	// this long; default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ConnectTimeout bounds how long a dial waits for the called agent
	// to answer; default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Defaults.
const (
	DefaultMaxBytesPerDay   = 50 << 30
	DefaultMaxSessions      = 4096
	DefaultMaxControls      = 10000
	DefaultMaxConnsPerToken = 512
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultConnectTimeout   = 10 * time.Second
)

// On reports whether the relay is served.
func (c Config) On() bool { return c.Mode == ModeOn }

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeOff
	}
	if c.MaxBytesPerDay == 0 {
		c.MaxBytesPerDay = DefaultMaxBytesPerDay
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxControls == 0 {
		c.MaxControls = DefaultMaxControls
	}
	if c.MaxSessionsPerTenant == 0 {
		c.MaxSessionsPerTenant = max(c.MaxSessions/4, 1)
	}
	if c.MaxControlsPerTenant == 0 {
		c.MaxControlsPerTenant = max(c.MaxControls/4, 1)
	}
	if c.MaxConnsPerToken == 0 {
		c.MaxConnsPerToken = DefaultMaxConnsPerToken
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	return c
}

// Validate checks c after WithDefaults; errors name the field.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeOn, ModeOff, "":
	default:
		return fielderr.New("mode", "%q: want on or off", c.Mode)
	}
	switch {
	case c.MaxBytesPerDay < 0:
		return fielderr.New("max_bytes_per_day", "must not be negative")
	case c.MaxSessions < 0:
		return fielderr.New("max_sessions", "must not be negative")
	case c.MaxControls < 0:
		return fielderr.New("max_controls", "must not be negative")
	case c.MaxSessionsPerTenant < 0:
		return fielderr.New("max_sessions_per_tenant", "must not be negative")
	case c.MaxControlsPerTenant < 0:
		return fielderr.New("max_controls_per_tenant", "must not be negative")
	case c.MaxConnsPerToken < 0:
		return fielderr.New("max_conns_per_token", "must not be negative")
	case c.IdleTimeout < 0 || (c.IdleTimeout > 0 && c.IdleTimeout < time.Second):
		return fielderr.New("idle_timeout", "must be at least 1s")
	case c.ConnectTimeout < 0 || (c.ConnectTimeout > 0 && c.ConnectTimeout < 100*time.Millisecond):
		return fielderr.New("connect_timeout", "must be at least 100ms")
	}
	return nil
}
