// Package catalogfeed is the origin's catalog change stream: it serves
// GET /v1/catalog/events (Server-Sent Events, internal/catalogevents) to
// watching agents, telling each the catalog's new timestamp version as
// soon as the origin has verified it. The event is only a hint: agents
// refresh and verify the signed catalog themselves, and poll at their
// refresh interval when the stream is away.
//
// The feed holds one number (the newest version) and, per watcher, a
// one-slot wake-up: a change is never queued, so a watcher costs the same
// whether it reads or not, and a watcher that does not take a write within
// the write timeout is dropped.
package catalogfeed

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/catalogevents"
)

// Feed fans catalog versions out to watchers. Create it with New.
type Feed struct {
	cfg Config

	mu       sync.Mutex
	version  int64
	watchers map[*watcher]struct{}
	perAddr  map[string]int
	closed   bool
	done     chan struct{}

	sent, dropped, refusedTotal, refusedAddr atomic.Int64
}

type watcher struct {
	wake chan struct{} // one slot: "the version moved"
}

// New returns a feed with cfg's defaults applied.
func New(cfg Config) *Feed {
	return &Feed{cfg: cfg.WithDefaults(), watchers: map[*watcher]struct{}{}, perAddr: map[string]int{}, done: make(chan struct{})}
}

// Config is the feed's configuration, defaults applied.
func (f *Feed) Config() Config { return f.cfg }

// Version is the newest version published, 0 before the first.
func (f *Feed) Version() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

// Publish records version v and wakes every watcher, if v is newer than
// what the feed had; it reports whether it was. Versions only go forward:
// the caller publishes versions it verified, and TUF versions never drop.
func (f *Feed) Publish(v int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v <= f.version || f.closed {
		return false
	}
	f.version = v
	for w := range f.watchers {
		select {
		case w.wake <- struct{}{}:
		default: // already woken: it will read the newest version
		}
	}
	return true
}

// Watchers is the number of open streams.
func (f *Feed) Watchers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

// Close ends every stream and refuses new ones (the origin is stopping).
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
}

var (
	errFull        = errors.New("too many catalog watchers")
	errAddressFull = errors.New("too many catalog watchers from this address")
	errClosed      = errors.New("origin stopping")
)

func (f *Feed) add(addr string) (*watcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return nil, errClosed
	case f.cfg.MaxWatchers > 0 && len(f.watchers) >= f.cfg.MaxWatchers:
		f.refusedTotal.Add(1)
		return nil, errFull
	case f.cfg.MaxWatchersPerAddress > 0 && f.perAddr[addr] >= f.cfg.MaxWatchersPerAddress:
		f.refusedAddr.Add(1)
		return nil, errAddressFull
	}
	w := &watcher{wake: make(chan struct{}, 1)}
	f.watchers[w] = struct{}{}
	f.perAddr[addr]++
	return w, nil
}

func (f *Feed) remove(w *watcher, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watchers, w)
	if f.perAddr[addr]--; f.perAddr[addr] <= 0 {
		delete(f.perAddr, addr)
	}
}

// ServeHTTP serves one watcher until it leaves, is too slow, or the feed
// closes. The caller checks who may watch (the origin: as for the
// catalog). Over the total cap the answer is 503, over the per-address
// cap 429, both with Retry-After.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	addr := clientAddress(r.RemoteAddr)
	wt, err := f.add(addr)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, errAddressFull) {
			code = http.StatusTooManyRequests
		}
		// Spread the retries: agents also poll meanwhile.
		w.Header().Set("Retry-After", strconv.Itoa(int(f.cfg.Heartbeat/time.Second)))
		http.Error(w, err.Error(), code)
		return
	}
	defer f.remove(wt, addr)
	rc := http.NewResponseController(w)
	// A server ReadTimeout would end the stream's context; the stream
	// reads nothing after the request.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", catalogevents.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// The client's last version (Last-Event-ID on a reconnect) is not
	// sent again; anything else is, so a reconnect catches up at once.
	last := int64(-1)
	if id, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && id >= 0 {
		last = id
	}
	write := func(fn func() error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(f.cfg.WriteTimeout))
		if err := fn(); err != nil {
			if isTimeout(err) {
				f.dropped.Add(1)
			}
			return false
		}
		if err := rc.Flush(); err != nil {
			if isTimeout(err) {
				f.dropped.Add(1)
			}
			return false
		}
		return true
	}
	if !write(func() error { return catalogevents.WriteRetry(w, defaultRetryMillis) }) {
		return
	}
	heartbeat := time.NewTicker(f.cfg.Heartbeat)
	defer heartbeat.Stop()
	var (
		lastAt  time.Time
		pending = true // send the current version on connect
		hold    *time.Timer
		holdC   <-chan time.Time
	)
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	for {
		if pending && holdC == nil {
			// Coalesce: at most one event per MinInterval per watcher.
			if wait := f.cfg.MinInterval - time.Since(lastAt); !lastAt.IsZero() && wait > 0 {
				hold = time.NewTimer(wait)
				holdC = hold.C
			} else {
				pending = false
				if v := f.Version(); v > 0 && v != last {
					if !write(func() error { return catalogevents.WriteChange(w, v) }) {
						return
					}
					f.sent.Add(1)
					last, lastAt = v, time.Now()
					heartbeat.Reset(f.cfg.Heartbeat)
				}
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case <-wt.wake:
			pending = true
		case <-holdC:
			holdC = nil
		case <-heartbeat.C:
			if !write(func() error { return catalogevents.WriteHeartbeat(w) }) {
				return
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientAddress is the per-address key: the IP without the port.
func clientAddress(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

var (
	descWatchers = prometheus.NewDesc("swarmship_origin_catalog_watchers", "Open catalog change streams (GET /v1/catalog/events).", nil, nil)
	descSent     = prometheus.NewDesc("swarmship_origin_catalog_events_total", "Catalog change events sent to watchers.", nil, nil)
	descDropped  = prometheus.NewDesc("swarmship_origin_catalog_watchers_dropped_total", "Watchers dropped for not taking a write within events.write_timeout.", nil, nil)
	descRefused  = prometheus.NewDesc("swarmship_origin_catalog_watchers_refused_total", "Catalog change streams refused by a cap (total: 503, address: 429).", []string{"cap"}, nil)
	descVersion  = prometheus.NewDesc("swarmship_origin_catalog_events_version", "Newest catalog timestamp version announced to watchers.", nil, nil)
)

// Collector exports the feed's gauges and counters.
func (f *Feed) Collector() prometheus.Collector { return collector{f} }

type collector struct{ f *Feed }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWatchers, descSent, descDropped, descRefused, descVersion} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	f := c.f
	f.mu.Lock()
	n, v := len(f.watchers), f.version
	f.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descWatchers, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(f.sent.Load()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(f.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(f.refusedTotal.Load()), "total")
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(f.refusedAddr.Load()), "address")
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(v))
}
