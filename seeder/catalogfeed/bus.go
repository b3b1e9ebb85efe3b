package catalogfeed

import (
	"context"
	"sync"
)

// Bus carries catalog versions between origins that serve one catalog,
// so that the first origin to verify a change has every origin push it
// (Redis pub/sub when origins share Redis). Receivers treat a version as
// a reason to refresh, never as a fact: each origin announces only what
// its own TUF client verified.
type Bus interface {
	// Publish tells the other origins about version v.
	Publish(ctx context.Context, v int64) error
	// Subscribe calls fn for every version published, until ctx ends.
	Subscribe(ctx context.Context, fn func(v int64)) error
}

// MemoryBus is a Bus inside one process (origins in one test or demo).
type MemoryBus struct {
	mu   sync.Mutex
	subs map[*memorySub]struct{}
}

type memorySub struct{ ch chan int64 }

// Publish implements Bus. A subscriber that is behind gets the newest
// version only: versions are hints, and the newest covers the older.
func (b *MemoryBus) Publish(_ context.Context, v int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- v:
		default:
			select {
			case <-s.ch:
			default:
			}
			select {
			case s.ch <- v:
			default:
			}
		}
	}
	return nil
}

// Subscribe implements Bus.
func (b *MemoryBus) Subscribe(ctx context.Context, fn func(v int64)) error {
	s := &memorySub{ch: make(chan int64, 1)}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*memorySub]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case v := <-s.ch:
			fn(v)
		}
	}
}
