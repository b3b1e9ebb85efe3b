package btclient

import (
	"runtime"
	"sync"
	"time"
)

// DefaultServeBudget is the request data a client holds for all its peers
// together (see ServeBudget): 64 MiB, four connections' worth of the
// library's per-connection budget (1024 queued 16 KiB requests).
const DefaultServeBudget = 64 << 20

// How long a read for a peer waits for room before it goes ahead anyway,
// one block over the budget (an overdraft). Reads never fail for want of
// room: an anacrolix leecher does not ask a peer again after a reject
// until something else changes (v1.59.1 requesting.go), and rejecting
// stalled a reading peer for good in a test. Nor may they wait for ever:
// a connection closed while its request server waits here keeps its unsent
// blocks reachable through that goroutine, so closed connections could
// hold the whole budget while waiting for it (seen in a test). Going ahead
// breaks that cycle; the server then sees its connection closed and its
// blocks become garbage.
//
// Overdrafts after serveBudgetWait are limited to a quarter of the budget
// (a peer that reads just fast enough not to be dropped could otherwise
// collect a block a second); past that, a read waits serveBudgetEscape,
// by when every connection that held blocks without taking data has been
// dropped (WriteStall) and a peer that keeps its connection has taken more
// than a block.
const (
	serveBudgetWait   = time.Second
	serveBudgetEscape = WriteStall + 5*time.Second
)

// ServeBudget bounds, for a whole client whatever the number of its
// connections, the bytes read from storage to answer peer requests that
// are still in memory.
//
// anacrolix/torrent v1.59.1 reads each request's block into a fresh
// buffer when its per-connection reservation is granted and keeps it until
// the block is copied into the connection's write buffer; a peer that
// pipelines requests and never reads pins up to its per-connection budget
// (16 MiB here) for as long as it stays connected, and N such peers N
// times that. The per-connection budget cannot be lowered below the
// request queue without the seeder deadlock (shared notes), and the
// library has no client-wide budget, so the file storage takes one here:
// every read for a peer (the only reads that go through ReadAt; hashing
// uses WriteTo) waits for room, and the room comes back when the buffer
// is garbage: a runtime cleanup on it releases it. That is exactly the
// memory at stake, including buffers of closed connections, without
// knowing which connection a read is for. A reader that finds no room
// starts a garbage collection (with back-off) so that blocks already sent
// are counted out promptly.
//
// Waiting in ReadAt does not hold the client lock (it runs in the
// connection's request-server goroutine), and it is bounded (see
// serveBudgetWait). The bound is therefore Max + Max/4 of overdrafts,
// plus rare escapes of one block per connection every serveBudgetEscape.
type ServeBudget struct {
	max    int64
	wait   time.Duration // then overdraw, up to max/4
	escape time.Duration // then overdraw whatever the total

	mu         sync.Mutex
	used       int64
	changed    chan struct{} // closed and replaced when room comes back
	gcDelay    time.Duration // back-off between forced collections
	gcLast     time.Time
	gcBusy     bool
	waits      int64 // reads that had to wait
	overdrafts int64 // reads that went ahead without room
	escapes    int64 // overdrafts past max + max/4
}

// NewServeBudget returns a budget of max bytes (DefaultServeBudget when
// max <= 0).
func NewServeBudget(max int64) *ServeBudget {
	if max <= 0 {
		max = DefaultServeBudget
	}
	return &ServeBudget{max: max, wait: serveBudgetWait, escape: serveBudgetEscape, changed: make(chan struct{})}
}

// Max is the budget's size in bytes.
func (b *ServeBudget) Max() int64 { return b.max }

// ServeBudgetStats is a snapshot of a ServeBudget.
type ServeBudgetStats struct {
	InUse      int64 // bytes of peer blocks still in memory (over Max by overdrafts)
	Waits      int64 // reads that waited for room
	Overdrafts int64 // reads that went ahead without room
	Escapes    int64 // of which past Max + Max/4 (after serveBudgetEscape)
}

// Stats returns the budget's current use and counters.
func (b *ServeBudget) Stats() ServeBudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return ServeBudgetStats{InUse: b.used, Waits: b.waits, Overdrafts: b.overdrafts, Escapes: b.escapes}
}

// track charges buf to the budget, waiting up to b.wait for room, and
// arranges for the charge to be released when buf is garbage.
func (b *ServeBudget) track(buf []byte) {
	if len(buf) == 0 {
		return
	}
	n := int64(len(buf))
	b.acquire(n)
	runtime.AddCleanup(&buf[0], b.release, n)
}

func (b *ServeBudget) acquire(n int64) {
	var start time.Time
	for {
		b.mu.Lock()
		now := time.Now()
		waited := now.Sub(start)
		take := b.used+n <= b.max
		next := b.wait - waited
		if !take && !start.IsZero() {
			switch {
			case waited >= b.wait && b.used+n <= b.max+b.max/4:
				take = true
			case waited >= b.escape:
				take = true
				b.escapes++
			case waited >= b.wait:
				next = b.escape - waited
			}
			if take {
				b.overdrafts++
			}
		}
		if take {
			b.used += n
			b.mu.Unlock()
			return
		}
		if start.IsZero() {
			start = now
			next = b.wait
			b.waits++
		}
		ch := b.changed
		next = min(next, b.collectLocked(now))
		b.mu.Unlock()
		t := time.NewTimer(next)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// collectLocked starts a garbage collection unless one ran too recently,
// and returns when the caller should look again. The back-off doubles from
// 10 ms to 1 s while nothing comes back, so peers that hold the budget
// and never read cost at most one collection a second.
func (b *ServeBudget) collectLocked(now time.Time) time.Duration {
	if b.gcDelay == 0 {
		b.gcDelay = 10 * time.Millisecond
	}
	if due := b.gcLast.Add(b.gcDelay); !b.gcBusy && !now.Before(due) {
		b.gcBusy = true
		b.gcLast = now
		b.gcDelay = min(2*b.gcDelay, time.Second)
		go func() {
			runtime.GC()
			b.mu.Lock()
			b.gcBusy = false
			b.mu.Unlock()
		}()
	}
	return b.gcDelay
}

func (b *ServeBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.gcDelay = 0
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}
