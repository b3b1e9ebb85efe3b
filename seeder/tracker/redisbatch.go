package tracker

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// putBatcher sends announces' put scripts to Redis in pipelines: while one
// pipeline is on the wire, the announces that arrive queue up and go
// together in the next. Redis then reads and answers many scripts per
// system call instead of one, which is most of a small script's cost; an
// idle origin still sends each announce at once. The number of pipelines
// in flight is bounded by the workers.
type putBatcher struct {
	client *redis.Client
	calls  chan *putCall
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

type putCall struct {
	keys []string
	args []any
	res  []any
	err  error
	done chan struct{}
}

const (
	putWorkers  = 8   // pipelines in flight per origin
	maxPutBatch = 128 // scripts per pipeline
)

func newPutBatcher(client *redis.Client) *putBatcher {
	b := &putBatcher{client: client, calls: make(chan *putCall, putWorkers*maxPutBatch), stop: make(chan struct{})}
	for range putWorkers {
		b.wg.Add(1)
		go b.work()
	}
	return b
}

// close stops the workers; calls after it fail.
func (b *putBatcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

var errBatcherClosed = errors.New("tracker closed")

// run queues one put script and waits for its answer or for ctx.
func (b *putBatcher) run(ctx context.Context, keys []string, args ...any) ([]any, error) {
	c := &putCall{keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, errBatcherClosed
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err() // the worker still finishes the call
	}
}

func (b *putBatcher) work() {
	defer b.wg.Done()
	batch := make([]*putCall, 0, maxPutBatch)
	for {
		select {
		case c := <-b.calls:
			batch = append(batch[:0], c)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < maxPutBatch {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.send(batch)
		for _, c := range batch {
			close(c.done)
		}
		clear(batch)
	}
}

// send runs a batch in one pipeline. After a Redis restart the script is
// not cached (NOSCRIPT): it is loaded and the batch sent once more, which
// is safe because a script that failed with NOSCRIPT did not run.
func (b *putBatcher) send(batch []*putCall) {
	// Each command has the client's read/write timeouts; a batch is not
	// tied to any one request's context.
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		pipe := b.client.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, c := range batch {
			cmds[i] = putScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
		noScript := false
		for i, c := range batch {
			c.err = cmds[i].Err()
			if c.err == nil {
				c.res, c.err = cmds[i].Slice()
			} else if strings.HasPrefix(c.err.Error(), "NOSCRIPT") {
				noScript = true
			}
		}
		if !noScript || attempt > 0 {
			return
		}
		if err := putScript.Load(ctx, b.client).Err(); err != nil {
			return // the NOSCRIPT errors stand
		}
	}
}
