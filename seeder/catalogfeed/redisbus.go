package catalogfeed

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/swarmship/swarmship/internal/state"
)

// RedisBus is the Bus of origins that share a Redis (state.redis): a
// pub/sub channel, "<prefix>:catalog:events", carrying decimal versions.
// Pub/sub stores nothing, so a Redis restart loses no state; an origin
// that was cut off meanwhile still sees every change through its own poll.
type RedisBus struct {
	cfg state.Config

	mu     sync.Mutex
	r      *state.Redis
	closed bool
}

// NewRedisBus returns a bus over the Redis of cfg. It connects on first
// use and again after a failed start, so an origin starts while Redis is
// away and joins the bus when it returns.
func NewRedisBus(cfg state.Config) *RedisBus { return &RedisBus{cfg: cfg.WithDefaults()} }

func (b *RedisBus) conn(ctx context.Context) (*state.Redis, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("catalog events bus: closed")
	}
	if b.r == nil {
		r, err := state.Open(ctx, b.cfg)
		if err != nil {
			return nil, err
		}
		b.r = r
	}
	return b.r, nil
}

func (b *RedisBus) channel(r *state.Redis) string { return r.Key("catalog", "events") }

// Publish implements Bus.
func (b *RedisBus) Publish(ctx context.Context, v int64) error {
	r, err := b.conn(ctx)
	if err != nil {
		return err
	}
	if err := r.Client.Publish(ctx, b.channel(r), strconv.FormatInt(v, 10)).Err(); err != nil {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return nil
}

// Subscribe implements Bus: it calls fn for each well-formed version until
// ctx ends, reconnecting with back-off while Redis is away (go-redis
// re-subscribes by itself once connected).
func (b *RedisBus) Subscribe(ctx context.Context, fn func(v int64)) error {
	backoff := time.Second
	for {
		r, err := b.conn(ctx)
		if err == nil {
			backoff = time.Second
			err = b.receive(ctx, r, fn)
		}
		if ctx.Err() != nil {
			return nil
		}
		_ = err // the next attempt tells; the store poll covers the gap
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func (b *RedisBus) receive(ctx context.Context, r *state.Redis, fn func(v int64)) error {
	ps := r.Client.Subscribe(ctx, b.channel(r))
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("%w: subscription closed", state.ErrUnavailable)
			}
			// Anything but a plain version is not ours: ignored.
			if v, err := strconv.ParseInt(m.Payload, 10, 64); err == nil && v > 0 && len(m.Payload) <= 19 {
				fn(v)
			}
		}
	}
}

// Close closes the connection.
func (b *RedisBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.r != nil {
		return b.r.Close()
	}
	return nil
}
