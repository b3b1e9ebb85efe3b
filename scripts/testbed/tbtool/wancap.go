package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
)

// WANCapReport is WANCAP=1's check: the sites' WAN caps (rates profile
// wan_down / wan_up, shared by each branch's agents) against each branch's
// WAN interface byte counters over every window of WindowSeconds.
type WANCapReport struct {
	DownCap       string  `json:"wan_down_cap"`
	UpCap         string  `json:"wan_up_cap"`
	WindowSeconds float64 `json:"window_seconds"`
	// MaxRatio is the largest rate of any window, branch and direction
	// over its cap; the target is at most 1.05.
	MaxRatio float64           `json:"max_window_rate_over_cap"`
	Branches []WANCapBranchRes `json:"branches"`
}

// WANCapBranchRes is one branch: its busiest window each way, the mean
// rate while its agents downloaded, and what its agents exchanged inside
// the site (from peers, less what crossed the WAN from peers): LAN
// transfers are not capped.
type WANCapBranchRes struct {
	Branch        string  `json:"branch"`
	Samples       int     `json:"samples"`
	MaxDownMbit   float64 `json:"max_down_mbit_s"`
	MaxUpMbit     float64 `json:"max_up_mbit_s"`
	DownRatio     float64 `json:"max_down_over_cap"`
	UpRatio       float64 `json:"max_up_over_cap"`
	MeanDownRatio float64 `json:"mean_down_over_cap_until_done"`
	LANBytes      int64   `json:"lan_peer_bytes_est"`
	LANMbit       float64 `json:"lan_mbit_s_until_done"`
}

type capSample struct {
	t      float64
	rx, tx int64
}

// readCapSamples reads lines "branch unix-seconds rx_bytes tx_bytes".
func readCapSamples(path string) (map[string][]capSample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]capSample{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var b string
		var s capSample
		if _, err := fmt.Sscan(sc.Text(), &b, &s.t, &s.rx, &s.tx); err == nil {
			out[b] = append(out[b], s)
		}
	}
	for _, ss := range out {
		sort.Slice(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
	}
	return out, sc.Err()
}

// maxWindow is the highest rate (bytes/s) of rx and of tx over windows of
// at least w seconds: from each sample to the first one w or more later.
func maxWindow(ss []capSample, w float64) (rx, tx float64) {
	j := 0
	for i := range ss {
		for j < len(ss) && ss[j].t-ss[i].t < w {
			j++
		}
		if j == len(ss) {
			break
		}
		d := ss[j].t - ss[i].t
		rx = math.Max(rx, float64(ss[j].rx-ss[i].rx)/d)
		tx = math.Max(tx, float64(ss[j].tx-ss[i].tx)/d)
	}
	return rx, tx
}

// meanUntil is the mean rx rate (bytes/s) from the first sample to the
// last one at or before end (unix seconds).
func meanUntil(ss []capSample, end float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	last := 0
	for i, s := range ss {
		if s.t <= end {
			last = i
		}
	}
	if last == 0 {
		return 0
	}
	return float64(ss[last].rx-ss[0].rx) / (ss[last].t - ss[0].t)
}

// wanCapReport builds the report from the samples; t0 is the agents'
// start (unix seconds), done the last completion (seconds after t0).
func wanCapReport(path, down, up string, t0, done float64, branches []BranchResult, agents []AgentResult) (*WANCapReport, error) {
	dc, err := rateBits(down)
	if err != nil {
		return nil, err
	}
	uc, err := rateBits(up)
	if err != nil {
		return nil, err
	}
	samples, err := readCapSamples(path)
	if err != nil {
		return nil, err
	}
	r := &WANCapReport{DownCap: down, UpCap: up, WindowSeconds: 5}
	fromPeers := map[string]int64{}
	for _, a := range agents {
		fromPeers[a.Branch] += a.FromPeers
	}
	for _, br := range branches {
		ss := samples[br.Branch]
		rx, tx := maxWindow(ss, r.WindowSeconds)
		res := WANCapBranchRes{
			Branch: br.Branch, Samples: len(ss),
			MaxDownMbit: round(rx*8/1e6, 3), MaxUpMbit: round(tx*8/1e6, 3),
			DownRatio: round(rx*8/dc, 3), UpRatio: round(tx*8/uc, 3),
		}
		if done > 0 {
			res.MeanDownRatio = round(meanUntil(ss, t0+done)*8/dc, 3)
		}
		// Peer bytes that did not come over the WAN: the WAN's ingress
		// less what the agents fetched from the origin is an upper bound
		// on remote peer bytes (it has headers), so this errs low.
		res.LANBytes = max(0, fromPeers[br.Branch]-(br.WANRxBytes-br.OriginBytes))
		if done > 0 {
			res.LANMbit = round(float64(res.LANBytes)*8/done/1e6, 2)
		}
		r.MaxRatio = math.Max(r.MaxRatio, math.Max(res.DownRatio, res.UpRatio))
		r.Branches = append(r.Branches, res)
	}
	return r, nil
}

func printWANCap(w io.Writer, r *WANCapReport) {
	fmt.Fprintf(w, "WAN caps per site: down %s, up %s; busiest %gs window over cap, per branch:\n", r.DownCap, r.UpCap, r.WindowSeconds)
	for _, b := range r.Branches {
		fmt.Fprintf(w, "  %s: down %.2f Mbit/s (%.3f), up %.2f Mbit/s (%.3f); mean down until done %.3f; LAN %s at %.1f Mbit/s\n",
			b.Branch, b.MaxDownMbit, b.DownRatio, b.MaxUpMbit, b.UpRatio, b.MeanDownRatio, strconv.FormatInt(b.LANBytes, 10), b.LANMbit)
	}
	fmt.Fprintf(w, "  max window rate / cap: %.3f (target <= 1.05)\n", r.MaxRatio)
}
