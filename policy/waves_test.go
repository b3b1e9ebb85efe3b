package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseWaves(t *testing.T) {
	good := map[string]string{
		"5%,25%,100%":                "5%,25%,100%",
		"label:canary,10%,100%":      "label:canary,10%,100%",
		" site:lab+hq , 50% , 100% ": "site:lab+hq,50%,100%",
		"100%":                       "100%",
		"0.5%,100%":                  "0.5%,100%",
	}
	for in, want := range good {
		ws, err := ParseWaves(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var got []string
		for _, w := range ws {
			got = append(got, w.String())
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%q: got %v, want %s", in, got, want)
		}
	}
	bad := map[string]string{
		"":                                 "empty",
		"5%,25%":                           "last wave must be 100%",
		"25%,5%,100%":                      "must increase",
		"0%,100%":                          "percentage",
		"150%":                             "percentage",
		"10%,label:c,100%":                 "come before",
		"label:,100%":                      "label",
		"site:a b,100%":                    "site",
		"five,100%":                        "want N%",
		"NaN%,100%":                        "percentage",
		strings.Repeat("1%,", 21) + "100%": "at most",
	}
	for in, want := range bad {
		if _, err := ParseWaves(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", in, err, want)
		}
	}
}

func TestAgentWaveDeterministicAndProportional(t *testing.T) {
	waves, err := ParseWaves("label:canary,site:lab,10%,50%,100%")
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, len(waves))
	for i := 0; i < 10000; i++ {
		m := WaveMember{ID: fmt.Sprintf("agent-%d", i)}
		w := AgentWave("plan-1", waves, m)
		if again := AgentWave("plan-1", waves, m); again != w {
			t.Fatalf("agent %d: wave %d then %d", i, w, again)
		}
		counts[w]++
	}
	if counts[0] != 0 || counts[1] != 0 {
		t.Fatalf("unlabelled agents in label/site waves: %v", counts)
	}
	// 10%, 40%, 50% of 10000 with generous bounds.
	for i, want := range map[int]int{2: 1000, 3: 4000, 4: 5000} {
		if c := counts[i]; c < want*8/10 || c > want*12/10 {
			t.Errorf("wave %d: %d agents, want about %d (%v)", i, c, want, counts)
		}
	}
	if w := AgentWave("plan-1", waves, WaveMember{ID: "x", Labels: []string{"canary"}, Site: "lab"}); w != 0 {
		t.Errorf("canary in wave %d", w)
	}
	if w := AgentWave("plan-1", waves, WaveMember{ID: "x", Site: "lab"}); w != 1 {
		t.Errorf("lab agent in wave %d", w)
	}
	// Another plan splits the fleet differently.
	same := 0
	for i := 0; i < 1000; i++ {
		m := WaveMember{ID: fmt.Sprintf("agent-%d", i)}
		if AgentWave("plan-1", waves, m) == 2 && AgentWave("plan-2", waves, m) == 2 {
			same++
		}
	}
	if same > 50 {
		t.Errorf("%d agents first in both plans", same)
	}
}

func TestMayActivate(t *testing.T) {
	cases := []struct {
		st   WaveState
		wave int
		ok   bool
	}{
		{WaveState{State: RolloutRunning, Opened: 1}, 0, true},
		{WaveState{State: RolloutRunning, Opened: 1}, 1, false},
		{WaveState{State: RolloutRunning, Opened: 3}, 2, true},
		{WaveState{State: RolloutDone, Opened: 3}, 2, true},
		{WaveState{State: RolloutHalted, Opened: 1}, 0, false},
		{WaveState{State: RolloutPaused, Opened: 2}, 0, false},
		{WaveState{State: RolloutAborted, Opened: 3}, 0, false},
		{WaveState{State: "bogus", Opened: 3}, 0, false},
	}
	for _, c := range cases {
		if ok, why := MayActivate(c.st, c.wave); ok != c.ok {
			t.Errorf("%+v wave %d: %v (%s), want %v", c.st, c.wave, ok, why, c.ok)
		}
	}
}

func TestNextGate(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	soak := 30 * time.Minute
	run := WaveState{State: RolloutRunning, Opened: 1, Since: t0}
	cases := []struct {
		name string
		st   WaveState
		c    GateCounts
		now  time.Time
		want GateAction
	}{
		{"soaking", run, GateCounts{Active: 5}, t0.Add(29 * time.Minute), GateWait},
		{"soaked", run, GateCounts{Active: 5}, t0.Add(30 * time.Minute), GateOpen},
		{"no one tried yet still opens", run, GateCounts{}, t0.Add(time.Hour), GateOpen},
		{"failure during soak halts at once", run, GateCounts{Active: 2, Failed: 3}, t0.Add(time.Minute), GateHalt},
		{"failure after soak halts", run, GateCounts{Active: 2, Failed: 3}, t0.Add(time.Hour), GateHalt},
		{"under the limit opens", run, GateCounts{Active: 99, Failed: 1}, t0.Add(time.Hour), GateOpen},
		{"all open", WaveState{State: RolloutRunning, Opened: 3, Since: t0}, GateCounts{Active: 9}, t0.Add(time.Hour), GateDone},
		{"paused waits", WaveState{State: RolloutPaused, Opened: 1, Since: t0}, GateCounts{Failed: 9}, t0.Add(time.Hour), GateWait},
	}
	for _, c := range cases {
		if got, why := NextGate(c.st, 3, soak, 0.02, c.c, c.now); got != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, got, why, c.want)
		}
	}
}
