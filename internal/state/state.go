// Package state says where an origin keeps what several origins must
// share (swarms, gateway elections, agents' reports, catalog change
// notices): in its own memory (one origin, the embedded default) or in a
// Redis that any number of origins use together.
package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Config is the origin's state: section. The zero value keeps state in
// memory.
//
//	state:
//	  redis:
//	    url: redis://127.0.0.1:6379/0
//	    prefix: swarmship
type Config struct {
	Redis *RedisConfig `yaml:"redis"`
}

// RedisConfig names the Redis the origins share.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS.
	URL string `yaml:"url"`
	// Prefix starts every key, so that several deployments (or tests) can
	// share one Redis; default "swarmship".
	Prefix string `yaml:"prefix"`
	// Timeout bounds each Redis command (dial, read, write); default 2s.
	// An origin whose Redis is away answers with an error within it
	// rather than hanging its clients.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the connections per origin; default 10 per CPU (go-redis).
	PoolSize int `yaml:"pool_size"`
}

// DefaultPrefix starts every key when prefix is not set.
const DefaultPrefix = "swarmship"

// Shared reports whether the state lives in Redis.
func (c Config) Shared() bool { return c.Redis != nil }

// WithDefaults returns c with unset fields filled.
func (c Config) WithDefaults() Config {
	if c.Redis != nil {
		r := *c.Redis
		if r.Prefix == "" {
			r.Prefix = DefaultPrefix
		}
		if r.Timeout <= 0 {
			r.Timeout = 2 * time.Second
		}
		c.Redis = &r
	}
	return c
}

// Validate reports the first invalid field, named as in origin.yaml.
func (c Config) Validate() error {
	if c.Redis == nil {
		return nil
	}
	r := c.Redis
	if r.URL == "" {
		return fielderr.New("redis.url", "is required (redis://host:port/db)")
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return fielderr.New("redis.url", "%q is not a redis:// or rediss:// URL", redactURL(r.URL))
	}
	if _, err := redis.ParseURL(r.URL); err != nil {
		return fielderr.New("redis.url", "%v", err)
	}
	if strings.ContainsAny(r.Prefix, " \t\r\n{}") {
		return fielderr.New("redis.prefix", "must not contain spaces or braces")
	}
	if r.Timeout < 0 {
		return fielderr.New("redis.timeout", "must not be negative")
	}
	if r.PoolSize < 0 {
		return fielderr.New("redis.pool_size", "must not be negative")
	}
	return nil
}

// Redis is an open connection pool to the shared Redis with the key
// prefix every user of it must put first.
type Redis struct {
	Client *redis.Client
	Prefix string
}

// Key joins the prefix and parts with ':' ("swarmship:swarm:…").
func (r *Redis) Key(parts ...string) string {
	return r.Prefix + ":" + strings.Join(parts, ":")
}

// Close closes the pool.
func (r *Redis) Close() error { return r.Client.Close() }

// ErrUnavailable wraps every failure to reach the shared state, so that
// callers can tell "Redis is away" from a refusal.
var ErrUnavailable = errors.New("shared state unavailable")

// Open connects to the configured Redis (c must be valid, with
// defaults) and checks it answers within the timeout. It returns nil,
// nil when the state is kept in memory.
func Open(ctx context.Context, c Config) (*Redis, error) {
	if c.Redis == nil {
		return nil, nil
	}
	c = c.WithDefaults()
	opt, err := redis.ParseURL(c.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("state.redis.url: %w", err)
	}
	opt.DialTimeout = c.Redis.Timeout
	opt.ReadTimeout = c.Redis.Timeout
	opt.WriteTimeout = c.Redis.Timeout
	if c.Redis.PoolSize > 0 {
		opt.PoolSize = c.Redis.PoolSize
	}
	client := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, c.Redis.Timeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("%w: redis at %s: %w", ErrUnavailable, opt.Addr, err)
	}
	return &Redis{Client: client, Prefix: c.Redis.Prefix}, nil
}

// redactURL hides a password in a Redis URL for error messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
