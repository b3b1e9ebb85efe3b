package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/catalogevents"
	"github.com/swarmship/swarmship/policy"
)

// Catalog watch modes (catalog.watch).
const (
	WatchAuto = "auto" // follow the origin's change stream where offered
	WatchOff  = "off"  // poll at refresh_interval only
)

// Timings of the catalog watch. The origin's heartbeat (25 s by default,
// at most 60 s) keeps a healthy stream well inside watchIdle.
const (
	watchIdle       = 2 * time.Minute  // a stream silent this long is dead
	watchConnect    = 30 * time.Second // for the answer's headers
	watchBackoffMin = time.Second      // after a lost stream
	watchBackoffMax = 2 * time.Minute  // cap, with jitter
	watchNotOffered = 10 * time.Minute // re-probe an origin without the stream
	watchStable     = time.Minute      // a stream up this long resets the back-off
	// hintGap is the least time between two refreshes a stream causes: a
	// hostile origin sending events nonstop costs a refresh a second.
	hintGap = time.Second
)

// watchBases are the catalog locations whose origin may offer the change
// stream, in the order the agent tries them: the http(s) mirrors, in the
// configured order. The first that offers the stream is followed; one that
// does not (a plain HTTP mirror, S3) is skipped.
func (c CatalogConfig) watchBases() []string {
	if c.Watch == WatchOff {
		return nil
	}
	var out []string
	for _, u := range c.Mirrors() {
		if l := strings.ToLower(u); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			out = append(out, u)
		}
	}
	return out
}

// eventsURL is where the origin serving the catalog at base offers the
// stream (the catalog is served at the origin's root, or under a proxy's
// prefix: the stream is under the same prefix).
func eventsURL(base string) string {
	return strings.TrimSuffix(base, "/") + catalogevents.Path
}

// errIdle ends a stream that sent nothing, not even a heartbeat, for
// watchIdle (a half-open connection, a proxy that buffers).
var errIdle = fmt.Errorf("stream silent for %v", watchIdle)

// errNoAnswer ends a request the origin did not answer in watchConnect.
var errNoAnswer = errors.New("no answer in time")

// errNotOffered means the origin answered but serves no stream there.
var errNotOffered = errors.New("catalog change stream not offered")

// catalogWatch follows the first origin that offers the stream and pokes
// the agent's refresh on every new version. It never reads the catalog
// itself: an event is a hint, the refresh verifies.
type catalogWatch struct {
	bases  []string
	client *http.Client
	hint   func()
	log    *slog.Logger
	now    func() time.Time
	// connectTimeout passes over a mirror that does not answer (watchConnect).
	connectTimeout time.Duration

	mu    sync.Mutex
	state string // for status and logs: "following URL", "not offered", ...
	last  int64  // last version seen (Last-Event-ID on reconnect)

	following atomic.Bool  // a stream is open now
	hints     atomic.Int64 // refreshes the stream caused
}

// newCatalogWatch prepares the agent's watch; nil when there is none to
// follow (watch off, no http(s) catalog, offline mode).
func (a *Agent) newCatalogWatch() *catalogWatch {
	bases := a.cfg.Catalog.watchBases()
	if len(bases) == 0 || a.cfg.Mode == policy.ModeOffline {
		return nil
	}
	return &catalogWatch{
		bases:  bases,
		client: watchClient(newBearerTransports(a.token, bases, a.originHTTP)),
		hint:   a.catalogHint,
		log:    a.log,
		now:    time.Now,
		state:  "connecting",
		last:   -1,

		connectTimeout: watchConnect,
	}
}

// watchClient has no overall timeout (the stream is long-lived; watchIdle
// ends a silent one) and follows no redirect: an origin offers the stream
// itself or not at all.
func watchClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// startCatalogWatch runs the watch until ctx ends; wait returns once it has.
func (a *Agent) startCatalogWatch(ctx context.Context) (wait func()) {
	if a.watch == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.watch.run(ctx)
	}()
	return func() { <-done }
}

// CatalogWatch says what the catalog watch is doing ("following URL",
// "not offered; ...", "reconnecting ..."), "" when there is none.
func (a *Agent) CatalogWatch() string { return a.watch.State() }

// catalogHint asks the daemon loop for a catalog refresh now.
func (a *Agent) catalogHint() {
	select {
	case a.hints <- struct{}{}:
	default:
	}
}

// State says what the watch is doing, "" when there is none.
func (w *catalogWatch) State() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

func (w *catalogWatch) setState(s string) {
	w.mu.Lock()
	w.state = s
	w.mu.Unlock()
}

func (w *catalogWatch) run(ctx context.Context) {
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		// The first mirror whose origin serves the stream is followed; a
		// lost stream starts over from the first, so the preferred origin
		// is taken back as soon as it returns.
		var err error
		established, down := false, false
		for _, base := range w.bases {
			var up time.Duration
			up, established, err = w.follow(ctx, eventsURL(base))
			if ctx.Err() != nil {
				return
			}
			if established {
				if up >= watchStable {
					backoff = watchBackoffMin
				}
				break
			}
			if !errors.Is(err, errNotOffered) {
				down = true // unreachable or busy: worth a sooner retry
			}
		}
		pause := backoff
		if !established && !down {
			pause = watchNotOffered
			w.setState("not offered; polling every refresh_interval")
		} else {
			w.setState(fmt.Sprintf("reconnecting after %v: %v", pause.Round(time.Second), err))
			backoff = min(backoff*2, watchBackoffMax)
		}
		var retry *retryAfter
		if errors.As(err, &retry) && retry.d > pause {
			pause = min(retry.d, watchNotOffered)
		}
		// ±20% so that a fleet that lost one origin does not come back at
		// the same instant.
		pause = time.Duration(float64(pause) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// retryAfter is a refusal with the origin's Retry-After.
type retryAfter struct {
	status string
	d      time.Duration
}

func (r *retryAfter) Error() string { return "origin busy: " + r.status }

// follow reads one stream until it ends; it returns whether the stream was
// established and for how long it was up.
func (w *catalogWatch) follow(ctx context.Context, url string) (time.Duration, bool, error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, errNotOffered
	}
	req.Header.Set("Accept", catalogevents.ContentType)
	w.mu.Lock()
	if w.last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(w.last, 10))
	}
	w.mu.Unlock()
	// A mirror that hangs before answering is passed over.
	noAnswer := time.AfterFunc(w.connectTimeout, func() { cancel(errNoAnswer) })
	resp, err := w.client.Do(req)
	noAnswer.Stop()
	if err != nil {
		if context.Cause(ctx) == errNoAnswer {
			err = errNoAnswer
		}
		return 0, false, err
	}
	defer resp.Body.Close()
	// From here every read, an error body's too, is under the watchdog.
	idle := time.AfterFunc(watchIdle, func() { cancel(errIdle) })
	defer idle.Stop()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return 0, false, &retryAfter{status: resp.Status, d: time.Duration(max(s, 0)) * time.Second}
	case resp.StatusCode != http.StatusOK:
		// 404 (an origin without the stream, a plain mirror), 401/403 (a
		// token that does not cover it): poll instead.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return 0, false, fmt.Errorf("%w at %s: %s", errNotOffered, url, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != catalogevents.ContentType {
		return 0, false, fmt.Errorf("%w at %s: content type %q", errNotOffered, url, resp.Header.Get("Content-Type"))
	}
	start := w.now()
	w.following.Store(true)
	defer w.following.Store(false)
	w.setState("following " + url)
	w.log.Info("following the catalog change stream", "url", url)
	d := catalogevents.NewDecoder(resp.Body)
	d.OnComment = func() { idle.Reset(watchIdle) }
	var lastHint time.Time
	for {
		ev, err := d.Next()
		if err != nil {
			up := w.now().Sub(start)
			if parent.Err() != nil {
				return up, true, err // the agent is stopping
			}
			if context.Cause(ctx) == errIdle {
				err = errIdle
			}
			w.log.Warn("catalog change stream lost; polling meanwhile", "url", url, "after", up.Round(time.Second), "err", err)
			return up, true, err
		}
		idle.Reset(watchIdle)
		v, err := catalogevents.Version(ev)
		if err != nil {
			continue // another event type: not ours to act on
		}
		w.mu.Lock()
		news := v != w.last
		w.last = v
		w.mu.Unlock()
		if !news {
			continue
		}
		if gap := hintGap - w.now().Sub(lastHint); gap > 0 {
			select {
			case <-ctx.Done():
				continue // Next fails and reports
			case <-time.After(gap):
			}
		}
		lastHint = w.now()
		w.hints.Add(1)
		w.hint()
	}
}

var (
	descWatching = prometheus.NewDesc("swarmship_agent_catalog_watch_following",
		"1 while the agent follows the origin's catalog change stream, else 0 (it polls at refresh_interval).", nil, nil)
	descHints = prometheus.NewDesc("swarmship_agent_catalog_change_hints_total",
		"Catalog refreshes started by a change event from the origin's stream.", nil, nil)
)

// watchCollector exports the catalog watch (zeros when there is none).
type watchCollector struct{ a *Agent }

func (c watchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWatching
	ch <- descHints
}

func (c watchCollector) Collect(ch chan<- prometheus.Metric) {
	following, hints := 0.0, 0.0
	if w := c.a.watch; w != nil {
		if w.following.Load() {
			following = 1
		}
		hints = float64(w.hints.Load())
	}
	ch <- prometheus.MustNewConstMetric(descWatching, prometheus.GaugeValue, following)
	ch <- prometheus.MustNewConstMetric(descHints, prometheus.CounterValue, hints)
}
