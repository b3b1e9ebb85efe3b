package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
)

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory
// and unmounts it when the test ends. Outside CI a test that cannot mount
// (not root, no mount namespace) is skipped; in CI it fails.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the filesystem refuses with
// ENOSPC, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	// The last bytes a write could still place.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return p
}

// diskFullRun is what one run of the disk-full scenario saw.
type diskFullRun struct {
	fillAt        int64         // bytes of v2 completed when the disk filled
	originWhile   int64         // origin bytes the agent read while the disk was full
	egressWhile   int64         // payload bytes the origin served meanwhile
	resumeAfter   time.Duration // space back -> v2 active
	unpaused      time.Duration // space back -> reason gone from status
	remainder     int64         // bytes of v2 left when space came back
	baselineAfter time.Duration // the same remainder without the fault
}

// A full disk pauses a download instead of wounding it: the reason shows
// in status, the origin is not asked for pieces that cannot be stored,
// the active release stays whole and served, and once space returns the
// release completes and activates. Run twice: all from the origin (the
// HTTP offload writes), and from a seeding peer (the torrent library's
// chunk writes). Each run also times the same remainder without the
// fault, on a second agent, and logs the ratio.
func TestAgentDiskFullPausesAndResumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer bool
	}{
		{name: "origin"},
		{name: "peer", peer: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runDiskFull(t, mountTmpfs(t, 32<<20), tc.peer)
			t.Logf("%s: disk filled at %s of v2; while full the agent read %d origin bytes, the origin served %d; "+
				"space back -> resumed in %v, active in %v for %s; the same remainder without the fault took %v (ratio %.2f)",
				tc.name, mib(r.fillAt), r.originWhile, r.egressWhile, r.unpaused.Round(time.Millisecond), r.resumeAfter.Round(time.Millisecond),
				mib(r.remainder), r.baselineAfter.Round(time.Millisecond), float64(r.resumeAfter)/float64(r.baselineAfter))
		})
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func promote(t *testing.T, sw *localswarm.Swarm, name, version, channel string) {
	t.Helper()
	repo, err := sw.Repo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Promote(name, version, channel); err != nil {
		t.Fatal(err)
	}
	if err := repo.Commit(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// runDiskFull runs the scenario with the agent's cache on the tmpfs at
// disk, then the baseline on an ordinary directory.
func runDiskFull(t *testing.T, disk string, peer bool) diskFullRun {
	// The same download rate for the fault and the baseline (a WAN link),
	// so that the remainder takes long enough to compare.
	const rateLimit = 8 << 20
	var run diskFullRun
	// setup makes a catalog with v1 on the channel and v2 published but
	// not promoted; it returns a config maker and a function that starts
	// the seeding peer if there is one (with v1 and v2; back: with v1 on
	// the channel again).
	setup := func() (*localswarm.Swarm, *catalog.Manifest, *catalog.Manifest, func(name, cacheDir string) *agent.Config, func(back bool)) {
		sw := newSwarm(t, localswarm.OriginOptions{})
		m1 := publish(t, sw, "app", "1.0", 11, map[string]int64{"bin/app": 4 << 20, "README": 1 << 10}, "stable")
		// v2 does not fit in what is left once the disk fills part way.
		m2 := publish(t, sw, "app", "2.0", 12, map[string]int64{"bin/app": 14 << 20, "share/data": 2<<20 + 333})
		seed := func(back bool) {
			if !peer {
				return
			}
			// A peer on an ordinary disk that holds v1 and v2 before the
			// agent under test starts, which then gets every byte from
			// it: v1 goes on the channel, then v2, then back to v1.
			scfg := sw.AgentConfig("seed", "site-1", "eu", agent.Subscription{Name: "app", Channel: "stable"})
			scfg.Offload.StartupGrace = 10 * time.Millisecond
			seed, err := sw.StartAgent(context.Background(), "seed", scfg)
			if err != nil {
				t.Fatal(err)
			}
			waitActive(t, "app", "1.0", 60*time.Second, seed)
			promote(t, sw, "app", "2.0", "stable")
			waitActive(t, "app", "2.0", 60*time.Second, seed)
			if back {
				promote(t, sw, "app", "1.0", "stable")
				waitActive(t, "app", "1.0", 60*time.Second, seed)
			}
		}
		return sw, m1, m2, func(name, cacheDir string) *agent.Config {
			cfg := sw.AgentConfig(name, "site-1", "eu", agent.Subscription{Name: "app", Channel: "stable"})
			cfg.CacheDir = cacheDir
			cfg.Offload.StartupGrace = 10 * time.Millisecond
			cfg.Rates = agent.RatesConfig{
				Profiles: []policy.RateProfile{{Name: "wan", Down: policy.Rate(rateLimit)}},
				Default:  "wan",
			}
			if !peer {
				cfg.Tracker = "" // no peers: every byte comes through the origin offload
			} else {
				// Only peers, so that only the torrent library's chunk
				// writes fail and only its handler can pause and resume.
				cfg.Offload.StartupGrace = time.Hour
			}
			return cfg
		}, seed
	}
	start := func(sw *localswarm.Swarm, name string, cfg *agent.Config) *localswarm.RunningAgent {
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() }) // before the tmpfs is unmounted
		return ra
	}

	sw, m1, m2, config, seed := setup()
	seed(true)
	cfg := config("small-disk", filepath.Join(disk, "agent"))
	ra := start(sw, "small-disk", cfg)
	waitActive(t, "app", "1.0", 60*time.Second, ra)
	before := sw.Origin.Egress().WebSeed
	promote(t, sw, "app", "2.0", "stable")
	waitCompleted(t, ra, "app", "2.0", 4<<20)
	filler := fillDisk(t, disk)
	full := time.Now()
	originAtFull := releaseStatus(ra, "app", "2.0").Downloaded.Origin
	egressAtFull := sw.Origin.Egress().WebSeed
	run.fillAt = releaseStatus(ra, "app", "2.0").Completed

	// The reason shows in the release's status and in the subscription's.
	var rs agent.ReleaseStatus
	for {
		rs = releaseStatus(ra, "app", "2.0")
		if strings.HasPrefix(rs.Reason, "disk full:") {
			break
		}
		if time.Since(full) > 20*time.Second {
			t.Fatalf("no disk-full reason in status 20s after the disk filled: %+v", rs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("status while full: %s", rs.Reason)
	if !strings.Contains(rs.Reason, "no space left on device") && !strings.Contains(rs.Reason, "free on") {
		t.Errorf("reason %q does not say what is full", rs.Reason)
	}
	waitReason(t, ra, "disk full:", 5*time.Second)

	// Stay full a while: nothing more from the origin, v1 still served.
	time.Sleep(time.Second)
	checkActiveFiles(t, ra, m1)
	rs = releaseStatus(ra, "app", "2.0")
	run.originWhile = rs.Downloaded.Origin - originAtFull
	run.egressWhile = sw.Origin.Egress().WebSeed - egressAtFull
	budget := int64(cfg.Offload.Parallel) * m2.PieceLength
	if run.originWhile > budget || (!peer && run.egressWhile > budget) {
		t.Errorf("while the disk was full the agent read %d bytes from the origin and the origin served %d; want <= %d (%d parallel fetches of %d-byte pieces)",
			run.originWhile, run.egressWhile, budget, cfg.Offload.Parallel, m2.PieceLength)
	}
	if !strings.HasPrefix(rs.Reason, "disk full:") {
		t.Errorf("reason %q after 1s full, want disk full", rs.Reason)
	}
	if localswarm.IsActive(ra.Agent, "app", "2.0") {
		t.Fatal("v2 activated on a full disk")
	}

	run.remainder = m2.TotalSize - rs.Completed
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for rs := releaseStatus(ra, "app", "2.0"); strings.HasPrefix(rs.Reason, "disk full:"); rs = releaseStatus(ra, "app", "2.0") {
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("still paused 30s after space returned: %s", rs.Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
	run.unpaused = time.Since(t0)
	waitActivePolling(t, ra, "app", "2.0", 60*time.Second)
	run.resumeAfter = time.Since(t0)
	checkActiveFiles(t, ra, m2)
	// v1 stays whole for rollback.
	checkReleaseFiles(t, filepath.Join(cfg.CacheDir, "releases", "app", "1.0"), m1)
	if rs := releaseStatus(ra, "app", "2.0"); rs.Reason != "" {
		t.Errorf("v2 active but its status still says %q", rs.Reason)
	}
	if peer {
		// Peers deliver the rest: the library's own handler would have
		// left peer downloading off for good.
		rs := releaseStatus(ra, "app", "2.0")
		t.Logf("v2 bytes from peers %d, from the origin %d", rs.Downloaded.Peer, rs.Downloaded.Origin)
		if rs.Downloaded.Origin != 0 {
			t.Errorf("v2 took %d bytes from the origin; want 0 (offload off)", rs.Downloaded.Origin)
		}
	} else {
		copies := float64(sw.Origin.Egress().WebSeed-before) / float64(m2.TotalSize)
		t.Logf("origin sent %.3f copies of v2 (piece length %d)", copies, m2.PieceLength)
		if copies > 1.1 {
			t.Errorf("origin sent %.2f copies of v2 to one agent, want <= 1.1", copies)
		}
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}

	// Baseline: the same remainder on an agent whose disk never fills, in
	// a new deployment (a stopped agent still listed by the tracker
	// slowed a new one's start by a minute).
	sw, _, _, config, seed = setup()
	if peer {
		seed(false) // leaves v2 on the channel
	} else {
		promote(t, sw, "app", "2.0", "stable")
	}
	rb := start(sw, "baseline", config("baseline", t.TempDir()))
	waitCompleted(t, rb, "app", "2.0", run.fillAt)
	t0 = time.Now()
	waitActivePolling(t, rb, "app", "2.0", 60*time.Second)
	run.baselineAfter = time.Since(t0)
	return run
}

func waitCompleted(t *testing.T, ra *localswarm.RunningAgent, name, version string, n int64) {
	t.Helper()
	if !testenv.Poll(60*time.Second, 2*time.Millisecond, func() bool { return releaseStatus(ra, name, version).Completed >= n }) {
		t.Fatalf("%s@%s: fewer than %d bytes completed after 60s", name, version, n)
	}
}

// waitActivePolling is waitActive with a finer clock, for timing.
func waitActivePolling(t *testing.T, ra *localswarm.RunningAgent, name, version string, timeout time.Duration) {
	t.Helper()
	if !testenv.Poll(timeout, 5*time.Millisecond, func() bool { return localswarm.IsActive(ra.Agent, name, version) }) {
		t.Fatalf("%s@%s not active after %v: %+v", name, version, timeout, ra.Agent.Status().Subscriptions)
	}
}

// waitReason waits until the agent's subscription reason starts with prefix.
func waitReason(t *testing.T, ra *localswarm.RunningAgent, prefix string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 10*time.Millisecond, func() error {
		subs := ra.Agent.Status().Subscriptions
		for _, s := range subs {
			if strings.HasPrefix(s.Reason, prefix) {
				return nil
			}
		}
		return fmt.Errorf("no subscription reason %q: %+v", prefix, subs)
	})
}

// checkReleaseFiles re-hashes a release directory against its manifest.
func checkReleaseFiles(t *testing.T, dir string, m *catalog.Manifest) {
	t.Helper()
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Fatalf("%s: %s has sha256 %x, manifest says %s", dir, f.Path, sum, f.SHA256)
		}
	}
}

// On a full disk the GC runs first: a cached release that nothing keeps
// (not active, not pinned, not the rollback copy) is evicted to make room,
// and the download completes without anyone freeing space.
func TestAgentDiskFullGCMakesRoom(t *testing.T) {
	disk := mountTmpfs(t, 32<<20)
	sw := newSwarm(t, localswarm.OriginOptions{})
	sizes := map[string]map[string]int64{
		"0": {"bin/app": 14 << 20},
		"1": {"bin/app": 2 << 20},
		"2": {"bin/app": 2<<20 + 1},
		"3": {"bin/app": 10 << 20},
	}
	cfg := sw.AgentConfig("small-disk", "site-1", "eu", agent.Subscription{Name: "app", Channel: "stable"})
	cfg.CacheDir = filepath.Join(disk, "agent")
	cfg.Offload.StartupGrace = 10 * time.Millisecond
	cfg.Tracker = ""
	// Slow enough to fill the disk part way through v3.
	cfg.Rates = agent.RatesConfig{Profiles: []policy.RateProfile{{Name: "wan", Down: 8 << 20}}, Default: "wan"}
	var ra *localswarm.RunningAgent
	var ms []*catalog.Manifest
	for i, v := range []string{"0", "1", "2", "3"} {
		ms = append(ms, publish(t, sw, "app", v, uint64(20+i), sizes[v]))
		if v == "3" {
			break
		}
		promote(t, sw, "app", v, "stable")
		if ra == nil {
			var err error
			if ra, err = sw.StartAgent(context.Background(), "small-disk", cfg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ra.Stop() })
		}
		waitActive(t, "app", v, 60*time.Second, ra)
	}
	promote(t, sw, "app", "3", "stable")
	waitCompleted(t, ra, "app", "3", 2<<20)
	fillDisk(t, disk) // never removed
	waitActivePolling(t, ra, "app", "3", 60*time.Second)
	checkActiveFiles(t, ra, ms[3])
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "releases", "app", "0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("app@0 was not evicted to make room: %v", err)
	}
	if rs := releaseStatus(ra, "app", "0"); rs.Name != "" {
		t.Errorf("app@0 still recorded: %+v", rs.ReleaseState)
	}
	// The rollback copy stays.
	checkReleaseFiles(t, filepath.Join(cfg.CacheDir, "releases", "app", "2"), ms[2])
}
