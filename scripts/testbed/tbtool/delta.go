package main

// The delta mode of the testbed (DELTA=1 in scripts/testbed/run, issue 17):
// every agent holds v1 of the realistic pair, v2 is published with hints
// against it and promoted, and the v2 phase is measured on its own against
// the bytes v2 really changed.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Delta targets of issue 17: per branch, WAN ingress at most 1.15 × the
// changed bytes plus one piece per changed region (delivery by pieces may
// round each region up to a piece); origin egress at most 1.05 × the changed
// bytes plus the same rounding; each site within 1.2 × zsync's bytes.
const (
	targetDeltaWAN    = 1.15
	targetDeltaEgress = 1.05
	targetVsZsync     = 1.2
)

// manifestFile is the part of a release manifest (catalog.Manifest) verify reads.
type manifestFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// VerifyResult is what `tbtool verify` prints: the files of a manifest
// checked in an agent's release directory.
type VerifyResult struct {
	Files int      `json:"files"`
	OK    int      `json:"ok"`
	Bad   []string `json:"bad,omitempty"` // path: reason
}

func cmdVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	manifest := fs.String("manifest", "", "release manifest (JSON)")
	dir := fs.String("dir", "", "the release's directory on an agent")
	fs.Parse(args)
	if *manifest == "" || *dir == "" {
		return errors.New("usage: tbtool verify -manifest FILE -dir DIR")
	}
	b, err := os.ReadFile(*manifest)
	if err != nil {
		return err
	}
	var m struct {
		Files []manifestFile `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", *manifest, err)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("%s: no files", *manifest)
	}
	var res VerifyResult
	for _, f := range m.Files {
		res.Files++
		if why := checkFile(filepath.Join(*dir, filepath.FromSlash(f.Path)), f); why != "" {
			res.Bad = append(res.Bad, f.Path+": "+why)
			continue
		}
		res.OK++
	}
	return json.NewEncoder(os.Stdout).Encode(&res)
}

// checkFile returns why the file does not match, or "".
func checkFile(p string, want manifestFile) string {
	f, err := os.Open(p)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	switch {
	case err != nil:
		return err.Error()
	case n != want.Size:
		return fmt.Sprintf("%d bytes, want %d", n, want.Size)
	case hex.EncodeToString(h.Sum(nil)) != want.SHA256:
		return "SHA-256 differs"
	}
	return ""
}

// deltaPair is the part of `go run ./scripts/bench/delta -gen` output the
// report reads (internal/deltapair.Pair).
type deltaPair struct {
	V1Size           int64 `json:"v1_size"`
	V2Size           int64 `json:"v2_size"`
	V1Files          int   `json:"v1_files"`
	V2Files          int   `json:"v2_files"`
	ChangedBytes     int64 `json:"changed_bytes"`
	ChangedRegions   int   `json:"changed_regions"`
	ChangedFileBytes int64 `json:"changed_file_bytes"`
}

// DeltaReport is the v2 phase of a delta run and, if any, the phase where
// agents that held nothing joined afterwards. In its phases, "copies" are
// multiples of the changed bytes, not of the release.
type DeltaReport struct {
	Pair        deltaPair `json:"pair"`
	PieceLength int64     `json:"v2_piece_length"`
	// Limits in bytes: k × changed bytes + one piece per changed region.
	WANLimitBytes    int64        `json:"wan_limit_bytes"`
	EgressLimitBytes int64        `json:"egress_limit_bytes"`
	ZsyncBytes       int64        `json:"zsync_bytes,omitempty"` // one machine to one machine, from scripts/bench/delta
	Phase            *Phase       `json:"v2_phase"`
	Agents           []DeltaAgent `json:"agents"`
	Fresh            *Phase       `json:"fresh_phase,omitempty"`
	FreshAgents      []DeltaAgent `json:"fresh_agents,omitempty"`
}

type DeltaAgent struct {
	Name       string   `json:"name"`
	Branch     string   `json:"branch"`
	Completed  bool     `json:"completed"`
	Seconds    float64  `json:"seconds,omitempty"` // v2 active, from the phase's start
	Reused     int64    `json:"reused_bytes"`
	FromPeers  int64    `json:"from_peers_bytes"`
	FromOrigin int64    `json:"from_origin_bytes"`
	Files      int      `json:"files_checked"`
	FilesOK    int      `json:"files_ok"`
	Bad        []string `json:"bad_files,omitempty"`
	LastError  string   `json:"last_error,omitempty"`
}

// readDeltaPhase reads one phase directory (delta or fresh) for agents
// named b<b>a<a>, a in [first, last].
func readDeltaPhase(dir string, t topo, changed float64, version string, first, last int) (*Phase, []DeltaAgent, error) {
	ph, err := readPhase(dir, t, changed)
	if err != nil {
		return nil, nil, err
	}
	t0, _ := readFloat(filepath.Join(dir, "t0"))
	byBranch := map[string]*BranchResult{}
	for i := range ph.Branches {
		byBranch[ph.Branches[i].Branch] = &ph.Branches[i]
	}
	ph.AllCompleted = true
	var agents []DeltaAgent
	var sum float64
	for b := 1; b <= t.B; b++ {
		for a := first; a <= last; a++ {
			da := DeltaAgent{Name: fmt.Sprintf("b%da%d", b, a), Branch: fmt.Sprintf("b%d", b)}
			if st, err := readStatus(filepath.Join(dir, "status", da.Name+".json")); err == nil {
				if rel := st.release(version); rel != nil {
					da.Reused, da.FromPeers, da.FromOrigin, da.LastError = rel.Reused, rel.Downloaded.Peer, rel.Downloaded.Origin, rel.LastError
					if st.readyWith(version) {
						da.Completed = true
						da.Seconds = round(float64(rel.Activated.UnixNano())/1e9-t0, 2)
						sum += da.Seconds
						ph.MaxSeconds = math.Max(ph.MaxSeconds, da.Seconds)
					}
					if br := byBranch[da.Branch]; br != nil {
						br.OriginBytes += da.FromOrigin
						br.PeerBytes += da.FromPeers
					}
				}
			}
			var vr VerifyResult
			if b, err := os.ReadFile(filepath.Join(dir, "verify", da.Name+".json")); err == nil && json.Unmarshal(b, &vr) == nil {
				da.Files, da.FilesOK, da.Bad = vr.Files, vr.OK, vr.Bad
			}
			if !da.Completed {
				ph.AllCompleted = false
			}
			agents = append(agents, da)
		}
	}
	if n := len(agents); n > 0 {
		ph.MeanSeconds = round(sum/float64(n), 2)
	}
	for i := range ph.Branches {
		br := &ph.Branches[i]
		br.RemotePeerEs = round(float64(br.WANRxBytes-br.OriginBytes)/changed, 3)
	}
	return ph, agents, nil
}

// unverified counts agents whose v2 files were not all checked good.
func unverified(agents []DeltaAgent) int {
	n := 0
	for _, a := range agents {
		if a.Files == 0 || a.FilesOK != a.Files {
			n++
		}
	}
	return n
}

func notCompleted(agents []DeltaAgent) int {
	n := 0
	for _, a := range agents {
		if !a.Completed {
			n++
		}
	}
	return n
}

// deltaReport builds the delta section and its targets, nil without a
// delta directory.
func deltaReport(dir string, t topo, pairFile string, piece, zsync int64, fresh int) (*DeltaReport, []Target, error) {
	if _, err := os.Stat(filepath.Join(dir, "delta")); err != nil {
		return nil, nil, nil
	}
	b, err := os.ReadFile(pairFile)
	if err != nil {
		return nil, nil, fmt.Errorf("delta run needs -pair: %w", err)
	}
	d := &DeltaReport{PieceLength: piece, ZsyncBytes: zsync}
	if err := json.Unmarshal(b, &d.Pair); err != nil || d.Pair.ChangedBytes <= 0 {
		return nil, nil, fmt.Errorf("%s: not a pair (%v)", pairFile, err)
	}
	changed := float64(d.Pair.ChangedBytes)
	rounding := float64(int64(d.Pair.ChangedRegions) * piece)
	d.WANLimitBytes = int64(targetDeltaWAN*changed + rounding)
	d.EgressLimitBytes = int64(targetDeltaEgress*changed + rounding)
	if d.Phase, d.Agents, err = readDeltaPhase(filepath.Join(dir, "delta"), t, changed, "2", 1, t.A); err != nil {
		return nil, nil, err
	}
	var ts []Target
	e := d.Phase.OriginEgress
	egress, what := e.WebSeedBytes+e.PeerBytes, "/metrics webseed+peer"
	if !e.MetricsPresent {
		egress, what = e.IfaceTxBytes, "interface tx"
	}
	ts = append(ts, Target{Name: fmt.Sprintf("delta: origin egress (%s) / (%.2f x changed + %d pieces)", what, targetDeltaEgress, d.Pair.ChangedRegions),
		Target: 1, Measured: round(float64(egress)/float64(d.EgressLimitBytes), 3)})
	for _, br := range d.Phase.Branches {
		ts = append(ts, Target{Name: fmt.Sprintf("delta: WAN ingress %s / (%.2f x changed + %d pieces)", br.Branch, targetDeltaWAN, d.Pair.ChangedRegions),
			Target: 1, Measured: round(float64(br.WANRxBytes)/float64(d.WANLimitBytes), 3)})
	}
	if zsync > 0 {
		for _, br := range d.Phase.Branches {
			ts = append(ts, Target{Name: "delta: WAN ingress " + br.Branch + " / zsync bytes", Target: targetVsZsync, Measured: round(float64(br.WANRxBytes)/float64(zsync), 3)})
		}
	}
	ts = append(ts,
		Target{Name: "delta: agents that did not activate v2", Target: 0, Measured: float64(notCompleted(d.Agents))},
		Target{Name: "delta: agents with a v2 file not matching its SHA-256", Target: 0, Measured: float64(unverified(d.Agents))})
	if fresh > 0 {
		if _, err := os.Stat(filepath.Join(dir, "fresh")); err == nil {
			if d.Fresh, d.FreshAgents, err = readDeltaPhase(filepath.Join(dir, "fresh"), t, changed, "2", t.A+1, t.A+fresh); err != nil {
				return nil, nil, err
			}
			ts = append(ts,
				Target{Name: "fresh (no v1): agents that did not activate v2", Target: 0, Measured: float64(notCompleted(d.FreshAgents))},
				Target{Name: "fresh (no v1): agents with a v2 file not matching its SHA-256", Target: 0, Measured: float64(unverified(d.FreshAgents))})
		}
	}
	for i := range ts {
		ts[i].OK = ts[i].Measured <= ts[i].Target
	}
	return d, ts, nil
}

func printDelta(w io.Writer, d *DeltaReport) {
	p := d.Pair
	fmt.Fprintf(w, "\nDelta v1 -> v2 (issue 17 pair): v1 %s in %d files, v2 %s in %d files; changed %s in %d regions (changed files %s); v2 pieces %s\n",
		mib(p.V1Size), p.V1Files, mib(p.V2Size), p.V2Files, mib(p.ChangedBytes), p.ChangedRegions, mib(p.ChangedFileBytes), mib(d.PieceLength))
	fmt.Fprintf(w, "limits: WAN ingress per branch %s, origin egress %s", mib(d.WANLimitBytes), mib(d.EgressLimitBytes))
	if d.ZsyncBytes > 0 {
		fmt.Fprintf(w, "; zsync one machine to one machine %s", mib(d.ZsyncBytes))
	}
	fmt.Fprintln(w)
	for _, ph := range []struct {
		name   string
		p      *Phase
		agents []DeltaAgent
	}{{"v2 to agents holding v1", d.Phase, d.Agents}, {"v2 to agents holding nothing, after", d.Fresh, d.FreshAgents}} {
		if ph.p == nil {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		e := ph.p.OriginEgress
		fmt.Fprintf(tw, "\n%s\t\n", ph.name)
		if e.MetricsPresent {
			fmt.Fprintf(tw, "  origin egress /metrics (webseed+peer)\t%s\t%.3f x changed (catalog %s)\n", mib(e.WebSeedBytes+e.PeerBytes), e.MetricsCopies, mib(e.CatalogBytes))
		}
		fmt.Fprintf(tw, "  origin egress interface tx\t%s\t%.3f x changed\n", mib(e.IfaceTxBytes), e.IfaceCopies)
		for _, b := range ph.p.Branches {
			fmt.Fprintf(tw, "  WAN ingress %s\t%s\t%.3f x changed (agents from origin %s; WAN tx %s)\n", b.Branch, mib(b.WANRxBytes), b.WANRxCopies, mib(b.OriginBytes), mib(b.WANTxBytes))
		}
		if ph.p.AllCompleted {
			fmt.Fprintf(tw, "  v2 active, max / mean\t%.1fs / %.1fs\t\n", ph.p.MaxSeconds, ph.p.MeanSeconds)
		} else {
			fmt.Fprintf(tw, "  completion\tNOT ALL AGENTS ACTIVATED v2\t\n")
		}
		fmt.Fprintf(tw, "  machine load average\t%s -> %s\t\n", ph.p.LoadAvg[0], ph.p.LoadAvg[1])
		tw.Flush()
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "AGENT\tv2 s\tREUSED\tFROM PEERS\tFROM ORIGIN\tFILES OK\t")
		for _, a := range ph.agents {
			s := "FAIL"
			if a.Completed {
				s = fmt.Sprintf("%.1f", a.Seconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t\n", a.Name, s, mib(a.Reused), mib(a.FromPeers), mib(a.FromOrigin), a.FilesOK, a.Files)
		}
		tw.Flush()
		for _, a := range ph.agents {
			if len(a.Bad) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", a.Name, strings.Join(a.Bad, "; "))
			}
		}
	}
}
