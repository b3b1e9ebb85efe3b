package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	catalogpublish "github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/localswarm"
	"github.com/swarmship/swarmship/policy"
)

// publishTimed publishes name@version on channel stable with timing.
func publishTimed(t *testing.T, sw *localswarm.Swarm, name, version string, seed uint64, tm *catalog.Timing) {
	t.Helper()
	dir := writePayload(t, t.TempDir(), seed, map[string]int64{"content.bin": 256 << 10})
	if _, err := sw.PublishWith(context.Background(), catalogpublish.PublishOptions{
		Name: name, Version: version, Paths: []string{filepath.Join(dir, "content.bin")}, Channels: []string{"stable"}, Timing: tm,
	}); err != nil {
		t.Fatal(err)
	}
}

func startTimedAgents(t *testing.T, sw *localswarm.Swarm, n int) []*localswarm.RunningAgent {
	t.Helper()
	var ras []*localswarm.RunningAgent
	for i := range n {
		name := "sign-" + string(rune('a'+i))
		ra, err := sw.StartAgent(context.Background(), name, sw.AgentConfig(name, "site-"+name, "eu", agent.Subscription{Name: "signage", Channel: "stable"}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() })
		ras = append(ras, ra)
	}
	return ras
}

func waitSignage(t *testing.T, version string, ras ...*localswarm.RunningAgent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := localswarm.WaitActive(ctx, "signage", version, ras...); err != nil {
		t.Fatal(err)
	}
}

// TestActivateAtSwitchesEveryAgentOnTime: a release published with
// activate_at a few seconds ahead downloads at once but goes live on every
// agent at or after that instant, and soon after it (passes run every
// second; the bound is generous for a loaded machine).
func TestActivateAtSwitchesEveryAgentOnTime(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	publishTimed(t, sw, "signage", "1.0", 1, nil)
	ras := startTimedAgents(t, sw, 3)
	waitSignage(t, "1.0", ras...)

	at := time.Now().Add(5 * time.Second).Truncate(time.Millisecond)
	publishTimed(t, sw, "signage", "2.0", 2, &catalog.Timing{ActivateAt: at})
	waitSignage(t, "2.0", ras...)
	for _, ra := range ras {
		got := releaseStatus(ra, "signage", "2.0").Activated
		if got.Before(at) {
			t.Errorf("%s switched at %v, before activate_at %v", ra.Name, got, at)
		}
		if late := got.Sub(at); late > 20*time.Second {
			t.Errorf("%s switched %v after activate_at", ra.Name, late)
		}
		t.Logf("%s switched %v after activate_at", ra.Name, got.Sub(at))
	}
}

// TestFreezeHoldsActivationUntilItsEnd: a release that arrives during a
// catalog freeze waits, says why, and activates when the freeze ends; an
// urgent release goes through a freeze at once.
func TestFreezeHoldsActivationUntilItsEnd(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	publishTimed(t, sw, "signage", "1.0", 1, nil)
	ras := startTimedAgents(t, sw, 1)
	ra := ras[0]
	waitSignage(t, "1.0", ra)

	addFreeze := func(to time.Time) {
		t.Helper()
		if _, err := catalog.Update(context.Background(), sw.Store, sw.Keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error {
			_, err := r.AddFreeze(context.Background(), catalog.Freeze{From: time.Now().Add(-time.Minute), To: to, Reason: "test"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now().Add(8 * time.Second)
	addFreeze(end)
	publishTimed(t, sw, "signage", "2.0", 2, nil)
	// Held: verified, not active, with the freeze as the reason.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if localswarm.IsActive(ra.Agent, "signage", "2.0") {
			break
		}
		rs := releaseStatus(ra, "signage", "2.0")
		if rs.Phase == agent.PhaseVerified && strings.Contains(rs.Reason, "catalog freeze") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2.0 neither held by the freeze nor active: %+v", rs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitSignage(t, "2.0", ra)
	if got := releaseStatus(ra, "signage", "2.0").Activated; got.Before(end) {
		t.Errorf("activated at %v, inside the freeze ending %v", got, end)
	}

	// An hour-long freeze: an urgent release does not wait for it.
	addFreeze(time.Now().Add(time.Hour))
	publishTimed(t, sw, "signage", "3.0", 3, &catalog.Timing{Urgent: true})
	waitSignage(t, "3.0", ra)
}

// TestDeadlineStartsEarlyWithinLimits: two agents whose only download
// window opens days after the release's deliver-by time. The one whose
// operator allows it starts at once and activates; the other keeps its
// window, says it would miss the deadline, and the origin lists its site
// as at risk before the deadline.
func TestDeadlineStartsEarlyWithinLimits(t *testing.T) {
	sw := newSwarm(t, localswarm.OriginOptions{})
	publishTimed(t, sw, "signage", "1.0", 1, &catalog.Timing{DeliverBy: time.Now().Add(time.Hour)})
	later := time.Now().UTC().Add(72 * time.Hour).Weekday().String()[:3]
	start := func(name string, early bool) *localswarm.RunningAgent {
		cfg := sw.AgentConfig(name, "site-"+name, "eu", agent.Subscription{Name: "signage", Channel: "stable",
			Windows: []policy.Window{mustWindow(t, later+" 10:00-11:00")}})
		cfg.Rates = agent.RatesConfig{Profiles: []policy.RateProfile{{Name: "slow", Down: 64 << 10}}, Default: "slow"}
		cfg.Deadline.MayStartEarly = early
		ra, err := sw.StartAgent(context.Background(), name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ra.Stop() })
		return ra
	}
	early, strict := start("early", true), start("strict", false)
	waitSignage(t, "1.0", early)

	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := releaseStatus(strict, "signage", "1.0")
		var listed bool
		for _, r := range getRollout(t, sw.OriginURL).Releases {
			for _, it := range r.AtRisk {
				listed = listed || (r.Release == "signage@1.0" && it.Site == "site-strict")
			}
		}
		if listed && rs.Deadline != nil && rs.Deadline.AtRisk && strings.Contains(rs.Reason, "would miss deliver-by") {
			break
		}
		if localswarm.IsActive(strict.Agent, "signage", "1.0") {
			t.Fatal("the agent without may_start_early downloaded outside its window")
		}
		if time.Now().After(deadline) {
			t.Fatalf("strict agent not flagged at risk: listed=%v status %+v deadline %+v", listed, rs, rs.Deadline)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
