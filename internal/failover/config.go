package failover

import (
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Config is the failover section of an agent's config: how long a source
// (catalog mirror, tracker, offload origin) may take to answer and how
// long one that failed is skipped.
type Config struct {
	// Timeout bounds each request until the source answers (a metadata
	// file: until it is read); default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffBase is how long a source is skipped after its first failure
	// (default 5s); each failure in a row doubles it up to BackoffMax
	// (default 5m). A random part of up to half is taken off, so agents
	// come back to a mirror spread out.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultPolicy.Base
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultPolicy.Max
	}
	return c
}

// Validate checks a config after WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.Timeout < 100*time.Millisecond:
		return fielderr.New("timeout", "must be at least 100ms")
	case c.BackoffBase < 100*time.Millisecond:
		return fielderr.New("backoff_base", "must be at least 100ms")
	case c.BackoffMax < c.BackoffBase:
		return fielderr.New("backoff_max", "must be at least backoff_base (%s)", c.BackoffBase)
	case c.BackoffMax > 24*time.Hour:
		return fielderr.New("backoff_max", "must be at most 24h")
	}
	return nil
}

// Policy is the back-off rule the config names.
func (c Config) Policy() Policy { return Policy{Base: c.BackoffBase, Max: c.BackoffMax} }
