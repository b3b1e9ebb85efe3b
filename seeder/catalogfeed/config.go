package catalogfeed

import (
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Config is the events section of origin.yaml: the catalog change stream.
type Config struct {
	// Enabled serves the stream (default true); off, agents poll.
	Enabled *bool `yaml:"enabled"`
	// PollInterval is how often the origin reads the catalog's
	// timestamp.json to notice a change (one small GET).
	PollInterval time.Duration `yaml:"poll_interval"`
	// MinInterval is the least time between two events to one watcher:
	// changes in between are coalesced into one event (the newest).
	MinInterval time.Duration `yaml:"min_interval"`
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies keep it open and agents know the origin is there.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// WriteTimeout drops a watcher that does not take an event (or a
	// heartbeat) within it: slow clients are not buffered for.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxWatchers bounds open streams in total, MaxWatchersPerAddress
	// those from one client address (all agents behind one NAT or proxy
	// share one); -1: no cap.
	MaxWatchers           int `yaml:"max_watchers"`
	MaxWatchersPerAddress int `yaml:"max_watchers_per_address"`
}

const (
	defaultPollInterval   = time.Second
	defaultMinInterval    = time.Second
	defaultHeartbeat      = 25 * time.Second
	defaultWriteTimeout   = 10 * time.Second
	defaultMaxWatchers    = 20000
	defaultMaxPerAddress  = 256
	minHeartbeat          = time.Second
	maxHeartbeat          = time.Minute
	defaultRetryMillis    = 5000
	maxConfiguredInterval = time.Hour
)

// WithDefaults fills unset fields; a negative cap becomes 0 (none).
func (c Config) WithDefaults() Config {
	if c.Enabled == nil {
		on := true
		c.Enabled = &on
	}
	if c.PollInterval == 0 {
		c.PollInterval = defaultPollInterval
	}
	if c.MinInterval == 0 {
		c.MinInterval = defaultMinInterval
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = defaultHeartbeat
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	c.MaxWatchers = capOr(c.MaxWatchers, defaultMaxWatchers)
	c.MaxWatchersPerAddress = capOr(c.MaxWatchersPerAddress, defaultMaxPerAddress)
	return c
}

func capOr(v, def int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// On reports whether the stream is served.
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// Validate checks the section; errors name the field relative to it.
func (c Config) Validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"poll_interval", c.PollInterval}, {"min_interval", c.MinInterval}, {"heartbeat", c.Heartbeat}, {"write_timeout", c.WriteTimeout}} {
		if d.v < 0 {
			return fielderr.New(d.field, "must not be negative")
		}
		if d.v > maxConfiguredInterval {
			return fielderr.New(d.field, "%v: at most %v", d.v, maxConfiguredInterval)
		}
	}
	if c.PollInterval > 0 && c.PollInterval < 100*time.Millisecond {
		return fielderr.New("poll_interval", "must be at least 100ms")
	}
	if c.Heartbeat > 0 && (c.Heartbeat < minHeartbeat || c.Heartbeat > maxHeartbeat) {
		// Agents take a stream silent for two minutes for dead.
		return fielderr.New("heartbeat", "must be between %v and %v", minHeartbeat, maxHeartbeat)
	}
	return nil
}
