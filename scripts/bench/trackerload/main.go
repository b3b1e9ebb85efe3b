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
// Requests go over -concurrency keep-alive HTTP/1.1 connections, driven by
// -loops event loops (epoll, one OS thread each; loop.go). The generator
// speaks HTTP itself: net/http's client costs about as much CPU per request
// as the server it measures.
//
//   - -rate 0 (default), closed loop: each connection keeps -depth requests
//     in flight (pipelined when above 1) and sends the next as an answer
//     comes back: the tracker's capacity.
//   - -rate R, open loop: announces are scheduled at R per second, each at
//     its intended time, on the next connection in turn (pipelined behind
//     any still in flight). Latency counts from the intended time, so a
//     stalled tracker cannot hide queueing (no coordinated omission), and
//     the generator reports its own lateness (actual minus intended send
//     time): if that is large the figures say more about the generator.
//   - -probe: the same run against a trivial answerer inside the
//     generator, to show the generator's own floor (lateness, latency).
//
// Output: one JSON object on stdout.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type agent struct {
	started  []byte // the first announce (event=started), a whole HTTP request
	periodic []byte // later announces
}

func request(target, host string) []byte {
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: trackerload\r\n\r\n")
}

type result struct {
	URL         string  `json:"url"`
	Probe       bool    `json:"probe,omitempty"`
	Agents      int     `json:"agents"`
	Swarms      int     `json:"swarms"`
	Concurrency int     `json:"concurrency"`
	Loops       int     `json:"loops"`
	Depth       int     `json:"depth,omitempty"`
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
	MaxMs       float64 `json:"max_ms"`
	// Open loop: latency from the moment the request was actually written,
	// which leaves out time the generator itself was late.
	SendP50ms float64 `json:"send_p50_ms,omitempty"`
	SendP99ms float64 `json:"send_p99_ms,omitempty"`
	// Open loop: generator lateness, actual minus intended send time.
	LateP50ms  float64 `json:"late_p50_ms,omitempty"`
	LateP99ms  float64 `json:"late_p99_ms,omitempty"`
	LateMaxMs  float64 `json:"late_max_ms,omitempty"`
	MeanPeers  float64 `json:"mean_peers"`
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
		concurrency = flag.Int("concurrency", 32, "keep-alive connections")
		loops       = flag.Int("loops", 1, "event loops (OS threads) the connections are spread over")
		depth       = flag.Int("depth", 1, "closed loop: requests in flight per connection (pipelined when above 1)")
		duration    = flag.Duration("d", 15*time.Second, "measured duration")
		warmup      = flag.Duration("warmup", 2*time.Second, "unmeasured warm-up (every agent announces started first)")
		rate        = flag.Float64("rate", 0, "offered announces per second (0: closed loop, as fast as answered)")
		probe       = flag.Bool("probe", false, "measure the generator against a trivial built-in answerer instead of -url")
	)
	flag.Parse()
	// The generator's own GC pauses would show up as tracker latency and
	// lateness: collect rarely (it allocates little once running).
	debug.SetGCPercent(800)
	if *nAgents < 1 || *nSwarms < 1 || *nSites < 1 || *nRegions < 1 || *concurrency < 1 || *loops < 1 || *depth < 1 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "trackerload: counts must be positive")
		os.Exit(2)
	}
	*loops = min(*loops, *concurrency)
	if *probe {
		addr, err := startProbe()
		if err != nil {
			fmt.Fprintln(os.Stderr, "trackerload:", err)
			os.Exit(1)
		}
		*target = "http://" + addr + "/announce"
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fmt.Fprintf(os.Stderr, "trackerload: -url %q: want http://host:port/path\n", *target)
		os.Exit(2)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "80")
	}
	addr, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackerload:", err)
		os.Exit(1)
	}
	agents := makeAgents(u.EscapedPath(), u.Host, *nAgents, *nSwarms, *nSites, *nRegions, *tenant, *token, *locality, *seeders, *numWant)

	base := time.Now()
	var next atomic.Int64
	ls := make([]*loop, *loops)
	for i := range ls {
		n := *concurrency / *loops
		if i < *concurrency%*loops {
			n++
		}
		if ls[i], err = newLoop(addr, n, agents, &next, base); err != nil {
			fmt.Fprintln(os.Stderr, "trackerload:", err)
			os.Exit(1)
		}
	}
	phase := func(d time.Duration, rate float64, warm, record bool) int64 {
		start := int64(time.Since(base))
		until := start + int64(d)
		var wg sync.WaitGroup
		for j, l := range ls {
			l.warm, l.st.record = warm, record
			var first, ivl int64
			if rate > 0 {
				// Loop j takes every len(ls)-th slot of the schedule.
				ivl = int64(float64(time.Second) * float64(len(ls)) / rate)
				first = start + int64(j)*ivl/int64(len(ls))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The loop owns its thread: a send then waits for nothing
				// but the timer.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				l.run(until, first, ivl, *depth, 10*time.Second)
			}()
		}
		wg.Wait()
		return until - start
	}
	// Warm-up: every agent announces "started" once (closed loop), then
	// periodic announces until the warm-up time is over.
	phase(*warmup, 0, true, false)
	elapsed := time.Duration(phase(*duration, *rate, false, true)).Seconds()

	st := &stats{}
	for _, l := range ls {
		st.lat = append(st.lat, l.st.lat...)
		st.sendLat = append(st.sendLat, l.st.sendLat...)
		st.late = append(st.late, l.st.late...)
		st.errors += l.st.errors
		st.failures += l.st.failures
		st.peers += l.st.peers
		if st.firstErr == "" {
			st.firstErr = l.st.firstErr
		}
		l.close()
	}
	res := result{
		URL: *target, Probe: *probe, Agents: *nAgents, Swarms: *nSwarms, Concurrency: *concurrency,
		Loops: len(ls), Rate: *rate, Seconds: elapsed,
		Announces: int64(len(st.lat)), Errors: st.errors, Failures: st.failures,
		FirstError: st.firstErr,
	}
	if *rate == 0 {
		res.Depth = *depth
	}
	res.PerSecond = float64(res.Announces) / elapsed
	if len(st.lat) > 0 {
		res.P50ms, res.P90ms, res.P99ms, res.P999ms = quantile(st.lat, 0.50), quantile(st.lat, 0.90), quantile(st.lat, 0.99), quantile(st.lat, 0.999)
		res.MaxMs = quantile(st.lat, 1)
		res.MeanPeers = float64(st.peers) / float64(len(st.lat))
	}
	if len(st.sendLat) > 0 {
		res.SendP50ms, res.SendP99ms = quantile(st.sendLat, 0.50), quantile(st.sendLat, 0.99)
	}
	if len(st.late) > 0 {
		res.LateP50ms, res.LateP99ms, res.LateMaxMs = quantile(st.late, 0.50), quantile(st.late, 0.99), quantile(st.late, 1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
	if res.Announces == 0 || res.Errors+res.Failures > res.Announces/100 {
		os.Exit(1)
	}
}

// quantile of ns values, in ms; sorts v.
func quantile(v []int64, p float64) float64 {
	if !slices.IsSorted(v) {
		slices.Sort(v)
	}
	return float64(v[int(p*float64(len(v)-1))]) / 1e6
}

// makeAgents builds every agent's two announce requests up front, so the
// generator spends its CPU on sending, not on formatting.
func makeAgents(path, host string, n, swarms, sites, regions int, tenant, token, locality string, seeders float64, numWant int) []agent {
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
		periodic := request(path+"?"+q.Encode(), host)
		q.Set("event", "started")
		out[i] = agent{started: request(path+"?"+q.Encode(), host), periodic: periodic}
	}
	return out
}

// startProbe serves a fixed tracker-like answer to every request, for
// -probe: what the generator measures against a server that costs nothing.
func startProbe() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	body := "d8:completei1e10:incompletei1e8:intervali60e12:min intervali30e5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers60:e"
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				w := bufio.NewWriter(c)
				for {
					// One request: lines up to the empty one.
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimSpace(line)) == 0 {
							break
						}
					}
					w.Write(answer)
					if r.Buffered() == 0 { // answer pipelined requests in one write
						if w.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), nil
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
