package catalogfeed

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/swarmship/swarmship/internal/state"
)

// RedisBus is the Bus of origins that share a Redis (state.redis): a
// pub/sub channel, "<prefix>:catalog:events", carrying decimal versions.
// Pub/sub stores nothing, so a Redis restart loses no state; an origin
// that was cut off meanwhile still sees every change through its own poll.
type RedisBus struct {
	r *state.Redis
}

// NewRedisBus returns a bus over r, which the caller keeps open while
// the bus is used and closes after.
func NewRedisBus(r *state.Redis) *RedisBus { return &RedisBus{r: r} }

func (b *RedisBus) channel() string { return b.r.Key("catalog", "events") }

// Publish implements Bus.
func (b *RedisBus) Publish(ctx context.Context, v int64) error {
	if err := b.r.Client.Publish(ctx, b.channel(), strconv.FormatInt(v, 10)).Err(); err != nil {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return nil
}

// Subscribe implements Bus: it calls fn for each well-formed version until
// ctx ends, subscribing again with back-off while Redis is away.
func (b *RedisBus) Subscribe(ctx context.Context, fn func(v int64)) error {
	backoff := time.Second
	for {
		start := time.Now()
		_ = b.receive(ctx, fn) // the store poll covers the gap
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func (b *RedisBus) receive(ctx context.Context, fn func(v int64)) error {
	ps := b.r.Client.Subscribe(ctx, b.channel())
	defer ps.Close()
	// go-redis reconnects and re-subscribes a broken subscription itself;
	// the channel closes only with ps.
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
