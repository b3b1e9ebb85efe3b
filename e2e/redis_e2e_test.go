package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/rollout"
)

// twoOriginsMiB is the release size of TestTwoOriginsOnRedis: small in the
// suite, SWARMSHIP_E2E_REDIS_MIB=128 for the figure.
func twoOriginsMiB(t *testing.T) int64 {
	mib := int64(32)
	if v := os.Getenv("SWARMSHIP_E2E_REDIS_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 2 {
			t.Fatalf("SWARMSHIP_E2E_REDIS_MIB=%q: want a size in MiB of at least 2", v)
		}
		mib = n
	}
	return mib
}

// twoOrigins is a catalog served by two origins sharing one Redis, and
// six agents in two sites, each listing both origins for the catalog, the
// tracker, offload fetches and reports.
type twoOrigins struct {
	redis   *testenv.Redis
	sw      *localswarm.Swarm
	second  *localswarm.OriginServer
	m       *catalog.Manifest
	agents  []*localswarm.RunningAgent
	started time.Time
}

// trackerShares tells whether the tracker can keep its swarms on Redis;
// until it can, two origins are two swarms and the test does not apply.
func trackerShares(tr any) bool {
	_, ok := tr.(interface {
		Share(context.Context, *state.Redis) error
	})
	return ok
}

func startTwoOrigins(t *testing.T, mib int64) *twoOrigins {
	t.Helper()
	rs := testenv.StartRedis(t)
	shared := func(c *seeder.Config) {
		c.State = state.Config{Redis: &state.RedisConfig{URL: rs.URL, Prefix: "e2e", Timeout: 2 * time.Second}}
	}
	// Payload requests take a while, as over an origin's uplink, so that
	// a fault at 40% lands mid-rollout rather than after it.
	opts := localswarm.OriginOptions{Configure: shared, WrapHandler: slowPayload(30 * time.Millisecond)}
	sw := newSwarm(t, opts)
	if !trackerShares(sw.Origin.Tracker()) {
		t.Skip("the tracker does not keep its swarms on Redis in this build")
	}
	second, err := sw.AddOrigin(context.Background(), "origin-b", opts)
	if err != nil {
		t.Fatal(err)
	}
	m := publish(t, sw, "app", "1.0", 15, map[string]int64{"bin/app": mib<<20 - 4321, "README": 4321}, "stable")
	tw := &twoOrigins{redis: rs, sw: sw, second: second, m: m, started: time.Now()}
	for i := range 6 {
		name := fmt.Sprintf("agent-%d", i+1)
		cfg := sw.AgentConfig(name, fmt.Sprintf("site-%d", i%2), "eu", agent.Subscription{Name: "app", Channel: "stable"})
		// Every agent lists both origins, as operators would with no load
		// balancer in front: catalog mirrors, one tracker tier and offload
		// sources, agents 1-3 with the first origin first, 4-6 with the
		// second; reports likewise.
		first, other := sw.OriginURL, second.URL
		if i >= 3 {
			first, other = other, first
		}
		cfg.Catalog.URL, cfg.Catalog.URLs = "", []string{first + "/", other + "/"}
		cfg.Tracker, cfg.Trackers = "", [][]string{{first + "/announce", other + "/announce"}}
		cfg.Offload.Sources = []string{first + "/", other + "/"}
		cfg.Report.URL, cfg.Report.URLs = "", []string{first + "/", other + "/"}
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tw.agents = append(tw.agents, ra)
	}
	return tw
}

// progress is the share of the six copies the agents hold.
func (tw *twoOrigins) progress() float64 {
	var done int64
	for _, ra := range tw.agents {
		rs := releaseStatus(ra, "app", "1.0")
		if rs.Phase == agent.PhaseActive || rs.Phase == agent.PhaseVerified {
			done += tw.m.TotalSize
		} else {
			done += rs.Completed
		}
	}
	return float64(done) / float64(int64(len(tw.agents))*tw.m.TotalSize)
}

// sent is the copies of the release both origins have sent so far.
func (tw *twoOrigins) sent() float64 {
	return float64(tw.sw.Origin.Egress().Total()+tw.second.Origin.Egress().Total()) / float64(tw.m.TotalSize)
}

// waitSent waits until the origins have sent share of one copy: the
// rollout's progress as the origins see it (the agents' own counters move
// in steps of seconds).
func (tw *twoOrigins) waitSent(t *testing.T, share float64) {
	t.Helper()
	if !testenv.Poll(120*time.Second, 5*time.Millisecond, func() bool { return tw.sent() >= share }) {
		t.Fatalf("the origins did not send %.0f%% of a copy (sent %.0f%%)", share*100, tw.sent()*100)
	}
}

// finish waits for every agent, checks their files and returns the
// completion time and the copies both origins sent.
func (tw *twoOrigins) finish(t *testing.T) (time.Duration, float64) {
	t.Helper()
	// Generous: 128 MiB with one origin per agent and an origin stopped
	// took 3 minutes here. Scale with size.
	waitActive(t, "app", "1.0", time.Duration(max(1, tw.m.TotalSize>>25))*240*time.Second, tw.agents...)
	took := time.Since(tw.started)
	for _, ra := range tw.agents {
		checkActiveFiles(t, ra, tw.m)
	}
	a, b := tw.sw.Origin.Egress(), tw.second.Origin.Egress()
	copies := float64(a.Total()+b.Total()) / float64(tw.m.TotalSize)
	t.Logf("%d MiB (%d KiB pieces) to 6 agents in %v; origin egress %.3f copies (first %d bytes, second %d)", tw.m.TotalSize>>20, tw.m.PieceLength>>10, took.Round(10*time.Millisecond), copies, a.Total(), b.Total())
	return took, copies
}

// rolloutAgents is how many agents an origin's rollout view knows.
func rolloutAgents(base string) (int, error) {
	c, err := rolloutCounts(base)
	return c.Known, err
}

// rolloutCounts is an origin's rollout view's agent counts.
func rolloutCounts(base string) (rollout.AgentCounts, error) {
	resp, err := http.Get(base + "/api/v1/rollout")
	if err != nil {
		return rollout.AgentCounts{}, err
	}
	defer resp.Body.Close()
	var ro rollout.View
	if err := json.NewDecoder(resp.Body).Decode(&ro); err != nil {
		return rollout.AgentCounts{}, err
	}
	return ro.Agents, nil
}

// Two origins share one Redis (tracker swarms and agents' reports), six
// agents in two sites, each listing both origins (half of them each one
// first). Without faults, with one origin stopped hard once the origins
// have sent 40% of a copy, and with Redis restarted empty at that point,
// every agent completes with correct files, both origins' rollout views
// know all six agents, and the origins together send a bounded number of
// copies.
//
// Measured here with 32 and 128 MiB (2 shared cores, with and without
// -race): 1.00-1.04 copies in every case, and completion after a kill or
// a Redis restart 1.0-1.4x the no-fault run (1.8-2.4x once, with a build
// running alongside: a few seconds on a 5 s run). With one origin per agent
// (before agents listed several) a kill took 4-14x and 1.10-1.15 copies,
// a Redis restart 1.26-1.63 copies. The bounds below are looser than the
// issue's 1.10 copies and 1.3x because a loaded CI machine stalls agents
// (an orphan timeout re-fetches a piece from an origin; a stall in one
// run and not the other skews the ratio): they hold there, still catch a
// return of the one-origin behaviour (kill: +23 to +53 s over 1.3x), and
// the logs show the figures.
func TestTwoOriginsOnRedis(t *testing.T) {
	mib := twoOriginsMiB(t)
	const (
		maxCopies             = 1.2 // as for one origin (TestSwarmFiveAgentsOriginSendsAboutOneCopy)
		maxCopiesOriginKilled = 1.3
		// After the restart each of the 2 sites may fetch the remaining 60%
		// once (trust between sites is lost): 0.4 + 2*0.6 = 1.6, plus slack.
		// Each agent fetching alone would be 0.4 + 6*0.6 = 4.
		maxCopiesRedisRestart = 2.0
		// A fault may cost 1.3x the no-fault run plus this (see above).
		faultSlack = 20 * time.Second
	)
	var base time.Duration
	t.Run("no fault", func(t *testing.T) {
		tw := startTwoOrigins(t, mib)
		took, copies := tw.finish(t)
		base = took
		if copies > maxCopies {
			t.Errorf("origins sent %.3f copies, want <= %.2f", copies, maxCopies)
		}
		testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			for _, u := range []string{tw.sw.OriginURL, tw.second.URL} {
				if n, err := rolloutAgents(u); err != nil || n != 6 {
					return fmt.Errorf("rollout view at %s: %d agents, %v", u, n, err)
				}
			}
			return nil
		})
	})
	t.Run("origin killed at 40%", func(t *testing.T) {
		tw := startTwoOrigins(t, mib)
		tw.waitSent(t, 0.4)
		at, start := tw.sent(), time.Now()
		if err := tw.second.Kill(); err != nil {
			t.Logf("second origin's close: %v", err)
		}
		t.Logf("second origin stopped with %.0f%% of a copy sent (agents hold %.0f%% of theirs; stop took %v)", at*100, tw.progress()*100, time.Since(start).Round(time.Millisecond))
		took, copies := tw.finish(t)
		checkFaultTime(t, took, base, faultSlack)
		if copies > maxCopiesOriginKilled {
			t.Errorf("origins sent %.3f copies, want <= %.2f", copies, maxCopiesOriginKilled)
		}
		// The agents that reported to the dead origin moved to the other
		// (report.urls): its view shows all six live with the release.
		testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			if c, err := rolloutCounts(tw.sw.OriginURL); err != nil || c.Seeding != 6 {
				return fmt.Errorf("rollout view of the live origin: %+v, %v", c, err)
			}
			return nil
		})
	})
	t.Run("redis restarted at 40%", func(t *testing.T) {
		tw := startTwoOrigins(t, mib)
		tw.waitSent(t, 0.4)
		at, start := tw.sent(), time.Now()
		tw.redis.Restart(t)
		t.Logf("Redis restarted empty with %.0f%% of a copy sent (%.0f%% when it was up, %v later)", at*100, tw.sent()*100, time.Since(start).Round(time.Millisecond))
		took, copies := tw.finish(t)
		checkFaultTime(t, took, base, faultSlack)
		if copies > maxCopiesRedisRestart {
			t.Errorf("origins sent %.3f copies, want <= %.2f", copies, maxCopiesRedisRestart)
		}
		// Nothing lost: both views know all six agents again.
		testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			for _, u := range []string{tw.sw.OriginURL, tw.second.URL} {
				if n, err := rolloutAgents(u); err != nil || n != 6 {
					return fmt.Errorf("rollout view at %s: %d agents, %v", u, n, err)
				}
			}
			return nil
		})
	})
}

// checkFaultTime logs a faulted run's completion against the no-fault
// run's and fails it beyond 1.3x plus slack.
func checkFaultTime(t *testing.T, took, base, slack time.Duration) {
	t.Helper()
	if base <= 0 {
		return // the no-fault subtest did not run
	}
	t.Logf("completion %.2fx the no-fault run (%v vs %v)", float64(took)/float64(base), took.Round(10*time.Millisecond), base.Round(10*time.Millisecond))
	if limit := base*13/10 + slack; took > limit {
		t.Errorf("completion took %v, want <= 1.3x the no-fault run's %v + %v = %v", took.Round(10*time.Millisecond), base.Round(10*time.Millisecond), slack, limit.Round(10*time.Millisecond))
	}
}
