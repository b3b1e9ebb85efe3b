//go:build linux

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
	"strings"
	"sync"
	"time"
)

type agent struct {
	started  []byte // the first announce (event=started), a whole HTTP request
	periodic []byte // later announces
}

func request(target, host string) []byte {
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: trackerload\r\n\r\n")
}

// result is the output. Per-target figures are in Targets when there are
// several.
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
	// Answers of the whole run, warm-up included: what the tracker's CPU
	// time over the run was spent on.
	RunAnswers int64 `json:"run_answers"`
	figures
	Targets  []figures     `json:"targets,omitempty"`
	Gateways *gatewayCheck `json:"gateways,omitempty"`
}

// figures is what was measured at one target, or at all of them.
type figures struct {
	Target    string  `json:"target,omitempty"`
	Announces int64   `json:"announces"`
	Errors    int64   `json:"errors"`
	Failures  int64   `json:"failures"` // 200 with "failure reason"
	PerSecond float64 `json:"announces_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P90ms     float64 `json:"p90_ms"`
	P99ms     float64 `json:"p99_ms"`
	P999ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
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

func (f *figures) fill(st *stats, seconds float64) {
	f.Announces, f.Errors, f.Failures, f.FirstError = int64(len(st.lat)), st.errors, st.failures, st.firstErr
	f.PerSecond = float64(f.Announces) / seconds
	if len(st.lat) > 0 {
		f.P50ms, f.P90ms, f.P99ms, f.P999ms = quantile(st.lat, 0.50), quantile(st.lat, 0.90), quantile(st.lat, 0.99), quantile(st.lat, 0.999)
		f.MaxMs = quantile(st.lat, 1)
		f.MeanPeers = float64(st.peers) / float64(len(st.lat))
	}
	if len(st.sendLat) > 0 {
		f.SendP50ms, f.SendP99ms = quantile(st.sendLat, 0.50), quantile(st.sendLat, 0.99)
	}
	if len(st.late) > 0 {
		f.LateP50ms, f.LateP99ms, f.LateMaxMs = quantile(st.late, 0.50), quantile(st.late, 0.99), quantile(st.late, 1)
	}
}

func (st *stats) merge(o *stats) {
	st.lat = append(st.lat, o.lat...)
	st.sendLat = append(st.sendLat, o.sendLat...)
	st.late = append(st.late, o.late...)
	st.errors += o.errors
	st.answers += o.answers
	st.failures += o.failures
	st.peers += o.peers
	if st.firstErr == "" {
		st.firstErr = o.firstErr
	}
}

// options are the command's flags.
type options struct {
	urls, route, tenant, token, locality    string
	agents, swarms, sites, regions, numWant int
	concurrency, loops, depth               int
	seeders, rate                           float64
	duration, warmup, interval              time.Duration
	ipParam, checkGateways, probe           bool
}

func main() {
	var o options
	flag.StringVar(&o.urls, "url", "http://127.0.0.1:7070/announce", "tracker announce URL; several, comma-separated, share the agents (-route)")
	flag.StringVar(&o.route, "route", "agent", "with several URLs: agent (agent i to URL i mod n) or swarm (every agent of swarm s to URL s mod n)")
	flag.IntVar(&o.agents, "agents", 5000, "simulated agents")
	flag.IntVar(&o.swarms, "swarms", 50, "swarms (infohashes) the agents are spread over")
	flag.IntVar(&o.sites, "sites", 500, "sites the agents are spread over")
	flag.IntVar(&o.regions, "regions", 4, "regions the sites are spread over")
	flag.StringVar(&o.tenant, "tenant", "acme", "tenant of every agent")
	flag.StringVar(&o.token, "token", "", "token query parameter, if the tracker wants one")
	flag.Float64Var(&o.seeders, "seeders", 0.5, "fraction of agents that announce left=0")
	flag.IntVar(&o.numWant, "numwant", 50, "numwant sent by each agent")
	flag.StringVar(&o.locality, "locality", "gateway", "locality sent by each agent (agents default to gateway); empty: none")
	flag.BoolVar(&o.ipParam, "ip", false, "each agent sends its own private ip= (10.x.y.z), for more agents than ports; the tracker must trust it (trust_ip_param)")
	flag.IntVar(&o.concurrency, "concurrency", 32, "keep-alive connections per URL")
	flag.IntVar(&o.loops, "loops", 1, "event loops (OS threads) the connections are spread over")
	flag.IntVar(&o.depth, "depth", 1, "closed loop: requests in flight per connection (pipelined when above 1)")
	flag.DurationVar(&o.duration, "d", 15*time.Second, "measured duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up (every agent announces started first)")
	flag.Float64Var(&o.rate, "rate", 0, "offered announces per second (0: closed loop, as fast as answered)")
	flag.DurationVar(&o.interval, "interval", 0, "open loop with each agent announcing once per interval (rate = agents / interval)")
	flag.BoolVar(&o.checkGateways, "check-gateways", false, "after the run, read every swarm's view from every URL and check one gateway per site and swarm, the same at every URL")
	flag.BoolVar(&o.probe, "probe", false, "measure the generator against a trivial built-in answerer instead of -url")
	flag.Parse()
	// The generator's own GC pauses would show up as tracker latency and
	// lateness: collect rarely (it allocates little once running).
	debug.SetGCPercent(800)
	res, err := runLoad(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackerload:", err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
	if !res.ok() {
		os.Exit(1)
	}
}

// ok: answers came, at most 1% errors or refusals, and the gateway check
// (if run) found nothing.
func (r *result) ok() bool {
	if r.Announces == 0 || r.Errors+r.Failures > r.Announces/100 {
		return false
	}
	g := r.Gateways
	return g == nil || g.Violations == 0 && g.Disagreements == 0 && g.Errors == 0
}

// runLoad runs the warm-up and the measured phase.
func runLoad(o options) (*result, error) {
	if o.agents < 1 || o.swarms < 1 || o.sites < 1 || o.regions < 1 || o.concurrency < 1 || o.loops < 1 || o.depth < 1 || o.rate < 0 || o.interval < 0 {
		return nil, errors.New("counts must be positive")
	}
	if o.route != "agent" && o.route != "swarm" {
		return nil, errors.New("-route is agent or swarm")
	}
	if o.interval > 0 {
		o.rate = float64(o.agents) / o.interval.Seconds()
	}
	if o.probe {
		addr, err := startProbe()
		if err != nil {
			return nil, err
		}
		o.urls = "http://" + addr + "/announce"
	}
	var targets []*target
	var path, host []string
	for _, s := range strings.Split(o.urls, ",") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("-url %q: want http://host:port/path", s)
		}
		hostport := u.Host
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), "80")
		}
		addr, err := net.ResolveTCPAddr("tcp", hostport)
		if err != nil {
			return nil, err
		}
		targets = append(targets, &target{url: s, sa: sockaddr(addr)})
		path, host = append(path, u.EscapedPath()), append(host, u.Host)
	}
	hashes, all := makeAgents(o.agents, o.swarms, o.sites, o.regions, o.tenant, o.token, o.locality, o.seeders, o.numWant, o.ipParam)
	for i := range all {
		k := i
		if o.route == "swarm" {
			k = i % o.swarms
		}
		t := k % len(targets)
		a := &all[i]
		targets[t].agents = append(targets[t].agents, agent{
			started: request(path[t]+"?"+a.started, host[t]), periodic: request(path[t]+"?"+a.periodic, host[t]),
		})
	}
	for _, t := range targets {
		if len(t.agents) == 0 {
			return nil, fmt.Errorf("no agents for %s: more URLs than agents or swarms", t.url)
		}
	}

	o.loops = min(o.loops, o.concurrency)
	// Each loop's thread returns from epoll_wait needing a P: give every
	// loop one of its own, plus one for the rest (the probe's answerer,
	// the GC), even when pinned to one CPU (GOMAXPROCS is then 1).
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), o.loops+1))
	base := time.Now()
	ls := make([]*loop, 0, o.loops)
	defer func() {
		for _, l := range ls {
			l.close()
		}
	}()
	for i := range o.loops {
		n := o.concurrency / o.loops
		if i < o.concurrency%o.loops {
			n++
		}
		l, err := newLoop(targets, n, base)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	phase := func(d time.Duration, rate float64, warm, record bool) int64 {
		start := int64(time.Since(base))
		until := start + int64(d)
		var wg sync.WaitGroup
		for j, l := range ls {
			l.warm = warm
			for _, d := range l.dests {
				d.st.record = record
			}
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
				l.run(until, first, ivl, o.depth, 10*time.Second)
			}()
		}
		wg.Wait()
		return until - start
	}
	// Warm-up: every agent announces "started" once (closed loop), then
	// periodic announces until the warm-up time is over. With many agents
	// the warm-up lasts until each has started.
	for {
		phase(o.warmup, 0, true, false)
		done := true
		for _, t := range targets {
			done = done && t.next.Load() >= int64(len(t.agents))
		}
		if done {
			break
		}
	}
	elapsed := time.Duration(phase(o.duration, o.rate, false, true)).Seconds()

	res := &result{
		URL: o.urls, Probe: o.probe, Agents: o.agents, Swarms: o.swarms, Concurrency: o.concurrency,
		Loops: len(ls), Rate: o.rate, Seconds: elapsed,
	}
	if o.rate == 0 {
		res.Depth = o.depth
	}
	total := &stats{}
	for ti, t := range targets {
		st := &stats{}
		for _, l := range ls {
			st.merge(&l.dests[ti].st)
		}
		total.merge(st)
		if len(targets) > 1 {
			f := figures{Target: t.url}
			f.fill(st, elapsed)
			res.Targets = append(res.Targets, f)
		}
	}
	res.fill(total, elapsed)
	res.RunAnswers = total.answers
	if o.checkGateways {
		res.Gateways = checkGateways(targets, hashes, o.tenant, o.token, o.route == "swarm")
	}
	return res, nil
}

// quantile of ns values, in ms; sorts v.
func quantile(v []int64, p float64) float64 {
	if !slices.IsSorted(v) {
		slices.Sort(v)
	}
	return float64(v[int(p*float64(len(v)-1))]) / 1e6
}

// rawAgent is one agent's two announce queries.
type rawAgent struct{ started, periodic string }

// makeAgents builds every agent's two announce queries up front (main
// turns them into whole requests), so the generator spends its CPU on
// sending, not on formatting. Agent i is in swarm i mod swarms and site
// i mod sites.
func makeAgents(n, swarms, sites, regions int, tenant, token, locality string, seeders float64, numWant int, ipParam bool) ([][20]byte, []rawAgent) {
	hashes := make([][20]byte, swarms)
	for i := range hashes {
		rand.Read(hashes[i][:])
	}
	out := make([]rawAgent, n)
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := range out {
		var id [20]byte
		copy(id[:], "-SH0100-") // btclient.AgentPeerIDPrefix
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
		if ipParam {
			q.Set("ip", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
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
		periodic := q.Encode()
		q.Set("event", "started")
		out[i] = rawAgent{started: q.Encode(), periodic: periodic}
	}
	return hashes, out
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
