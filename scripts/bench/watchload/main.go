// Command watchload simulates many agents watching an origin's catalog
// change stream (GET /v1/catalog/events) from one process, runs a command
// that changes the catalog (a promote), and reports how long after the
// command started each watcher was told: the figure is the time to the
// last watcher notified. Used by scripts/bench/watchers.
//
//	watchload -url http://127.0.0.1:7070 -n 10000 -- swarmship catalog promote ...
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmship/swarmship/internal/catalogevents"
)

// result is the JSON line printed at the end.
type result struct {
	Watchers      int     `json:"watchers"`
	Connected     int     `json:"connected"`
	ConnectSecs   float64 `json:"connect_seconds"`
	Baseline      int64   `json:"baseline_version"`
	Notified      int     `json:"notified"`
	PromoteSecs   float64 `json:"promote_command_seconds"`
	FirstSecs     float64 `json:"first_seconds"`
	P50Secs       float64 `json:"p50_seconds"`
	P99Secs       float64 `json:"p99_seconds"`
	LastSecs      float64 `json:"last_seconds"`
	Errors        int64   `json:"errors"`
	FirstErr      string  `json:"first_error,omitempty"`
	RefusedStatus int64   `json:"refused"`
}

func main() {
	base := flag.String("url", "", "origin base URL, e.g. http://127.0.0.1:7070")
	n := flag.Int("n", 1000, "watchers")
	dialRate := flag.Int("dial-rate", 2000, "new connections per second while connecting")
	timeout := flag.Duration("timeout", 60*time.Second, "give up waiting for notifications after this")
	flag.Parse()
	cmd := flag.Args()
	if *base == "" || len(cmd) == 0 {
		fmt.Fprintln(os.Stderr, "usage: watchload -url URL -n N -- COMMAND ARGS...")
		os.Exit(2)
	}
	u, err := url.Parse(*base)
	if err != nil || u.Host == "" {
		fmt.Fprintln(os.Stderr, "watchload: bad -url")
		os.Exit(2)
	}
	res, err := run(u.Host, *n, *dialRate, *timeout, cmd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchload:", err)
	}
	json.NewEncoder(os.Stdout).Encode(res)
	if err != nil || res.Notified < res.Watchers {
		os.Exit(1)
	}
}

type watcher struct {
	first   chan int64 // the version on connect (or the error)
	version atomic.Int64
	at      atomic.Int64 // unix ns when a version above the baseline arrived
}

func run(host string, n, dialRate int, timeout time.Duration, cmd []string) (result, error) {
	res := result{Watchers: n}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		errs     atomic.Int64
		refused  atomic.Int64
		errOnce  sync.Once
		firstErr string
		baseline atomic.Int64
		notified atomic.Int64
		all      = make(chan struct{})
	)
	baseline.Store(-1)
	fail := func(err error) {
		errs.Add(1)
		errOnce.Do(func() { firstErr = err.Error() })
	}
	ws := make([]*watcher, n)
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(max(dialRate, 1)))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range ws {
		<-tick.C
		w := &watcher{first: make(chan int64, 1)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.follow(ctx, host, &baseline, func() {
				if notified.Add(1) == int64(n) {
					close(all)
				}
			}, &refused)
			if err != nil && ctx.Err() == nil {
				fail(err)
				select {
				case w.first <- -1:
				default:
				}
			}
		}()
	}
	var versions []int64
	for _, w := range ws {
		select {
		case v := <-w.first:
			if v >= 0 {
				res.Connected++
				versions = append(versions, v)
			}
		case <-time.After(timeout):
			return res, errors.New("watchers did not connect in time")
		}
	}
	res.ConnectSecs = time.Since(start).Seconds()
	if res.Connected < n {
		res.Errors, res.FirstErr, res.RefusedStatus = errs.Load(), firstErr, refused.Load()
		return res, fmt.Errorf("%d of %d watchers connected", res.Connected, n)
	}
	res.Baseline = slices.Max(versions)
	baseline.Store(res.Baseline)
	// The baseline was stored after some watchers may have seen a newer
	// version already; none can have, since nothing changed yet.

	t0 := time.Now()
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return res, fmt.Errorf("change command: %w", err)
	}
	res.PromoteSecs = time.Since(t0).Seconds()
	select {
	case <-all:
	case <-time.After(timeout):
	}
	var lat []float64
	for _, w := range ws {
		if at := w.at.Load(); at != 0 {
			lat = append(lat, time.Unix(0, at).Sub(t0).Seconds())
		}
	}
	slices.Sort(lat)
	res.Notified = len(lat)
	if len(lat) > 0 {
		res.FirstSecs = lat[0]
		res.P50Secs = lat[len(lat)/2]
		res.P99Secs = lat[min(len(lat)-1, len(lat)*99/100)]
		res.LastSecs = lat[len(lat)-1]
	}
	cancel()
	wg.Wait()
	res.Errors, res.FirstErr, res.RefusedStatus = errs.Load(), firstErr, refused.Load()
	return res, nil
}

// follow opens one stream on a raw connection (one goroutine and small
// buffers per watcher, so that one process holds thousands) and reads it
// until ctx ends.
func (w *watcher) follow(ctx context.Context, host string, baseline *atomic.Int64, told func(), refused *atomic.Int64) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\n\r\n", catalogevents.Path, host, catalogevents.ContentType); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		refused.Add(1)
		return fmt.Errorf("status %s", resp.Status)
	}
	dec := catalogevents.NewDecoder(resp.Body)
	first := true
	for {
		ev, err := dec.Next()
		if err != nil {
			return err
		}
		v, err := catalogevents.Version(ev)
		if err != nil {
			continue
		}
		w.version.Store(v)
		if first {
			first = false
			w.first <- v
			continue
		}
		if b := baseline.Load(); b >= 0 && v > b && w.at.Load() == 0 {
			w.at.Store(time.Now().UnixNano())
			told()
		}
	}
}
