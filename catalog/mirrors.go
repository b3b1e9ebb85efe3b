package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/failover"
)

// Mirrors is a read-only Store over several copies of one catalog (origins,
// S3 buckets, HTTP mirrors), each health-tracked: a read goes to the first
// healthy mirror and moves on to the next when one errors or does not
// answer in time; a mirror that failed is skipped for a back-off period.
//
// Nothing a mirror serves is trusted for being there: a Client over
// Mirrors checks metadata with TUF and targets against their signed hashes,
// and refreshes from one mirror at a time, so a mirror serving older
// (validly signed) metadata is refused and marked stale (see Client.Refresh).
type Mirrors struct {
	stores  []Store
	health  *failover.List
	timeout time.Duration
	now     func() time.Time
}

// MirrorOptions tunes Mirrors; the zero value uses the defaults.
type MirrorOptions struct {
	// Timeout bounds each request until the mirror answers (for a whole
	// metadata file: until it is read); default 10 s. Payload bodies are
	// bounded by the caller's context, not by it: a big range at a capped
	// rate takes longer.
	Timeout time.Duration
	Backoff failover.Policy
	Now     func() time.Time
}

// errNoAnswer is the cause of a request that hit the mirror timeout.
var errNoAnswer = errors.New("mirror did not answer in time")

// NewMirrors returns a Store over stores, preferred in that order.
func NewMirrors(stores []Store, opts MirrorOptions) *Mirrors {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = s.String()
	}
	return &Mirrors{stores: stores, health: failover.New(names, opts.Backoff), timeout: opts.Timeout, now: opts.Now}
}

// Health is the mirrors' health list (for status pages and tests).
func (m *Mirrors) Health() *failover.List { return m.health }

// Statuses returns each mirror's health, preferred first.
func (m *Mirrors) Statuses() []failover.Status { return m.health.Statuses(m.now()) }

// String names the mirror in use, or the first one.
func (m *Mirrors) String() string {
	for _, st := range m.Statuses() {
		if st.InUse {
			return st.Name
		}
	}
	return m.stores[0].String()
}

// attempt runs op on each mirror in health order until one succeeds. A
// missing key moves on without blaming the mirror (it may lag behind);
// other errors and timeouts start the mirror's back-off. done, when op
// succeeded, must be called by the caller once it no longer needs the
// attempt's context (a body being read).
//
// The timeout is for silence: op may call touch when bytes arrive.
func (m *Mirrors) attempt(ctx context.Context, op func(ctx context.Context, s Store, touch func()) error) (cancel func(), err error) {
	var first error
	for _, i := range m.health.Order(m.now()) {
		actx, acancel := context.WithCancelCause(ctx)
		timer := time.AfterFunc(m.timeout, func() { acancel(errNoAnswer) })
		err := op(actx, m.stores[i], func() { timer.Reset(m.timeout) })
		stopped := timer.Stop()
		if err == nil {
			m.health.Succeeded(i, m.now())
			if !stopped {
				// The answer came as the timer fired: its context is gone.
				acancel(nil)
				return func() {}, fmt.Errorf("%s: %w", m.stores[i], errNoAnswer)
			}
			return func() { acancel(nil) }, nil
		}
		timedOut := errors.Is(context.Cause(actx), errNoAnswer)
		acancel(nil)
		if ctx.Err() != nil {
			return nil, err
		}
		switch {
		case timedOut:
			err = fmt.Errorf("%s: %w", m.stores[i], errNoAnswer)
			m.health.Failed(i, m.now(), failover.Timeout, fmt.Sprintf("no answer for %s", m.timeout))
		case errors.Is(err, ErrNotFound):
		default:
			m.health.Failed(i, m.now(), failover.Error, shortErr(err))
		}
		if first == nil || (errors.Is(first, ErrNotFound) && !errors.Is(err, ErrNotFound)) {
			first = err
		}
	}
	if first == nil {
		first = errors.New("no catalog mirror configured")
	}
	return nil, first
}

// shortErr keeps status lines readable.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Get implements Store.
func (m *Mirrors) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return m.GetRange(ctx, key, 0, -1)
}

// GetRange implements Store; the timeout covers the answer, not the body.
func (m *Mirrors) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	cancel, err := m.attempt(ctx, func(ctx context.Context, s Store, _ func()) error {
		r, err := s.GetRange(ctx, key, offset, length)
		if err == nil {
			rc = r
		}
		return err
	})
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, err
	}
	return cancelOnClose{ReadCloser: rc, cancel: cancel}, nil
}

// Stat implements Store.
func (m *Mirrors) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	cancel, err := m.attempt(ctx, func(ctx context.Context, s Store, _ func()) error {
		var err error
		info, err = s.Stat(ctx, key)
		return err
	})
	if err == nil {
		cancel()
	}
	return info, err
}

// List implements Store.
func (m *Mirrors) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	cancel, err := m.attempt(ctx, func(ctx context.Context, s Store, _ func()) error {
		var err error
		out, err = s.List(ctx, prefix)
		return err
	})
	if err == nil {
		cancel()
	}
	return out, err
}

// Put refuses: catalogs are written at their source, never through mirrors.
func (m *Mirrors) Put(context.Context, string, io.Reader, int64) error {
	return fmt.Errorf("catalog mirrors: %w", ErrReadOnly)
}

// Delete refuses, as Put.
func (m *Mirrors) Delete(context.Context, string) error {
	return fmt.Errorf("catalog mirrors: %w", ErrReadOnly)
}

// refreshMirrors is Client.Refresh over mirrors: the whole TUF update runs
// against one mirror at a time, so that each mirror is judged on what it
// serves. Everything is verified as usual; a mirror whose metadata is
// older than what is trusted (rollback, or expired: a mirror that stopped
// syncing) is marked stale, one that does not answer in time timed out.
func (c *Client) refreshMirrors(ctx context.Context, m *Mirrors) error {
	var errs []string
	var last error
	for _, i := range m.health.Order(m.now()) {
		s := m.stores[i]
		timedOut, err := c.refreshFrom(ctx, s, m.timeout)
		if err == nil {
			m.health.Succeeded(i, m.now())
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		var expired *metadata.ErrExpiredMetadata
		var older *metadata.ErrBadVersionNumber
		switch {
		case timedOut:
			m.health.Failed(i, m.now(), failover.Timeout, fmt.Sprintf("no answer for %s", m.timeout))
		case errors.As(err, &older) || errors.As(err, &expired):
			m.health.Failed(i, m.now(), failover.Stale, shortErr(err))
		default:
			m.health.Failed(i, m.now(), failover.Error, shortErr(err))
		}
		errs = append(errs, err.Error())
		last = err
	}
	if last == nil {
		return errors.New("no catalog mirror configured")
	}
	if len(errs) == 1 {
		return last
	}
	return fmt.Errorf("every catalog mirror failed: %s: %w", strings.Join(errs, "; "), last)
}

// watchedStore calls touch whenever a body it opened yields bytes, so that
// a slow but live transfer is not taken for a hung mirror.
type watchedStore struct {
	Store
	touch func()
}

func (w watchedStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := w.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	w.touch()
	return struct {
		io.Reader
		io.Closer
	}{progressReader{rc, w.touch}, rc}, nil
}
