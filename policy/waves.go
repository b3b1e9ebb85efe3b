package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rollout waves.
//
// A rollout plan splits the fleet into waves. Each agent finds its own wave
// from its identity, so no list of agents has to be signed and every agent
// of the plan agrees with the operator's tools on who is where.

// Wave selects the agents of one wave. Exactly one of Percent, Label and
// Sites is set.
type Wave struct {
	// Percent is the cumulative share of the fleet reached once this wave
	// is open (5%,25%,100%: the second wave adds 20% of the fleet).
	Percent float64 `json:"percent,omitempty"`
	// Label takes the agents that carry this label (agent.yaml labels).
	Label string `json:"label,omitempty"`
	// Sites takes the agents of these sites.
	Sites []string `json:"sites,omitempty"`
}

// String is the wave in the syntax ParseWaves reads.
func (w Wave) String() string {
	switch {
	case w.Label != "":
		return "label:" + w.Label
	case len(w.Sites) > 0:
		return "site:" + strings.Join(w.Sites, "+")
	default:
		return strconv.FormatFloat(w.Percent, 'f', -1, 64) + "%"
	}
}

// MaxWaves bounds a plan: more waves than this is a typo, not a rollout.
const MaxWaves = 20

// ParseWaves reads a comma-separated wave list: "N%" (cumulative share of
// the fleet, increasing, the last one 100%), "label:NAME" and
// "site:A+B" (sites joined by '+', since ',' separates waves). Label and
// site waves come first (canaries); the percentage waves after them
// split the rest of the fleet. The list must end at 100% so that every
// agent is in some wave.
func ParseWaves(s string) ([]Wave, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("waves: empty list (e.g. 5%%,25%%,100%% or label:canary,10%%,100%%)")
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxWaves {
		return nil, fmt.Errorf("waves: %d waves, at most %d", len(parts), MaxWaves)
	}
	var out []Wave
	seenPercent := false
	last := 0.0
	for i, p := range parts {
		p = strings.TrimSpace(p)
		var w Wave
		switch {
		case strings.HasPrefix(p, "label:"):
			w.Label = strings.TrimPrefix(p, "label:")
			if err := checkWaveName(w.Label); err != nil {
				return nil, fmt.Errorf("waves: wave %d %q: label %w", i+1, p, err)
			}
		case strings.HasPrefix(p, "site:"):
			for _, site := range strings.Split(strings.TrimPrefix(p, "site:"), "+") {
				if err := checkWaveName(site); err != nil {
					return nil, fmt.Errorf("waves: wave %d %q: site %w", i+1, p, err)
				}
				w.Sites = append(w.Sites, site)
			}
		case strings.HasSuffix(p, "%"):
			v, err := strconv.ParseFloat(strings.TrimSuffix(p, "%"), 64)
			if err != nil || math.IsNaN(v) || v <= 0 || v > 100 {
				return nil, fmt.Errorf("waves: wave %d %q: want a percentage in (0,100]", i+1, p)
			}
			if v <= last {
				return nil, fmt.Errorf("waves: wave %d %q: percentages are cumulative and must increase (previous %g%%)", i+1, p, last)
			}
			w.Percent, last, seenPercent = v, v, true
		default:
			return nil, fmt.Errorf("waves: wave %d %q: want N%%, label:NAME or site:A+B", i+1, p)
		}
		if !strings.HasSuffix(p, "%") && seenPercent {
			return nil, fmt.Errorf("waves: wave %d %q: label and site waves come before the percentage waves", i+1, p)
		}
		out = append(out, w)
	}
	if last != 100 {
		return nil, fmt.Errorf("waves: the last wave must be 100%% so that every agent is in a wave")
	}
	return out, nil
}

// ParseWaveList is ParseWaves for a list already split (a signed plan's).
func ParseWaveList(list []string) ([]Wave, error) {
	for _, w := range list {
		if strings.Contains(w, ",") {
			return nil, fmt.Errorf("waves: %q holds a comma", w)
		}
	}
	return ParseWaves(strings.Join(list, ","))
}

// WaveStrings is the list form of waves (the signed plan's).
func WaveStrings(waves []Wave) []string {
	out := make([]string, len(waves))
	for i, w := range waves {
		out[i] = w.String()
	}
	return out
}

func checkWaveName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("must be 1 to 64 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q: only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// WaveMember is what an agent knows of itself for wave assignment.
type WaveMember struct {
	ID     string // the agent's stable ID (cache_dir/state/agent-id)
	Site   string
	Labels []string
}

// WaveBucket places id in [0,1) for plan: a hash of both, so that one plan
// splits the fleet independently of another (the same agents are not the
// canaries of every rollout).
func WaveBucket(planID, agentID string) float64 {
	h := sha256.Sum256([]byte(planID + "\x00" + agentID))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / float64(1<<53)
}

// AgentWave returns the index of m's wave in waves: the first label or site
// wave that names it, otherwise the first percentage wave whose cumulative
// share covers its bucket. ParseWaves guarantees a last wave of 100%, so
// every agent has a wave.
func AgentWave(planID string, waves []Wave, m WaveMember) int {
	b := WaveBucket(planID, m.ID) * 100
	for i, w := range waves {
		switch {
		case w.Label != "":
			for _, l := range m.Labels {
				if l == w.Label {
					return i
				}
			}
		case len(w.Sites) > 0:
			for _, s := range w.Sites {
				if s == m.Site {
					return i
				}
			}
		case b < w.Percent:
			return i
		}
	}
	return len(waves) - 1
}

// Rollout states, as signed in the plan.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutHalted  = "halted"
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// WaveState is the signed progress of a plan: how many waves are open
// and since when the newest one soaks.
type WaveState struct {
	State  string
	Opened int       // waves open (1: the first), never more than the waves
	Since  time.Time // when the newest open wave opened
}

// MayActivate says whether an agent of wave may activate: only when its
// wave is open by signed state and the rollout runs (a paused, halted or
// aborted rollout activates no one more; a done one lets stragglers in).
func MayActivate(st WaveState, wave int) (bool, string) {
	switch st.State {
	case RolloutRunning, RolloutDone:
	case RolloutPaused, RolloutHalted, RolloutAborted:
		return false, "rollout " + st.State
	default:
		return false, fmt.Sprintf("rollout state %q unknown", st.State)
	}
	if wave >= st.Opened {
		return false, fmt.Sprintf("waiting for wave %d (waves open: %d)", wave+1, st.Opened)
	}
	return true, ""
}

// GateCounts is what the reports say about a rollout's release.
type GateCounts struct {
	Active int // agents with the release active
	Failed int // agents that reported it failed (health check, verify, ...)
}

// GateAction is what the wave gate does next.
type GateAction int

const (
	GateWait GateAction = iota // soak not over, or nothing to do
	GateOpen                   // open the next wave
	GateHalt                   // failures over the limit: halt
	GateDone                   // every wave open and soaked
)

// NextGate decides the gate of a running rollout at now: halt as soon as
// the failed share of the agents that tried the release exceeds
// maxFailures (a ratio, 0.02 for 2%), otherwise open the next wave once the
// current one has soaked. It never opens before the soak ends, whatever
// the counts.
func NextGate(st WaveState, waves int, soak time.Duration, maxFailures float64, c GateCounts, now time.Time) (GateAction, string) {
	if st.State != RolloutRunning {
		return GateWait, ""
	}
	if tried := c.Active + c.Failed; c.Failed > 0 && float64(c.Failed) > maxFailures*float64(tried) {
		return GateHalt, fmt.Sprintf("%d of %d agents failed (limit %g%%)", c.Failed, tried, maxFailures*100)
	}
	if now.Before(st.Since.Add(soak)) {
		return GateWait, ""
	}
	if st.Opened >= waves {
		return GateDone, ""
	}
	return GateOpen, ""
}

// WaveAgent is a reporting agent as TallyWaves places it.
type WaveAgent struct {
	WaveMember
	Name  string // shown; the ID when empty
	State string // its state of the plan's version ("" when it has none)
}

// WaveTally is one wave of a plan with the reporting agents in it.
type WaveTally struct {
	Wave   string   `json:"wave"`
	Agents []string `json:"agents"` // agent names (IDs when unnamed)
	Active int      `json:"active"` // on the plan's version
	Failed int      `json:"failed"`
}

// TallyWaves places agents in waves by AgentWave, as the agents place
// themselves, and counts who has the plan's version active or failed.
func TallyWaves(planID string, waves []Wave, agents []WaveAgent) []WaveTally {
	out := make([]WaveTally, len(waves))
	for i, w := range waves {
		out[i] = WaveTally{Wave: w.String(), Agents: []string{}}
	}
	if len(waves) == 0 {
		return out
	}
	for _, a := range agents {
		i := AgentWave(planID, waves, a.WaveMember)
		name := a.Name
		if name == "" {
			name = a.ID
		}
		out[i].Agents = append(out[i].Agents, name)
		switch a.State {
		case "active":
			out[i].Active++
		case "failed":
			out[i].Failed++
		}
	}
	return out
}
