// Command tbtool is the testbed's helper (scripts/testbed/run): a plain
// HTTP downloader for the HTTP-only runs, a progress check over agents'
// status files, and the report (fluid lower bound, table, JSON).
//
//	tbtool get -o DIR URL...        download each URL into DIR; print {"seconds","bytes"}
//	tbtool fetch URL                print a URL's body (health, metrics)
//	tbtool progress FILE...         summarise agents' status JSON; exit 0 when all are ready
//	tbtool report -dir D [flags]    read a run's data directory, print the table, write JSON
//	tbtool verify -manifest M -dir D   check D's files against a release manifest's SHA-256s
//
// It uses only the standard library and internal/capacity (the model of
// swarmship plan, itself standard library only) so that it builds in a
// second.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmship/swarmship/internal/capacity"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tbtool get|fetch|progress|report|verify|play ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "get":
		err = cmdGet(os.Args[2:])
	case "fetch":
		err = cmdFetch(os.Args[2:])
	case "progress":
		var ready bool
		ready, err = cmdProgress(os.Args[2:])
		if err == nil && !ready {
			os.Exit(1)
		}
	case "report":
		err = cmdReport(os.Args[2:])
	case "verify":
		err = cmdVerify(os.Args[2:])
	case "play":
		err = cmdPlay(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tbtool:", err)
		os.Exit(2)
	}
}

// cmdGet downloads URLs one after another, like `curl -o` per file. A
// broken transfer is resumed with a Range request (like `curl -C -
// --retry`), up to 5 times per file; the retries are reported.
func cmdGet(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	out := fs.String("o", ".", "directory to write into")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	var total int64
	var retries []string
	for _, u := range fs.Args() {
		dst := filepath.Join(*out, path.Base(u))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		var have int64
		for attempt := 0; ; attempt++ {
			n, complete, err := download(ctx, u, f, have)
			have += n
			if err == nil && complete {
				break
			}
			if err == nil {
				err = errors.New("short body")
			}
			if attempt == 5 || ctx.Err() != nil {
				f.Close()
				return fmt.Errorf("GET %s: %w (after %d retries, %d bytes)", u, err, attempt, have)
			}
			retries = append(retries, fmt.Sprintf("%.1fs at byte %d: %v", time.Since(start).Seconds(), have, err))
			time.Sleep(time.Second)
		}
		if err := f.Close(); err != nil {
			return err
		}
		total += have
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"seconds": time.Since(start).Seconds(), "bytes": total, "retries": retries})
}

// download appends url's bytes from offset to f. complete reports that the
// body ended where the file ends.
func download(ctx context.Context, url string, f *os.File, offset int64) (n int64, complete bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	want := http.StatusOK
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		want = http.StatusPartialContent
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	n, err = io.Copy(f, resp.Body)
	return n, err == nil && (resp.ContentLength < 0 || n == resp.ContentLength), err
}

// cmdFetch prints a URL's body, or with -o writes it to a file atomically
// (readers of the file never see a partial body).
func cmdFetch(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	out := fs.String("o", "", "write the body to this file (atomically)")
	timeout := fs.Duration("timeout", 5*time.Second, "")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: tbtool fetch [-o FILE] URL")
	}
	url := fs.Arg(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if *out == "" {
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}

// agentStatus is the part of `swarmship status -o json` the testbed reads.
type agentStatus struct {
	Subscriptions []struct {
		Subscription string `json:"subscription"`
		Ready        bool   `json:"ready"`
		Active       string `json:"active"`
		Reason       string `json:"reason"`
	} `json:"subscriptions"`
	Releases []agentRelease `json:"releases"`
}

type agentRelease struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	State      string `json:"state"`
	Size       int64  `json:"size"`
	Completed  int64  `json:"completed"`
	Reused     int64  `json:"reused"`
	Downloaded struct {
		Peer    int64 `json:"peer"`
		Origin  int64 `json:"origin"`
		WebSeed int64 `json:"webseed"`
	} `json:"downloaded"`
	Uploaded  int64     `json:"uploaded"`
	Peers     int       `json:"peers"`
	LastError string    `json:"last_error"`
	Started   time.Time `json:"started"`
	Verified  time.Time `json:"verified"`
	Activated time.Time `json:"activated"`
}

func readStatus(file string) (*agentStatus, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var st agentStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &st, nil
}

func (st *agentStatus) ready() bool {
	if st == nil || len(st.Subscriptions) == 0 {
		return false
	}
	for _, s := range st.Subscriptions {
		if !s.Ready {
			return false
		}
	}
	return true
}

// readyWith is ready, and with a version also that the agent activated it
// (a delta run's agents are ready with the previous version already).
func (st *agentStatus) readyWith(version string) bool {
	if !st.ready() {
		return false
	}
	return version == "" || st.release(version) != nil && !st.release(version).Activated.IsZero()
}

// release returns the status of one version, nil if the agent has none.
func (st *agentStatus) release(version string) *agentRelease {
	for i := range st.Releases {
		if st.Releases[i].Version == version {
			return &st.Releases[i]
		}
	}
	return nil
}

// cmdProgress prints one line: agents ready, bytes completed. With -log
// FILE -t SECONDS it appends one line per agent to FILE (a timeline:
// seconds, agent, completed, from peers, from origin, uploaded, peer
// connections).
func cmdProgress(args []string) (bool, error) {
	fs := flag.NewFlagSet("progress", flag.ExitOnError)
	logFile := fs.String("log", "", "append a timeline line per agent here")
	at := fs.Float64("t", 0, "seconds since the start, for -log")
	version := fs.String("version", "", "count only this release version; an agent is ready once it activated it")
	fs.Parse(args)
	files := fs.Args()
	var ready int
	var done, size, peer, origin int64
	var timeline strings.Builder
	for _, f := range files {
		st, err := readStatus(f)
		if err != nil {
			continue
		}
		if st.readyWith(*version) {
			ready++
		}
		for _, r := range st.Releases {
			if *version != "" && r.Version != *version {
				continue
			}
			done += r.Completed
			size += r.Size
			peer += r.Downloaded.Peer
			origin += r.Downloaded.Origin
			fmt.Fprintf(&timeline, "%.1f %s %d %d %d %d %d\n", *at, strings.TrimSuffix(filepath.Base(f), ".json"),
				r.Completed, r.Downloaded.Peer, r.Downloaded.Origin, r.Uploaded, r.Peers)
		}
	}
	if *logFile != "" {
		lf, err := os.OpenFile(*logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return false, err
		}
		lf.WriteString(timeline.String())
		lf.Close()
	}
	pct := 0.0
	if size > 0 {
		pct = 100 * float64(done) / float64(size)
	}
	fmt.Printf("%d/%d agents ready, %.0f%% of bytes, from peers %s, from origin %s\n", ready, len(files), pct, mib(peer), mib(origin))
	return ready == len(files), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ---- report ----

// rateBits parses a tc rate such as 50mbit, 1gbit, 800kbit or 100 (Mbit/s).
func rateBits(s string) (float64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := 1e6
	for _, u := range []struct {
		suf string
		m   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad rate %q (want e.g. 50mbit)", s)
	}
	return v * mult, nil
}

// LowerBound is the fluid lower bound on the time for every agent to hold
// the release, for a topology where agents' LAN links are not shaped:
//
//	T_lb = max( F/u_origin,                 the origin must send at least one copy
//	            F/d_b  for each branch b,   each branch must receive one copy over its WAN downlink
//	            B·F/(u_origin + Σ_b u_b) )  all B copies entering branches come from the origin's
//	                                        uplink or other branches' uplinks (Σ u_b counts only if B ≥ 2)
//
// F is the release size in bits, u and d are the shaped rates in bit/s.
// AtEgress(E) adds the constraint that the origin sends only E copies:
// the other B−E copies must then cross branch uplinks, T ≥ (B−E)·F/Σ_b u_b
// (and T ≥ E·F/u_origin).
type LowerBound struct {
	Formula  string             `json:"formula"`
	Terms    map[string]float64 `json:"terms_seconds"`
	Seconds  float64            `json:"seconds"`
	AtTarget float64            `json:"seconds_at_target_egress"` // with origin egress capped at the target (1.05 copies)
	Measured float64            `json:"seconds_at_measured_egress,omitempty"`
}

type topo struct {
	B, A                   int
	F                      float64 // bits
	uOrigin, dBranch, uBrn float64
}

func (t topo) lowerBound() LowerBound {
	lb := LowerBound{
		Formula: "max(F/u_origin, F/d_branch, B*F/(u_origin + sum u_branch)); at egress E copies also max(E*F/u_origin, (B-E)*F/sum u_branch)",
		Terms: map[string]float64{
			"F/u_origin":                  t.F / t.uOrigin,
			"F/d_branch":                  t.F / t.dBranch,
			"B*F/(u_origin+sum u_branch)": float64(t.B) * t.F / (t.uOrigin + t.sumUp()),
		},
	}
	for _, v := range lb.Terms {
		lb.Seconds = math.Max(lb.Seconds, v)
	}
	lb.AtTarget = t.atEgress(lb.Seconds, targetEgress)
	return lb
}

func (t topo) sumUp() float64 {
	if t.B < 2 {
		return 0
	}
	return float64(t.B) * t.uBrn
}

func (t topo) atEgress(base, e float64) float64 {
	v := math.Max(base, e*t.F/t.uOrigin)
	if rest := float64(t.B) - e; rest > 0 {
		if t.sumUp() == 0 {
			return math.Inf(1)
		}
		v = math.Max(v, rest*t.F/t.sumUp())
	}
	return v
}

// Targets from issue 6, as issue 14 tightened them: completion against
// the bound at the measured egress (the origin may not send more than
// ~1 copy, so the rest must cross branch uplinks), P2P/HTTP 0.30.
const (
	targetEgress     = 1.05
	targetWAN        = 1.15
	targetCompletion = 1.25
	targetVsHTTP     = 0.30
)

type counters map[string][2]int64 // "ns/dev" → rx, tx

func readCounters(file string) (counters, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := counters{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var key string
		var rx, tx int64
		if _, err := fmt.Sscan(sc.Text(), &key, &rx, &tx); err == nil {
			c[key] = [2]int64{rx, tx}
		}
	}
	return c, sc.Err()
}

func delta(before, after counters, key string) (rx, tx int64) {
	return after[key][0] - before[key][0], after[key][1] - before[key][1]
}

var metricRE = regexp.MustCompile(`^swarmship_origin_egress_bytes_total\{kind="(\w+)"\} (\S+)`)

func readMetrics(file string) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile(file)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		if s := metricRE.FindStringSubmatch(line); s != nil {
			v, _ := strconv.ParseFloat(s[2], 64)
			m[s[1]] = int64(v)
		}
	}
	return m
}

func readFloat(file string) (float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}

type Egress struct {
	IfaceTxBytes   int64   `json:"iface_tx_bytes"`  // origin namespace's WAN interface
	IfaceCopies    float64 `json:"iface_tx_copies"` // includes headers, catalog, tracker
	WebSeedBytes   int64   `json:"metrics_webseed_bytes"`
	PeerBytes      int64   `json:"metrics_peer_bytes"`
	CatalogBytes   int64   `json:"metrics_catalog_bytes"`
	MetricsCopies  float64 `json:"metrics_payload_copies"` // (webseed+peer)/F
	MetricsPresent bool    `json:"metrics_present"`
}

type BranchResult struct {
	Branch       string  `json:"branch"`
	WANRxBytes   int64   `json:"wan_rx_bytes"`
	WANRxCopies  float64 `json:"wan_rx_copies"`
	WANTxBytes   int64   `json:"wan_tx_bytes"`
	WANTxCopies  float64 `json:"wan_tx_copies"`
	OriginBytes  int64   `json:"agents_from_origin_bytes"` // what its agents fetched from the origin (over the WAN)
	PeerBytes    int64   `json:"agents_from_peers_bytes"`  // from peers, local or remote
	RemotePeerEs float64 `json:"remote_peer_copies_est"`   // (wan_rx − origin bytes)/F: peer bytes that crossed the WAN, with headers
}

type AgentResult struct {
	Name        string   `json:"name"`
	Branch      string   `json:"branch"`
	Completed   bool     `json:"completed"`
	Seconds     float64  `json:"seconds,omitempty"` // release active, from the agents' start
	State       string   `json:"state,omitempty"`
	FromPeers   int64    `json:"from_peers_bytes"`
	FromOrigin  int64    `json:"from_origin_bytes"`
	Uploaded    int64    `json:"uploaded_bytes"`
	CPUSeconds  float64  `json:"cpu_seconds,omitempty"` // user+system of the agent process during the P2P run
	LastError   string   `json:"last_error,omitempty"`
	HTTPSeconds float64  `json:"http_seconds,omitempty"`
	HTTPError   string   `json:"http_error,omitempty"`
	HTTPRetries []string `json:"http_retries,omitempty"` // resumed transfers (connection resets)
}

type Phase struct {
	AllCompleted  bool           `json:"all_completed"`
	MaxSeconds    float64        `json:"completion_max_seconds"`
	MeanSeconds   float64        `json:"completion_mean_seconds"`
	WallSeconds   float64        `json:"wall_seconds"`
	OriginEgress  Egress         `json:"origin_egress"`
	Branches      []BranchResult `json:"branches"`
	RatioToLB     float64        `json:"ratio_to_lower_bound,omitempty"`
	RatioToLBAtEg float64        `json:"ratio_to_lower_bound_at_measured_egress,omitempty"`
	// Load averages of the machine (1, 5, 15 min) at the start and the end:
	// other work on the machine slows the agents.
	LoadAvg [2]string `json:"loadavg_before_after"`
	// AgentCPUSeconds is the CPU time all agents used (P2P).
	AgentCPUSeconds float64 `json:"agent_cpu_seconds,omitempty"`
}

type Target struct {
	Name     string  `json:"name"`
	Target   float64 `json:"target"`
	Measured float64 `json:"measured"`
	OK       bool    `json:"ok"`
}

type Report struct {
	Date   time.Time `json:"date"`
	Params struct {
		Branches      int     `json:"branches"`
		Agents        int     `json:"agents_per_branch"`
		SizeBytes     int64   `json:"size_bytes"`
		Down          string  `json:"branch_down"`
		Up            string  `json:"branch_up"`
		OriginUp      string  `json:"origin_up"`
		Mode          string  `json:"mode"`
		Catalog       string  `json:"catalog"`
		HTTPNetwork   string  `json:"http_network,omitempty"` // same-network (after P2P) or twin-network-concurrent
		PieceLength   int64   `json:"piece_length,omitempty"`
		StartupGraceS float64 `json:"startup_grace_seconds"`
		Pacing        bool    `json:"origin_pacing"`          // offload.site_wan_down set to the branch downlink
		OriginShare   string  `json:"origin_share,omitempty"` // empty: the agent's default
	} `json:"params"`
	LowerBound LowerBound    `json:"lower_bound"`
	P2P        *Phase        `json:"p2p,omitempty"`
	HTTP       *Phase        `json:"http,omitempty"`
	Agents     []AgentResult `json:"agents"`
	P2POverHTT float64       `json:"p2p_over_http,omitempty"`
	Targets    []Target      `json:"targets"`
	Prediction *Prediction   `json:"prediction,omitempty"`
	Delta      *DeltaReport  `json:"delta,omitempty"`   // DELTA=1: the v2 phase; P2P is then the v1 phase
	WANCap     *WANCapReport `json:"wan_cap,omitempty"` // WANCAP=1: the sites' WAN caps against the links
}

// Prediction is what `swarmship plan` (internal/capacity) expects for
// this topology, and how the run compares: measured / predicted.
type Prediction struct {
	LowerBoundSeconds float64 `json:"lower_bound_seconds"`
	Efficiency        float64 `json:"efficiency"`
	ExpectedSeconds   float64 `json:"expected_seconds"`
	HTTPOnlySeconds   float64 `json:"http_only_seconds"`
	OriginCopies      float64 `json:"origin_copies"`
	WANInCopies       float64 `json:"wan_in_copies"`  // per branch
	WANOutCopies      float64 `json:"wan_out_copies"` // per branch
	P2PRatio          float64 `json:"p2p_measured_over_expected,omitempty"`
	HTTPRatio         float64 `json:"http_measured_over_expected,omitempty"`
	WithinTolerance   bool    `json:"p2p_within_20_percent"`
}

// predict runs the capacity model on the testbed's topology.
func predict(t topo) (*Prediction, error) {
	in := capacity.Input{Size: int64(t.F / 8), OriginUp: t.uOrigin / 8}
	for b := 1; b <= t.B; b++ {
		in.Sites = append(in.Sites, capacity.Site{Name: fmt.Sprintf("b%d", b), Agents: t.A, Down: t.dBranch / 8, Up: t.uBrn / 8})
	}
	p, err := capacity.Model(in)
	if err != nil {
		return nil, err
	}
	F := t.F / 8
	return &Prediction{
		LowerBoundSeconds: round(p.LowerBound, 2), Efficiency: p.Efficiency, ExpectedSeconds: round(p.Expected, 2),
		HTTPOnlySeconds: round(p.HTTPOnly, 2), OriginCopies: round(p.OriginEgress/F, 3),
		WANInCopies: round(p.Sites[0].WANIn/F, 3), WANOutCopies: round(p.Sites[0].WANOut/F, 3),
	}, nil
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "", "run data directory")
	out := fs.String("out", "", "write JSON here")
	var r Report
	p := &r.Params
	fs.IntVar(&p.Branches, "branches", 3, "")
	fs.IntVar(&p.Agents, "agents", 4, "")
	fs.Int64Var(&p.SizeBytes, "size", 0, "release size in bytes")
	fs.StringVar(&p.Down, "down", "50mbit", "")
	fs.StringVar(&p.Up, "up", "20mbit", "")
	fs.StringVar(&p.OriginUp, "origin-up", "100mbit", "")
	fs.StringVar(&p.Mode, "mode", "both", "")
	fs.StringVar(&p.Catalog, "catalog", "dir", "")
	fs.StringVar(&p.HTTPNetwork, "http-network", "", "")
	fs.Int64Var(&p.PieceLength, "piece-length", 0, "")
	fs.Float64Var(&p.StartupGraceS, "startup-grace", 0, "")
	fs.BoolVar(&p.Pacing, "pacing", false, "")
	fs.StringVar(&p.OriginShare, "origin-share", "", "")
	pairFile := fs.String("pair", "", "delta run: the pair's JSON (scripts/bench/delta -gen)")
	deltaPiece := fs.Int64("delta-piece-length", 0, "delta run: v2's piece length")
	zsync := fs.Int64("zsync-bytes", 0, "delta run: zsync's bytes for the same pair, to compare sites with")
	fresh := fs.Int("fresh", 0, "delta run: agents per branch that joined holding nothing")
	capDown := fs.String("wancap-down", "", "WANCAP run: the sites' wan_down cap (e.g. 10mbit)")
	capUp := fs.String("wancap-up", "", "WANCAP run: the sites' wan_up cap")
	fs.Parse(args)
	if *dir == "" || p.SizeBytes <= 0 {
		return errors.New("report needs -dir and -size")
	}
	r.Date = time.Now().UTC().Truncate(time.Second)
	var t topo
	var err error
	t.B, t.A, t.F = p.Branches, p.Agents, float64(p.SizeBytes)*8
	if t.dBranch, err = rateBits(p.Down); err != nil {
		return err
	}
	if t.uBrn, err = rateBits(p.Up); err != nil {
		return err
	}
	if t.uOrigin, err = rateBits(p.OriginUp); err != nil {
		return err
	}
	r.LowerBound = t.lowerBound()
	F := float64(p.SizeBytes)
	for b := 1; b <= t.B; b++ {
		for a := 1; a <= t.A; a++ {
			r.Agents = append(r.Agents, AgentResult{Name: fmt.Sprintf("b%da%d", b, a), Branch: fmt.Sprintf("b%d", b)})
		}
	}

	if _, err := os.Stat(filepath.Join(*dir, "p2p")); err == nil {
		ph, err := readPhase(filepath.Join(*dir, "p2p"), t, F)
		if err != nil {
			return err
		}
		t0, _ := readFloat(filepath.Join(*dir, "p2p", "t0"))
		var sum float64
		n := 0
		ph.AllCompleted = true
		byBranch := map[string]*BranchResult{}
		for i := range ph.Branches {
			byBranch[ph.Branches[i].Branch] = &ph.Branches[i]
		}
		for i := range r.Agents {
			ar := &r.Agents[i]
			st, err := readStatus(filepath.Join(*dir, "p2p", "status", ar.Name+".json"))
			if err == nil && len(st.Releases) > 0 {
				rel := st.Releases[len(st.Releases)-1]
				ar.State, ar.FromPeers, ar.FromOrigin, ar.Uploaded, ar.LastError = rel.State, rel.Downloaded.Peer, rel.Downloaded.Origin, rel.Uploaded, rel.LastError
				if st.ready() && !rel.Activated.IsZero() {
					ar.Completed = true
					ar.Seconds = round(float64(rel.Activated.UnixNano())/1e9-t0, 2)
					sum += ar.Seconds
					n++
					ph.MaxSeconds = math.Max(ph.MaxSeconds, ar.Seconds)
				}
				if br := byBranch[ar.Branch]; br != nil {
					br.OriginBytes += ar.FromOrigin
					br.PeerBytes += ar.FromPeers
				}
			}
			if !ar.Completed {
				ph.AllCompleted = false
			}
		}
		if b, err := os.ReadFile(filepath.Join(*dir, "p2p", "cpu")); err == nil {
			cpu := map[string]float64{}
			for _, line := range strings.Split(string(b), "\n") {
				var name string
				var sec float64
				if _, err := fmt.Sscan(line, &name, &sec); err == nil {
					cpu[name] = sec
				}
			}
			for i := range r.Agents {
				r.Agents[i].CPUSeconds = round(cpu[r.Agents[i].Name], 1)
				ph.AgentCPUSeconds += cpu[r.Agents[i].Name]
			}
			ph.AgentCPUSeconds = round(ph.AgentCPUSeconds, 1)
		}
		for i := range ph.Branches {
			br := &ph.Branches[i]
			br.RemotePeerEs = round(float64(br.WANRxBytes-br.OriginBytes)/F, 3)
		}
		if n > 0 {
			ph.MeanSeconds = round(sum/float64(n), 2)
		}
		if ph.AllCompleted && r.LowerBound.Seconds > 0 {
			ph.RatioToLB = round(ph.MaxSeconds/r.LowerBound.Seconds, 3)
			e := ph.OriginEgress.MetricsCopies
			if !ph.OriginEgress.MetricsPresent {
				e = ph.OriginEgress.IfaceCopies
			}
			r.LowerBound.Measured = round(t.atEgress(r.LowerBound.Seconds, e), 2)
			ph.RatioToLBAtEg = round(ph.MaxSeconds/r.LowerBound.Measured, 3)
		}
		r.P2P = ph
	}
	if _, err := os.Stat(filepath.Join(*dir, "http")); err == nil {
		ph, err := readPhase(filepath.Join(*dir, "http"), t, F)
		if err != nil {
			return err
		}
		ph.AllCompleted = true
		var sum float64
		n := 0
		for i := range r.Agents {
			ar := &r.Agents[i]
			b, err := os.ReadFile(filepath.Join(*dir, "http", "result", ar.Name+".json"))
			var res struct {
				Seconds float64  `json:"seconds"`
				Bytes   int64    `json:"bytes"`
				Retries []string `json:"retries"`
			}
			if err == nil {
				err = json.Unmarshal(b, &res)
			}
			if err != nil || res.Bytes != p.SizeBytes {
				ph.AllCompleted = false
				msg, _ := os.ReadFile(filepath.Join(*dir, "http", "result", ar.Name+".err"))
				ar.HTTPError = strings.TrimSpace(string(msg))
				if ar.HTTPError == "" {
					ar.HTTPError = "did not finish"
				}
				continue
			}
			ar.HTTPSeconds = round(res.Seconds, 2)
			ar.HTTPRetries = res.Retries
			sum += res.Seconds
			n++
			ph.MaxSeconds = math.Max(ph.MaxSeconds, ar.HTTPSeconds)
		}
		if n > 0 {
			ph.MeanSeconds = round(sum/float64(n), 2)
		}
		if ph.AllCompleted {
			ph.RatioToLB = round(ph.MaxSeconds/r.LowerBound.Seconds, 3)
		}
		r.HTTP = ph
	}
	if r.P2P != nil && r.HTTP != nil && r.P2P.AllCompleted && r.HTTP.AllCompleted && r.HTTP.MaxSeconds > 0 {
		r.P2POverHTT = round(r.P2P.MaxSeconds/r.HTTP.MaxSeconds, 3)
	}
	if ph := r.P2P; ph != nil {
		e := ph.OriginEgress.MetricsCopies
		name := "origin egress, copies (/metrics webseed+peer)"
		if !ph.OriginEgress.MetricsPresent {
			e, name = ph.OriginEgress.IfaceCopies, "origin egress, copies (interface tx)"
		}
		r.Targets = append(r.Targets, Target{Name: name, Target: targetEgress, Measured: e, OK: e <= targetEgress})
		for _, br := range ph.Branches {
			r.Targets = append(r.Targets, Target{Name: "WAN ingress " + br.Branch + ", copies", Target: targetWAN, Measured: br.WANRxCopies, OK: br.WANRxCopies <= targetWAN})
		}
		if ph.AllCompleted && ph.RatioToLBAtEg > 0 {
			r.Targets = append(r.Targets, Target{Name: "completion / bound at measured egress", Target: targetCompletion, Measured: ph.RatioToLBAtEg, OK: ph.RatioToLBAtEg <= targetCompletion})
		} else if ph.AllCompleted {
			r.Targets = append(r.Targets, Target{Name: "completion / lower bound", Target: targetCompletion, Measured: ph.RatioToLB, OK: ph.RatioToLB <= targetCompletion})
		} else {
			r.Targets = append(r.Targets, Target{Name: "completion / lower bound (not all agents completed)", Target: targetCompletion, Measured: math.NaN()})
		}
	}
	if r.P2POverHTT > 0 {
		r.Targets = append(r.Targets, Target{Name: "P2P time / HTTP time", Target: targetVsHTTP, Measured: r.P2POverHTT, OK: r.P2POverHTT <= targetVsHTTP})
	}
	if pr, err := predict(t); err == nil {
		if r.P2P != nil && r.P2P.AllCompleted && pr.ExpectedSeconds > 0 {
			pr.P2PRatio = round(r.P2P.MaxSeconds/pr.ExpectedSeconds, 3)
			pr.WithinTolerance = math.Abs(pr.P2PRatio-1) <= 0.2
		}
		if r.HTTP != nil && r.HTTP.AllCompleted && pr.HTTPOnlySeconds > 0 {
			pr.HTTPRatio = round(r.HTTP.MaxSeconds/pr.HTTPOnlySeconds, 3)
		}
		r.Prediction = pr
	} else {
		fmt.Fprintf(os.Stderr, "tbtool: no prediction: %v\n", err)
	}
	if *capDown != "" && *capUp != "" && r.P2P != nil {
		t0, _ := readFloat(filepath.Join(*dir, "p2p", "t0"))
		wc, err := wanCapReport(filepath.Join(*dir, "p2p", "wancap"), *capDown, *capUp, t0, r.P2P.MaxSeconds, r.P2P.Branches, r.Agents)
		if err != nil {
			return fmt.Errorf("WAN cap report: %w", err)
		}
		r.WANCap = wc
		r.Targets = append(r.Targets, Target{Name: "WAN caps: busiest 5 s window / cap", Target: 1.05, Measured: wc.MaxRatio, OK: wc.MaxRatio <= 1.05})
	}
	d, dts, err := deltaReport(*dir, t, *pairFile, *deltaPiece, *zsync, *fresh)
	if err != nil {
		return err
	}
	r.Delta = d
	r.Targets = append(r.Targets, dts...)
	printReport(os.Stdout, &r)
	if *out != "" {
		for i := range r.Targets {
			if math.IsNaN(r.Targets[i].Measured) {
				r.Targets[i].Measured = -1
			}
		}
		b, err := json.MarshalIndent(&r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func readPhase(dir string, t topo, F float64) (*Phase, error) {
	before, err := readCounters(filepath.Join(dir, "counters.before"))
	if err != nil {
		return nil, err
	}
	after, err := readCounters(filepath.Join(dir, "counters.after"))
	if err != nil {
		return nil, err
	}
	ph := &Phase{}
	for i, f := range []string{"counters.before.loadavg", "counters.after.loadavg"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		ph.LoadAvg[i] = strings.TrimSpace(string(b))
	}
	if w, err := readFloat(filepath.Join(dir, "wall")); err == nil {
		ph.WallSeconds = round(w, 2)
	}
	_, tx := delta(before, after, "origin")
	ph.OriginEgress.IfaceTxBytes = tx
	ph.OriginEgress.IfaceCopies = round(float64(tx)/F, 3)
	mb, ma := readMetrics(filepath.Join(dir, "metrics.before")), readMetrics(filepath.Join(dir, "metrics.after"))
	if len(ma) > 0 {
		e := &ph.OriginEgress
		e.MetricsPresent = true
		e.WebSeedBytes = ma["webseed"] - mb["webseed"]
		e.PeerBytes = ma["peer"] - mb["peer"]
		e.CatalogBytes = ma["catalog"] - mb["catalog"]
		e.MetricsCopies = round(float64(e.WebSeedBytes+e.PeerBytes)/F, 3)
	}
	for b := 1; b <= t.B; b++ {
		name := fmt.Sprintf("b%d", b)
		rx, tx := delta(before, after, name)
		ph.Branches = append(ph.Branches, BranchResult{Branch: name, WANRxBytes: rx, WANRxCopies: round(float64(rx)/F, 3), WANTxBytes: tx, WANTxCopies: round(float64(tx)/F, 3)})
	}
	return ph, nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func printReport(w io.Writer, r *Report) {
	p := r.Params
	fmt.Fprintf(w, "\nswarmship testbed: %d branches x %d agents, %s release, branch WAN %s down / %s up, origin up %s, %s catalog\n",
		p.Branches, p.Agents, mib(p.SizeBytes), p.Down, p.Up, p.OriginUp, p.Catalog)
	if p.Pacing {
		share := p.OriginShare
		if share == "" {
			share = "default"
		}
		fmt.Fprintf(w, "origin fetches paced: site_wan_down %s, origin_share %s\n", p.Down, share)
	}
	if r.WANCap != nil {
		printWANCap(w, r.WANCap)
	}
	lb := r.LowerBound
	keys := make([]string, 0, len(lb.Terms))
	for k := range lb.Terms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var terms []string
	for _, k := range keys {
		terms = append(terms, fmt.Sprintf("%s %.1fs", k, lb.Terms[k]))
	}
	fmt.Fprintf(w, "fluid lower bound %.1fs = max(%s)\n", lb.Seconds, strings.Join(terms, ", "))
	fmt.Fprintf(w, "  with origin egress capped at %.2f copies: %.1fs", targetEgress, lb.AtTarget)
	if lb.Measured > 0 {
		fmt.Fprintf(w, "; at the measured egress: %.1fs", lb.Measured)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ph := range []struct {
		name string
		p    *Phase
	}{{"P2P", r.P2P}, {"HTTP-only", r.HTTP}} {
		if ph.p == nil {
			continue
		}
		e := ph.p.OriginEgress
		title := ph.name
		if ph.name == "HTTP-only" && p.HTTPNetwork != "" {
			title += " (" + p.HTTPNetwork + ")"
		}
		fmt.Fprintf(tw, "\n%s\t\n", title)
		if e.MetricsPresent {
			fmt.Fprintf(tw, "  origin egress /metrics (webseed+peer)\t%.3f copies\t(webseed %s, peer %s, catalog %s)\n", e.MetricsCopies, mib(e.WebSeedBytes), mib(e.PeerBytes), mib(e.CatalogBytes))
		}
		fmt.Fprintf(tw, "  origin egress interface tx\t%.3f copies\t(%s, with headers, catalog, tracker)\n", e.IfaceCopies, mib(e.IfaceTxBytes))
		for _, b := range ph.p.Branches {
			extra := ""
			if ph.name == "P2P" {
				extra = fmt.Sprintf("(agents from origin %.3f copies, peer bytes over WAN ~%.3f copies; WAN tx %.3f copies)", float64(b.OriginBytes)/float64(p.SizeBytes), b.RemotePeerEs, b.WANTxCopies)
			}
			fmt.Fprintf(tw, "  WAN ingress %s\t%.3f copies\t%s\n", b.Branch, b.WANRxCopies, extra)
		}
		if ph.p.AllCompleted {
			fmt.Fprintf(tw, "  completion max / mean\t%.1fs / %.1fs\t(%.2fx the lower bound", ph.p.MaxSeconds, ph.p.MeanSeconds, ph.p.RatioToLB)
			if ph.p.RatioToLBAtEg > 0 {
				fmt.Fprintf(tw, ", %.2fx the bound at the measured egress", ph.p.RatioToLBAtEg)
			}
			fmt.Fprintln(tw, ")")
		} else {
			fmt.Fprintf(tw, "  completion\tNOT ALL AGENTS COMPLETED\t\n")
		}
		fmt.Fprintf(tw, "  machine load average\t%s -> %s\t\n", ph.p.LoadAvg[0], ph.p.LoadAvg[1])
		if ph.p.AgentCPUSeconds > 0 {
			fmt.Fprintf(tw, "  agents' CPU time\t%.1f s\t(over %.1f s wall)\n", ph.p.AgentCPUSeconds, ph.p.WallSeconds)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "AGENT\tP2P s\tFROM PEERS\tFROM ORIGIN\tUPLOADED\tCPU s\tHTTP s\t")
	for _, a := range r.Agents {
		ps, hs := "-", "-"
		if a.Completed {
			ps = fmt.Sprintf("%.1f", a.Seconds)
		} else if r.P2P != nil {
			ps = "FAIL " + a.State
		}
		if a.HTTPSeconds > 0 {
			hs = fmt.Sprintf("%.1f", a.HTTPSeconds)
			if len(a.HTTPRetries) > 0 {
				hs += fmt.Sprintf(" (%d resumed)", len(a.HTTPRetries))
			}
		} else if a.HTTPError != "" {
			hs = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t\n", a.Name, ps, mib(a.FromPeers), mib(a.FromOrigin), mib(a.Uploaded), a.CPUSeconds, hs)
	}
	tw.Flush()
	if r.P2POverHTT > 0 {
		fmt.Fprintf(w, "\nP2P time / HTTP-only time: %.3f\n", r.P2POverHTT)
	}
	if pr := r.Prediction; pr != nil {
		fmt.Fprintf(w, "\nswarmship plan predicted: origin %.2f copies, WAN in/out per branch %.2f/%.2f copies, completion %.1fs (bound %.1fs / efficiency %.2f), HTTP-only %.1fs\n",
			pr.OriginCopies, pr.WANInCopies, pr.WANOutCopies, pr.ExpectedSeconds, pr.LowerBoundSeconds, pr.Efficiency, pr.HTTPOnlySeconds)
		if pr.P2PRatio > 0 {
			verdict := "within 20%"
			if !pr.WithinTolerance {
				verdict = "OFF BY MORE THAN 20%"
			}
			fmt.Fprintf(w, "  measured / predicted: P2P %.2f (%s)", pr.P2PRatio, verdict)
			if pr.HTTPRatio > 0 {
				fmt.Fprintf(w, ", HTTP-only %.2f", pr.HTTPRatio)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Delta != nil {
		printDelta(w, r.Delta)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tMEASURED\tGOAL\t")
	for _, t := range r.Targets {
		verdict := "ok"
		if !t.OK {
			verdict = "MISS"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t<= %.2f\t%s\n", t.Name, t.Measured, t.Target, verdict)
	}
	tw.Flush()
}
