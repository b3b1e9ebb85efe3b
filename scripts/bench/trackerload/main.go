// Command trackerload is a load generator for scripts/bench/tracker: it
// simulates many swarmship agents announcing to an HTTP tracker and reports
// announces per second and latency percentiles.
//
// N agents (-agents) are spread over M swarms (-swarms), sites and regions.
// Each agent has its own peer_id, port, site, region and left, and announces
// with the parameters a real agent sends (info_hash, peer_id, port, uploaded,
// downloaded, left, compact, event, numwant, plus tenant/site/region/role from
// its announce URL). The first announce of every agent carries
// event=started (during the warm-up, which is not measured); later ones none.
//
// Requests go over a pool of keep-alive HTTP/1.1 connections, one per worker
// (-concurrency). With -rate 0 (default) the workers send
// as fast as answers come back (closed loop: the tracker's capacity). With
// -rate R, announces are scheduled at R per second and latency is measured
// from the scheduled time, so a stalled tracker cannot hide queueing
// (no coordinated omission).
//
// Output: one JSON object on stdout.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type agent struct {
	started  string // query for the first announce (event=started)
	periodic string // query for later announces
}

type result struct {
	URL         string  `json:"url"`
	Agents      int     `json:"agents"`
	Swarms      int     `json:"swarms"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"offered_rate"` // 0: closed loop
	Seconds     float64 `json:"seconds"`
	Announces   int64   `json:"announces"`
	Errors      int64   `json:"errors"`
	Failures    int64   `json:"failures"` // 200 with "failure reason"
	PerSecond   float64 `json:"announces_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	// Open loop: latency from the moment the request was actually written,
	// which leaves out time the generator itself was late.
	SendP50ms  float64 `json:"send_p50_ms,omitempty"`
	SendP99ms  float64 `json:"send_p99_ms,omitempty"`
	MaxMs      float64 `json:"max_ms"`
	MeanPeers  float64 `json:"mean_peers"`
	PacerLagMs float64 `json:"pacer_max_lag_ms,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

func main() {
	var (
		target      = flag.String("url", "http://127.0.0.1:7070/announce", "tracker announce URL")
		nAgents     = flag.Int("agents", 5000, "simulated agents")
		nSwarms     = flag.Int("swarms", 50, "swarms (infohashes) the agents are spread over")
		nSites      = flag.Int("sites", 500, "sites the agents are spread over")
		nRegions    = flag.Int("regions", 4, "regions the sites are spread over")
		tenant      = flag.String("tenant", "acme", "tenant of every agent")
		token       = flag.String("token", "", "token query parameter, if the tracker wants one")
		seeders     = flag.Float64("seeders", 0.5, "fraction of agents that announce left=0")
		numWant     = flag.Int("numwant", 50, "numwant sent by each agent")
		locality    = flag.String("locality", "gateway", "locality sent by each agent (agents default to gateway); empty: none")
		concurrency = flag.Int("concurrency", 32, "workers, each with its own keep-alive connection")
		duration    = flag.Duration("d", 15*time.Second, "measured duration")
		warmup      = flag.Duration("warmup", 2*time.Second, "unmeasured warm-up (every agent announces started first)")
		rate        = flag.Float64("rate", 0, "offered announces per second (0: closed loop, as fast as answered)")
	)
	flag.Parse()
	// The generator's own GC pauses would show up as tracker latency (and,
	// in the open loop, as a late pacer): collect rarely.
	debug.SetGCPercent(800)
	if *nAgents < 1 || *nSwarms < 1 || *nSites < 1 || *nRegions < 1 || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "trackerload: counts must be positive")
		os.Exit(2)
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fmt.Fprintf(os.Stderr, "trackerload: -url %q: want http://host:port/path\n", *target)
		os.Exit(2)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	// One keep-alive connection per worker, kept across both phases.
	pool := make([]*conn, *concurrency)
	for i := range pool {
		pool[i] = &conn{addr: addr, host: u.Host}
	}
	agents := makeAgents(u.EscapedPath(), *nAgents, *nSwarms, *nSites, *nRegions, *tenant, *token, *locality, *seeders, *numWant)

	// Warm-up: every agent announces "started" once (spread over the
	// workers), then periodic announces until the warm-up time is over.
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *warmup)
	run(ctx, pool, agents, &next, 0, true, nil)
	cancel()

	// Measured phase.
	rec := &recorder{}
	ctx, cancel = context.WithTimeout(context.Background(), *duration)
	start := time.Now()
	run(ctx, pool, agents, &next, *rate, false, rec)
	elapsed := time.Since(start).Seconds()
	cancel()

	res := result{
		URL: *target, Agents: *nAgents, Swarms: *nSwarms, Concurrency: *concurrency,
		Rate: *rate, Seconds: elapsed,
		Announces: int64(len(rec.lat)), Errors: rec.errors.Load(), Failures: rec.failures.Load(),
	}
	res.PerSecond = float64(res.Announces) / elapsed
	if len(rec.lat) > 0 {
		slices.Sort(rec.lat)
		q := func(p float64) float64 {
			i := int(p * float64(len(rec.lat)-1))
			return float64(rec.lat[i]) / 1e6
		}
		res.P50ms, res.P90ms, res.P99ms, res.P999ms = q(0.50), q(0.90), q(0.99), q(0.999)
		res.MaxMs = float64(rec.lat[len(rec.lat)-1]) / 1e6
		if len(rec.sendLat) > 0 {
			slices.Sort(rec.sendLat)
			res.SendP50ms = float64(rec.sendLat[len(rec.sendLat)/2]) / 1e6
			res.SendP99ms = float64(rec.sendLat[int(0.99*float64(len(rec.sendLat)-1))]) / 1e6
		}
		res.MeanPeers = float64(rec.peers.Load()) / float64(len(rec.lat))
	}
	res.PacerLagMs = float64(rec.maxLag.Load()) / 1e6
	if e := rec.firstErr.Load(); e != nil {
		res.FirstError = *e
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
	if res.Announces == 0 || res.Errors+res.Failures > res.Announces/100 {
		os.Exit(1)
	}
}

// makeAgents builds every agent's two announce URLs up front, so the
// generator spends its CPU on sending, not on formatting.
func makeAgents(path string, n, swarms, sites, regions int, tenant, token, locality string, seeders float64, numWant int) []agent {
	hashes := make([][20]byte, swarms)
	for i := range hashes {
		rand.Read(hashes[i][:])
	}
	out := make([]agent, n)
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := range out {
		var id [20]byte
		copy(id[:], "-SS0100-")
		rand.Read(id[8:])
		for j := 8; j < 20; j++ {
			id[j] = alnum[int(id[j])%len(alnum)]
		}
		site := i % sites
		left := int64(1 << 30)
		if float64(i%1000) < seeders*1000 {
			left = 0
		}
		q := url.Values{}
		q.Set("info_hash", string(hashes[i%swarms][:]))
		q.Set("peer_id", string(id[:]))
		q.Set("port", strconv.Itoa(10000+i%50000))
		q.Set("uploaded", "0")
		q.Set("downloaded", strconv.FormatInt((1<<30)-left, 10))
		q.Set("left", strconv.FormatInt(left, 10))
		q.Set("compact", "1")
		q.Set("numwant", strconv.Itoa(numWant))
		q.Set("key", fmt.Sprintf("%08x", binary.LittleEndian.Uint32(id[8:12])))
		q.Set("tenant", tenant)
		q.Set("site", "site-"+strconv.Itoa(site))
		q.Set("region", "region-"+strconv.Itoa(site%regions))
		q.Set("role", "agent")
		if locality != "" {
			q.Set("locality", locality)
		}
		if token != "" {
			q.Set("token", token)
		}
		periodic := path + "?" + q.Encode()
		q.Set("event", "started")
		out[i] = agent{started: path + "?" + q.Encode(), periodic: periodic}
	}
	return out
}

type recorder struct {
	mu       sync.Mutex
	lat      []int64 // nanoseconds; open loop: from the scheduled send time
	sendLat  []int64 // open loop only: from the actual send time
	errors   atomic.Int64
	failures atomic.Int64
	peers    atomic.Int64
	firstErr atomic.Pointer[string]
	maxLag   atomic.Int64 // open loop: how late the pacer handed out a send time
}

func (r *recorder) fail(err error) {
	r.errors.Add(1)
	s := err.Error()
	r.firstErr.CompareAndSwap(nil, &s)
}

// run sends announces until ctx ends. Agents take turns in order (a shared
// counter), so every agent announces about equally often. With rate > 0 a
// pacer hands out send times and latency counts from them.
func run(ctx context.Context, pool []*conn, agents []agent, next *atomic.Int64, rate float64, warm bool, rec *recorder) {
	var ticks chan time.Time
	if rate > 0 {
		ticks = make(chan time.Time, len(pool)*4)
		go func() {
			defer close(ticks)
			interval := time.Duration(float64(time.Second) / rate)
			t0 := time.Now()
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for i := int64(0); ; i++ {
				at := t0.Add(time.Duration(i) * interval)
				// Sleep only when well ahead: short sleeps overshoot, and
				// the schedule is absolute, so being late is caught up.
				if d := time.Until(at); d > 200*time.Microsecond {
					timer.Reset(d)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				if rec != nil {
					if lag := time.Since(at); lag > 0 {
						rec.maxLag.Store(max(rec.maxLag.Load(), lag.Nanoseconds()))
					}
				}
				select {
				case <-ctx.Done():
					return
				case ticks <- at:
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for _, c := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			var lat, sendLat []int64
			for ctx.Err() == nil {
				var sched time.Time
				if ticks != nil {
					t, ok := <-ticks
					if !ok {
						break
					}
					sched = t
				}
				i := next.Add(1) - 1
				a := &agents[int(i%int64(len(agents)))]
				u := a.periodic
				if warm && i < int64(len(agents)) {
					u = a.started
				}
				sent := time.Now()
				t0 := sent
				if ticks != nil {
					t0 = sched
				}
				var err error
				buf, err = c.announce(ctx, u, buf[:0])
				d := time.Since(t0)
				ds := time.Since(sent)
				if rec == nil {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the end of the run: not an error
					}
					rec.fail(err)
					continue
				}
				if n, ferr := peersInAnswer(buf); ferr != nil {
					rec.failures.Add(1)
					s := ferr.Error()
					rec.firstErr.CompareAndSwap(nil, &s)
				} else {
					rec.peers.Add(int64(n))
				}
				lat = append(lat, d.Nanoseconds())
				if ticks != nil {
					sendLat = append(sendLat, ds.Nanoseconds())
				}
			}
			if rec != nil {
				rec.mu.Lock()
				rec.lat = append(rec.lat, lat...)
				rec.sendLat = append(rec.sendLat, sendLat...)
				rec.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// conn is one keep-alive HTTP/1.1 connection. The generator speaks HTTP
// itself (a request line, Host, and a response parser for Content-Length and
// chunked bodies) rather than through net/http's client, which costs about
// as much CPU per request as the server it measures and would make the
// generator's core the bottleneck.
type conn struct {
	addr string
	host string
	c    net.Conn
	r    *bufio.Reader
	req  []byte
}

func (c *conn) announce(ctx context.Context, target string, buf []byte) ([]byte, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return buf, err
		}
		c.c, c.r = nc, bufio.NewReaderSize(nc, 8192)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.c.SetDeadline(dl.Add(10 * time.Second))
	}
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, target...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nUser-Agent: trackerload\r\n\r\n"...)
	buf, err := c.roundTrip(buf)
	if err != nil {
		c.c.Close()
		c.c = nil
	}
	return buf, err
}

func (c *conn) roundTrip(buf []byte) ([]byte, error) {
	if _, err := c.c.Write(c.req); err != nil {
		return buf, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return buf, err
	}
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return buf, fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	length, chunked, closeConn := -1, false, false
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return buf, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closeConn = bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			l, err := c.r.ReadSlice('\n')
			if err != nil {
				return buf, err
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 32)
			if err != nil {
				return buf, fmt.Errorf("bad chunk size %q", l)
			}
			if n == 0 {
				if _, err := c.r.ReadSlice('\n'); err != nil {
					return buf, err
				}
				break
			}
			if buf, err = readN(c.r, buf, int(n)); err != nil {
				return buf, err
			}
			if _, err := c.r.Discard(2); err != nil {
				return buf, err
			}
		}
	case length >= 0:
		if buf, err = readN(c.r, buf, length); err != nil {
			return buf, err
		}
	default:
		return buf, errors.New("answer without Content-Length or chunked body")
	}
	if closeConn {
		c.c.Close()
		c.c = nil
	}
	if status != "200" {
		return buf, fmt.Errorf("HTTP %s", status)
	}
	return buf, nil
}

func readN(r *bufio.Reader, buf []byte, n int) ([]byte, error) {
	buf = slices.Grow(buf, n)
	_, err := io.ReadFull(r, buf[len(buf):len(buf)+n])
	return buf[:len(buf)+n], err
}

// peersInAnswer checks that a bencoded answer is not a refusal and counts
// the compact IPv4 peers in it (6 bytes each).
func peersInAnswer(b []byte) (int, error) {
	if i := indexOf(b, "14:failure reason"); i >= 0 {
		return 0, fmt.Errorf("tracker refused: %.120s", b[i:])
	}
	i := indexOf(b, "5:peers")
	if i < 0 {
		return 0, errors.New("answer has no peers key")
	}
	rest := b[i+len("5:peers"):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n >= len(rest) || rest[n] != ':' {
		return 0, nil // not compact (a list): count as answered with 0
	}
	l, _ := strconv.Atoi(string(rest[:n]))
	return l / 6, nil
}

func indexOf(b []byte, s string) int { return bytes.Index(b, []byte(s)) }
